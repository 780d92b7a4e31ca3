//! [`SockjsRx`] / [`SockjsTx`]: the halves of a session the relay drives. Without
//! `batch_messages` each `recv` is one client message and each `send` reaches the client at
//! once; with it, both carry whole bursts (see [`super::SockjsOptions::batch_messages`]).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::session::{inbound_cost, Session};
use super::RECV_BATCH_BYTES;
use crate::transport::{ClientRx, ClientTx, CloseCode, LinkError, RecvBatch};

/// The receiving half of a SockJS session: client messages, one per chunk or (batching) joined.
pub struct SockjsRx {
    rx: mpsc::Receiver<Bytes>,
    batch: bool,
    /// Bytes the previous `recv` returned: what the next batch reserves room for.
    last_batch: usize,
    /// The channel's byte budget, given back chunk by chunk as they are taken.
    room: Arc<Semaphore>,
    room_cap: usize,
}

impl SockjsRx {
    pub(super) fn new(
        rx: mpsc::Receiver<Bytes>,
        batch: bool,
        room: Arc<Semaphore>,
        room_cap: usize,
    ) -> SockjsRx {
        SockjsRx {
            rx,
            batch,
            last_batch: 0,
            room,
            room_cap,
        }
    }

    /// Gives a taken chunk's bytes back to the channel's budget.
    fn release(&self, chunk: &Bytes) {
        self.room
            .add_permits(inbound_cost(chunk.len(), self.room_cap) as usize);
    }
}

impl ClientRx for SockjsRx {
    /// The next client message; batching, joined with those already queued behind it (up to
    /// [`RECV_BATCH_BYTES`]) so the relay decodes them as one chunk and writes them to the
    /// broker at once. The end of the session stays queued behind them for the next call.
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        let Some(first) = self.rx.recv().await else {
            return Ok(None);
        };
        self.release(&first);
        if !self.batch {
            return Ok(Some(first));
        }
        let mut batch = RecvBatch::new(first);
        while batch.len() < RECV_BATCH_BYTES {
            // Only what is already here; an empty or closed channel is the next call's business.
            let Ok(more) = self.rx.try_recv() else {
                break;
            };
            self.release(&more);
            batch.push(&more, self.last_batch);
        }
        self.last_batch = batch.len();
        Ok(Some(batch.join()))
    }
}

/// The sending half of a SockJS session: each STOMP frame as one SockJS message.
pub struct SockjsTx {
    session: Arc<Session>,
    /// Frames sent since the last flush (batching only); counted against the outbox limits.
    held: Vec<Utf8Bytes>,
    held_bytes: usize,
}

impl SockjsTx {
    pub(super) fn new(session: Arc<Session>) -> SockjsTx {
        SockjsTx {
            session,
            held: Vec::new(),
            held_bytes: 0,
        }
    }

    /// Closes with a raw SockJS close code (e.g. 3000), for applications other than the relay.
    /// Batching, frames not yet flushed are dropped.
    pub fn close_with(&self, code: u16, reason: &str) {
        self.session.close(code, reason);
    }

    /// Moves the held frames into the outbox, with one wake-up for the session's receiver.
    fn release_held(&mut self) -> Result<(), LinkError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.held_bytes);
        self.session.enqueue_held(&mut self.held, bytes)
    }
}

impl ClientTx for SockjsTx {
    /// Queues one frame for the client; batching, holds it until `flush` while the outbox has
    /// room for it and the frames held before it.
    async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        // SockJS carries text only; a frame that is not UTF-8 is sent with U+FFFD replacements.
        // Shares the frame's bytes (no copy) once they are checked to be UTF-8.
        let text = Utf8Bytes::try_from(frame.clone())
            .unwrap_or_else(|_| String::from_utf8_lossy(&frame).into_owned().into());
        if !self.session.limits().batch {
            return self.session.enqueue(text).await;
        }
        if self
            .session
            .has_room(self.held.len(), self.held_bytes, text.len())?
        {
            self.held_bytes += text.len();
            self.held.push(text);
            return Ok(());
        }
        // Full: what is held goes out first, then this frame waits for room as unbatched.
        self.release_held()?;
        self.session.enqueue(text).await
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        self.release_held()
    }

    async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), LinkError> {
        // The relay sends its ERROR frame and closes without a flush in between.
        let _ = self.release_held();
        self.session.close(code.code(), reason);
        Ok(())
    }
}

