//! SockJS sessions: the state one session shares between its HTTP requests (or its WebSocket).
//! The registry of sessions by id is in `registry.rs`; the halves the relay drives,
//! [`SockjsRx`] / [`SockjsTx`], are in `link.rs`.
//!
//! A session outlives any single request: messages for the client wait in a bounded outbox
//! until a receiving request (at most one at a time) takes them. A session with no receiving
//! request for `disconnect_delay` expires; its [`SockjsRx`] then ends, so the relay closes the
//! broker connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::access::{AddressSlot, Binding};
use super::frames;
use super::link::{SockjsRx, SockjsTx};
use super::payload::Messages;
use crate::transport::{CloseCode, LinkError};

/// Limits and timers one session obeys.
#[derive(Debug, Clone)]
pub(crate) struct SessionLimits {
    /// Interval between `h` frames on an idle receiving request.
    pub heartbeat: Duration,
    /// Expiry after the last receiving request ended.
    pub disconnect_delay: Duration,
    /// Most messages waiting for the client.
    pub queue_messages: usize,
    /// Most bytes waiting for the client (one message is always accepted into an empty queue).
    pub queue_bytes: usize,
    /// How long a send waits for room in the outbox before the session is closed.
    pub send_timeout: Duration,
    /// Capacity of the client-to-relay message channel.
    pub inbound_messages: usize,
    /// Most bytes in the client-to-relay channel (one chunk larger than this is admitted into
    /// an empty channel).
    pub inbound_bytes: usize,
    /// Whether the session batches both ways (`SockjsOptions::batch_messages`).
    pub batch: bool,
}

/// What a receiving request delivers next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The open frame (first event of every session).
    Open,
    /// Messages for the client, in order (each shares the broker's read buffer, no copy).
    Messages(Vec<Utf8Bytes>),
    /// Nothing to send for a heartbeat interval.
    Heartbeat,
    /// The session is closed: code and reason.
    Close(u16, String),
}

/// The outcome of a request asking to receive.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// This request is now the session's receiver, under this id.
    Attached(u64),
    /// Another receiver is attached (`c[2010,...]`).
    Busy,
    /// The session is closed: code and reason.
    Closed(u16, String),
}

struct State {
    opened: bool,
    outbox: VecDeque<Utf8Bytes>,
    outbox_bytes: usize,
    receiver: Option<u64>,
    next_receiver: u64,
    detached_at: Option<Instant>,
    closed: Option<(u16, String)>,
    inbound: Option<mpsc::Sender<Bytes>>,
}

/// Decrements the live-session count when the session is dropped.
struct LiveGuard(Arc<AtomicUsize>);

/// Who a session belongs to and where it is counted, from the request that opened it.
#[derive(Default)]
pub(crate) struct Owner {
    /// The creator's credential or address; `None` for WebSocket sessions, which no other
    /// request can reach.
    pub binding: Option<Binding>,
    /// The session's place under the per-address cap, given back when the session drops.
    #[allow(dead_code)] // held for its `Drop`
    pub address: Option<AddressSlot>,
}

/// What a chunk of `len` bytes takes from an inbound byte budget of `cap`: never more than the
/// whole budget, so one large chunk still fits into an empty channel.
pub(crate) fn inbound_cost(len: usize, cap: usize) -> u32 {
    u32::try_from(len.min(cap)).unwrap_or(u32::MAX)
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One SockJS session.
pub(crate) struct Session {
    state: Mutex<State>,
    changed: watch::Sender<()>,
    limits: SessionLimits,
    /// Room left in the client-to-relay channel, in bytes ([`inbound_cost`]).
    inbound_room: Arc<Semaphore>,
    owner: Owner,
    _live: LiveGuard,
}

impl Session {
    /// A new session and the relay's halves of it; counts itself in `live`.
    #[cfg(test)]
    pub fn new(
        limits: SessionLimits,
        live: &Arc<AtomicUsize>,
    ) -> (Arc<Session>, SockjsRx, SockjsTx) {
        Self::owned(limits, live, Owner::default())
    }

    /// [`Session::new`] for the creator `owner`.
    pub fn owned(
        limits: SessionLimits,
        live: &Arc<AtomicUsize>,
        owner: Owner,
    ) -> (Arc<Session>, SockjsRx, SockjsTx) {
        live.fetch_add(1, Ordering::Relaxed);
        let (in_tx, in_rx) = mpsc::channel(limits.inbound_messages.max(1));
        let state = State {
            opened: false,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            receiver: None,
            next_receiver: 0,
            detached_at: Some(Instant::now()),
            closed: None,
            inbound: Some(in_tx),
        };
        let room_bytes = inbound_cost(usize::MAX, limits.inbound_bytes) as usize;
        let session = Arc::new(Session {
            state: Mutex::new(state),
            changed: watch::channel(()).0,
            inbound_room: Arc::new(Semaphore::new(room_bytes)),
            limits,
            owner,
            _live: LiveGuard(live.clone()),
        });
        let rx = SockjsRx::new(
            in_rx,
            session.limits.batch,
            session.inbound_room.clone(),
            session.limits.inbound_bytes,
        );
        let tx = SockjsTx::new(session.clone());
        (session, rx, tx)
    }

    /// The session's limits.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Whether a request with `binding` may use this session: its creator's credential (or
    /// address). A session without a binding (WebSocket) is reachable by no other request.
    pub fn bound_to(&self, binding: &Binding) -> bool {
        self.owner
            .binding
            .as_ref()
            .is_some_and(|b| b.matches(binding))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in a way that matters
        // more than losing the session, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|_| {});
    }

    /// A change notifier; subscribe before inspecting state so no change is missed.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Makes the calling request the receiver, if it may be.
    pub fn attach(&self) -> Attach {
        let mut st = self.lock();
        // A closed session still delivers what was queued before the close (an ERROR frame).
        if let (true, true, Some((code, reason))) = (st.opened, st.outbox.is_empty(), &st.closed) {
            return Attach::Closed(*code, reason.clone());
        }
        if st.receiver.is_some() {
            return Attach::Busy;
        }
        st.next_receiver += 1;
        let id = st.next_receiver;
        st.receiver = Some(id);
        st.detached_at = None;
        drop(st);
        self.bump();
        Attach::Attached(id)
    }

    /// The receiver `id` is done; `aborted` when the client cut it off (the session then closes
    /// with 1002, as messages may have been lost).
    pub fn detach(&self, id: u64, aborted: bool) {
        let mut st = self.lock();
        if st.receiver != Some(id) {
            return;
        }
        st.receiver = None;
        st.detached_at = Some(Instant::now());
        if aborted && st.closed.is_none() {
            let (code, reason) = frames::INTERRUPTED;
            st.closed = Some((code, reason.to_owned()));
            st.inbound = None;
        }
        drop(st);
        self.bump();
    }

    /// Closes the session: the client gets `c[code,reason]` after the queued messages, and the
    /// relay's [`SockjsRx`] ends. Later closes keep the first code.
    pub fn close(&self, code: u16, reason: &str) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some((code, reason.to_owned()));
        }
        st.inbound = None;
        drop(st);
        self.bump();
    }

    /// Whether the session is closed.
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// A sender for client messages, while the session is open.
    pub fn inbound(&self) -> Option<mpsc::Sender<Bytes>> {
        let st = self.lock();
        match st.closed {
            Some(_) => None,
            None => st.inbound.clone(),
        }
    }

    /// Delivers client messages to the relay, waiting (bounded) for room; batching, as one
    /// chunk.
    pub async fn push_inbound(&self, messages: Messages) -> Result<(), LinkError> {
        let Some(tx) = self.inbound() else {
            return Err(LinkError::Gone);
        };
        if self.limits.batch {
            let chunk = messages.into_joined();
            if chunk.is_empty() {
                return Ok(());
            }
            return self.send_inbound(&tx, chunk).await;
        }
        for m in messages.into_each() {
            self.send_inbound(&tx, m).await?;
        }
        Ok(())
    }

    /// Queues one chunk for the relay once the channel has room for its bytes and a slot,
    /// waiting at most the send timeout. The bytes' permits go with the chunk; the relay's
    /// [`SockjsRx`] gives them back as it takes it.
    async fn send_inbound(&self, tx: &mpsc::Sender<Bytes>, chunk: Bytes) -> Result<(), LinkError> {
        let cost = inbound_cost(chunk.len(), self.limits.inbound_bytes);
        let send = async {
            let permit = self
                .inbound_room
                .acquire_many(cost)
                .await
                .map_err(|_| LinkError::Gone)?;
            tx.send(chunk).await.map_err(|_| LinkError::Gone)?;
            permit.forget();
            Ok(())
        };
        match tokio::time::timeout(self.limits.send_timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(LinkError::Overflow),
        }
    }

    /// The next event, without waiting; `None` when there is nothing to deliver.
    fn take_event(&self) -> Option<Event> {
        let mut st = self.lock();
        if !st.opened {
            st.opened = true;
            return Some(Event::Open);
        }
        if !st.outbox.is_empty() {
            let messages: Vec<Utf8Bytes> = st.outbox.drain(..).collect();
            st.outbox_bytes = 0;
            drop(st);
            self.bump();
            return Some(Event::Messages(messages));
        }
        st.closed
            .as_ref()
            .map(|(code, reason)| Event::Close(*code, reason.clone()))
    }

    /// Waits for the next event for a receiver; `heartbeat` fires [`Event::Heartbeat`] when it
    /// elapses first (the caller resets it after each frame it writes).
    pub async fn next_event(
        &self,
        changes: &mut watch::Receiver<()>,
        mut heartbeat: Pin<&mut Sleep>,
    ) -> Event {
        loop {
            changes.borrow_and_update();
            if let Some(event) = self.take_event() {
                return event;
            }
            tokio::select! {
                res = changes.changed() => {
                    if res.is_err() {
                        return Event::Close(frames::GO_AWAY.0, frames::GO_AWAY.1.to_owned());
                    }
                }
                () = heartbeat.as_mut() => return Event::Heartbeat,
            }
        }
    }

    /// When the session expires unless a receiver attaches first.
    pub(super) fn expiry(&self) -> Option<Instant> {
        let st = self.lock();
        match st.receiver {
            Some(_) => None,
            None => st.detached_at.map(|t| t + self.limits.disconnect_delay),
        }
    }

    /// Ends the session for good: closes it and drops what was queued for the client.
    pub fn expire(&self) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some((frames::GO_AWAY.0, frames::GO_AWAY.1.to_owned()));
        }
        st.inbound = None;
        st.outbox.clear();
        st.outbox_bytes = 0;
        drop(st);
        self.bump();
    }

    /// Whether `queued` messages of `queued_bytes` leave room for one more of `len` bytes (one
    /// message is always admitted into an empty queue).
    fn fits(&self, queued: usize, queued_bytes: usize, len: usize) -> bool {
        queued < self.limits.queue_messages
            && (queued == 0 || queued_bytes + len <= self.limits.queue_bytes)
    }

    /// Queues one message for the client if there is room.
    fn try_enqueue(&self, message: &mut Option<Utf8Bytes>) -> Result<bool, LinkError> {
        let mut st = self.lock();
        if st.closed.is_some() {
            return Err(LinkError::Gone);
        }
        let len = message.as_ref().map_or(0, |m| m.len());
        if !self.fits(st.outbox.len(), st.outbox_bytes, len) {
            return Ok(false);
        }
        if let Some(m) = message.take() {
            st.outbox.push_back(m);
            st.outbox_bytes += len;
        }
        drop(st);
        self.bump();
        Ok(true)
    }

    /// Whether the outbox has room for a message of `len` bytes behind the `held` messages
    /// (`held_bytes`) a batching sender keeps until its flush.
    pub fn has_room(&self, held: usize, held_bytes: usize, len: usize) -> Result<bool, LinkError> {
        let st = self.lock();
        if st.closed.is_some() {
            return Err(LinkError::Gone);
        }
        Ok(self.fits(st.outbox.len() + held, st.outbox_bytes + held_bytes, len))
    }

    /// Queues the messages a batching sender held (admitted by [`Session::has_room`]) with one
    /// wake-up, so a receiver takes them as one `a[...]` frame.
    pub fn enqueue_held(
        &self,
        held: &mut Vec<Utf8Bytes>,
        held_bytes: usize,
    ) -> Result<(), LinkError> {
        let mut st = self.lock();
        if st.closed.is_some() {
            held.clear();
            return Err(LinkError::Gone);
        }
        st.outbox.extend(held.drain(..));
        st.outbox_bytes += held_bytes;
        drop(st);
        self.bump();
        Ok(())
    }

    /// Queues a message, waiting up to the send timeout for room; closes the session on
    /// overflow.
    pub async fn enqueue(&self, message: Utf8Bytes) -> Result<(), LinkError> {
        let deadline = Instant::now() + self.limits.send_timeout;
        let mut message = Some(message);
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            if self.try_enqueue(&mut message)? {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(LinkError::Gone),
                Err(_) => {
                    self.close(CloseCode::Internal.code(), "Client too slow");
                    return Err(LinkError::Overflow);
                }
            }
        }
    }
}