impl Drop for SockjsTx {
    /// A sending half dropped without a close (a refused or failed session) still ends the
    /// session, so the client learns of it instead of polling heartbeats forever.
    fn drop(&mut self) {
        let _ = self.release_held();
        self.session
            .close(CloseCode::Internal.code(), "Session ended");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::transport::sockjs::payload::Messages;
    use crate::transport::sockjs::session::test_support::{limits, next};
    use crate::transport::sockjs::session::Event;

    fn session(batch: bool) -> (Arc<Session>, SockjsRx, SockjsTx) {
        Session::new(limits(8, batch), &Arc::new(AtomicUsize::new(0)))
    }

    fn strings(v: &[&str]) -> Vec<Utf8Bytes> {
        v.iter().map(|&s| s.into()).collect()
    }

    fn messages(v: &[&str]) -> Messages {
        v.iter().copied().collect()
    }

    #[tokio::test]
    async fn batching_recv_joins_everything_queued_in_order_then_sees_the_close() {
        let (s, mut rx, _tx) = session(true);
        s.push_inbound(messages(&["SEND\n\n\0", "SEND"]))
            .await
            .unwrap();
        s.push_inbound(messages(&["\n\n\0"])).await.unwrap();
        s.push_inbound(messages(&["", "\n"])).await.unwrap();
        s.close(1000, "bye");
        let chunk = rx.recv().await.unwrap().unwrap();
        assert_eq!(&chunk[..], b"SEND\n\n\0SEND\n\n\0\n");
        assert_eq!(rx.recv().await.unwrap(), None);
    }

    #[tokio::test]
    async fn unbatched_recv_keeps_one_message_per_chunk() {
        let (s, mut rx, _tx) = session(false);
        s.push_inbound(messages(&["a", "", "b"])).await.unwrap();
        s.close(1000, "bye");
        assert_eq!(rx.recv().await.unwrap(), Some(Bytes::from_static(b"a")));
        assert_eq!(rx.recv().await.unwrap(), Some(Bytes::new()));
        assert_eq!(rx.recv().await.unwrap(), Some(Bytes::from_static(b"b")));
        assert_eq!(rx.recv().await.unwrap(), None);
    }

    #[tokio::test]
    async fn batching_recv_stops_joining_at_the_batch_limit() {
        let (s, mut rx, _tx) = session(true);
        let big = "x".repeat(RECV_BATCH_BYTES - 1);
        for m in [big.as_str(), "y", "z"] {
            s.push_inbound(messages(&[m])).await.unwrap();
        }
        assert_eq!(rx.recv().await.unwrap().unwrap().len(), RECV_BATCH_BYTES);
        assert_eq!(rx.recv().await.unwrap(), Some(Bytes::from_static(b"z")));
    }

    #[tokio::test(start_paused = true)]
    async fn batching_send_holds_frames_until_flush_then_wakes_the_receiver_once() {
        let (s, _rx, mut tx) = session(true);
        assert_eq!(next(&s).await, Event::Open);
        let mut changes = s.subscribe();
        changes.borrow_and_update();
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        tx.send(Bytes::from_static(b"b")).await.unwrap();
        assert!(
            !changes.has_changed().unwrap(),
            "nothing reaches the session before flush"
        );
        tx.flush().await.unwrap();
        assert!(changes.has_changed().unwrap());
        assert_eq!(next(&s).await, Event::Messages(strings(&["a", "b"])));
    }

    #[tokio::test(start_paused = true)]
    async fn batching_close_delivers_held_frames_before_the_close() {
        let (s, _rx, mut tx) = session(true);
        tx.send(Bytes::from_static(b"ERROR")).await.unwrap();
        tx.close(CloseCode::Policy, "no").await.unwrap();
        assert_eq!(next(&s).await, Event::Open);
        assert_eq!(next(&s).await, Event::Messages(strings(&["ERROR"])));
        assert_eq!(next(&s).await, Event::Close(1008, "no".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn batching_send_counts_held_frames_against_the_outbox_limits() {
        let (s, _rx, mut tx) = session(true);
        for m in ["a", "b", "c"] {
            tx.send(Bytes::from(m)).await.unwrap();
        }
        // Three held fill the queue: the fourth hands them over and then finds no room.
        let err = tx.send(Bytes::from_static(b"d")).await.unwrap_err();
        assert!(matches!(err, LinkError::Overflow));
        assert_eq!(next(&s).await, Event::Open);
        assert_eq!(next(&s).await, Event::Messages(strings(&["a", "b", "c"])));
        assert_eq!(next(&s).await, Event::Close(1011, "Client too slow".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn batching_send_respects_the_byte_cap_with_held_frames() {
        let (s, _rx, mut tx) = session(true);
        tx.send(Bytes::from_static(b"123456")).await.unwrap();
        let waiting = tokio::spawn(async move {
            tx.send(Bytes::from_static(b"7890x")).await?;
            tx.flush().await
        });
        tokio::task::yield_now().await;
        assert_eq!(next(&s).await, Event::Open);
        // 6 + 5 bytes exceed the 10-byte cap: the first went out alone.
        assert_eq!(next(&s).await, Event::Messages(strings(&["123456"])));
        waiting.await.unwrap().unwrap();
        assert_eq!(next(&s).await, Event::Messages(strings(&["7890x"])));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_go_out_as_they_came_and_non_utf8_with_replacements() {
        let (s, _rx, mut tx) = session(true);
        let frame = Bytes::from(b"M\xc3\xa9".to_vec());
        tx.send(frame.clone()).await.unwrap();
        tx.send(Bytes::from_static(b"a\xffb")).await.unwrap();
        tx.flush().await.unwrap();
        assert_eq!(next(&s).await, Event::Open);
        let Event::Messages(m) = next(&s).await else {
            panic!("messages expected");
        };
        assert_eq!(m, strings(&["M\u{e9}", "a\u{fffd}b"]));
        // The valid frame is queued without a copy.
        assert_eq!(m[0].as_str().as_ptr(), frame.as_ptr());
    }
}