/// Session fixtures shared by this module's tests and the links'.
#[cfg(test)]
pub(super) mod test_support {
    use super::*;

    /// Small queues (3 messages, 10 bytes) so tests reach the limits quickly.
    pub fn limits(inbound_messages: usize, batch: bool) -> SessionLimits {
        SessionLimits {
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            queue_messages: 3,
            queue_bytes: 10,
            send_timeout: Duration::from_secs(1),
            inbound_messages,
            inbound_bytes: 1024 * 1024,
            batch,
        }
    }

    /// The session's next event, waiting at most one heartbeat interval.
    pub async fn next(s: &Session) -> Event {
        let sleep = tokio::time::sleep(s.limits().heartbeat);
        tokio::pin!(sleep);
        let mut w = s.subscribe();
        s.next_event(&mut w, sleep).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{ClientRx, ClientTx};

    use super::test_support::next;

    fn limits() -> SessionLimits {
        super::test_support::limits(4, false)
    }

    #[tokio::test(start_paused = true)]
    async fn open_first_then_messages_batched_then_close() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, _rx, mut tx) = Session::new(limits(), &live);
        assert_eq!(live.load(Ordering::Relaxed), 1);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        tx.send(Bytes::from_static(b"b")).await.unwrap();
        tx.close(CloseCode::Normal, "bye").await.unwrap();
        assert_eq!(next(&s).await, Event::Open);
        assert_eq!(
            next(&s).await,
            Event::Messages(vec!["a".into(), "b".into()])
        );
        assert_eq!(next(&s).await, Event::Close(1000, "bye".into()));
        assert!(tx.send(Bytes::from_static(b"c")).await.is_err());
        drop((s, tx, _rx));
        assert_eq!(live.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_when_idle() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, _rx, _tx) = Session::new(limits(), &live);
        assert_eq!(next(&s).await, Event::Open);
        assert_eq!(next(&s).await, Event::Heartbeat);
    }

    #[tokio::test]
    async fn second_receiver_is_busy_and_closed_session_answers_close() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, _rx, _tx) = Session::new(limits(), &live);
        let Attach::Attached(id) = s.attach() else {
            panic!("first receiver must attach")
        };
        assert_eq!(s.attach(), Attach::Busy);
        assert_eq!(next(&s).await, Event::Open);
        s.detach(id, false);
        s.close(3000, "Go away!");
        assert_eq!(s.attach(), Attach::Closed(3000, "Go away!".into()));
    }

    #[tokio::test]
    async fn aborted_receiver_closes_session_and_ends_rx() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, mut rx, _tx) = Session::new(limits(), &live);
        let Attach::Attached(id) = s.attach() else {
            panic!("first receiver must attach")
        };
        s.push_inbound(["m"].into_iter().collect()).await.unwrap();
        s.detach(id, true);
        assert_eq!(rx.recv().await.unwrap(), Some(Bytes::from_static(b"m")));
        assert_eq!(rx.recv().await.unwrap(), None);
        assert!(s.push_inbound(["x"].into_iter().collect()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_queue_is_bounded_in_bytes_not_only_in_chunks() {
        let live = Arc::new(AtomicUsize::new(0));
        let mut l = limits();
        l.inbound_messages = 100;
        l.inbound_bytes = 10;
        let (s, mut rx, _tx) = Session::new(l, &live);
        s.push_inbound(["123456"].into_iter().collect())
            .await
            .unwrap();
        // 6 + 6 bytes exceed 10 although 98 chunk slots are free: the send times out.
        let err = s.push_inbound(["abcdef"].into_iter().collect()).await;
        assert!(matches!(err, Err(LinkError::Overflow)), "{err:?}");
        assert_eq!(
            rx.recv().await.unwrap(),
            Some(Bytes::from_static(b"123456"))
        );
        // Taken by the relay, its bytes are free again; a chunk over the cap fits alone.
        s.push_inbound(["0123456789abc"].into_iter().collect())
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), 13);
        s.push_inbound(["x"].into_iter().collect()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn full_outbox_overflows_after_send_timeout() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, _rx, mut tx) = Session::new(limits(), &live);
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"x")).await.unwrap();
        }
        let err = tx.send(Bytes::from_static(b"y")).await.unwrap_err();
        assert!(matches!(err, LinkError::Overflow));
        assert!(s.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn byte_cap_admits_one_big_message_into_empty_queue_only() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, _rx, mut tx) = Session::new(limits(), &live);
        tx.send(Bytes::from(vec![b'x'; 64])).await.unwrap();
        let waiting = tokio::spawn(async move { tx.send(Bytes::from_static(b"y")).await });
        tokio::task::yield_now().await;
        assert_eq!(next(&s).await, Event::Open);
        assert!(matches!(next(&s).await, Event::Messages(m) if m[0].len() == 64));
        waiting.await.unwrap().unwrap();
        assert_eq!(next(&s).await, Event::Messages(vec!["y".into()]));
    }

    #[tokio::test]
    async fn dropping_tx_without_close_ends_the_session() {
        let live = Arc::new(AtomicUsize::new(0));
        let (s, mut rx, tx) = Session::new(limits(), &live);
        assert_eq!(next(&s).await, Event::Open);
        drop(tx);
        assert_eq!(next(&s).await, Event::Close(1011, "Session ended".into()));
        assert_eq!(rx.recv().await.unwrap(), None);
    }
}
