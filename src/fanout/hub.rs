//! The shared subscriptions of one gateway process: per broker identity and vhost one shared
//! broker connection ([`link`](super::link)), per destination one broker subscription, and its
//! members. One lock guards them all; it is never held across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::member::{Member, MemberEnd, MemberRx, Signal};
use super::metrics::FanoutMetrics;
use crate::config::Config;
use crate::stomp::{encode, Command, Frame, Limits, Version};
use crate::tls::UpstreamTls;

/// Most frames (SUBSCRIBE/UNSUBSCRIBE) queued towards one shared broker connection; a
/// SUBSCRIBE that finds no room keeps the session's own path.
const LINK_QUEUE: usize = 1024;

/// Who the gateway is at the broker: the rewritten CONNECT's `login`, `passcode` and `host`.
/// Sessions share only with sessions the broker would see as the same user in the same vhost.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrokerKey {
    login: Option<Bytes>,
    passcode: Option<Bytes>,
    host: Option<Bytes>,
}

impl std::fmt::Debug for BrokerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |v: &Option<Bytes>| {
            String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned()
        };
        f.debug_struct("BrokerKey")
            .field("login", &text(&self.login))
            .field("passcode", &"***")
            .field("host", &text(&self.host))
            .finish()
    }
}

impl BrokerKey {
    /// The identity of a CONNECT as the gateway forwards it (after the rewrite).
    pub fn of(connect: &Frame) -> BrokerKey {
        BrokerKey {
            login: connect.header_value("login"),
            passcode: connect.header_value("passcode"),
            host: connect.header_value("host"),
        }
    }

    /// The CONNECT the shared connection sends: this identity, STOMP 1.2, and broker
    /// heart-beats so a dead broker is noticed.
    pub(super) fn connect_frame(&self) -> Bytes {
        let mut frame = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("heart-beat", super::link::HEARTBEAT_HEADER);
        for (name, value) in [
            ("host", &self.host),
            ("login", &self.login),
            ("passcode", &self.passcode),
        ] {
            if let Some(v) = value {
                frame.push_header(name, v.clone());
            }
        }
        encoded(&frame, Version::V1_2)
    }
}

/// One member of a shared subscription: where its copies go, and under which id.
pub(super) struct Slot {
    pub member: u64,
    pub sub_id: Bytes,
    pub version: Version,
    pub tx: mpsc::Sender<Bytes>,
    pub signal: Arc<Signal>,
}

/// One broker subscription and its members.
struct Shared {
    broker_id: Bytes,
    members: Vec<Slot>,
    /// The broker's RECEIPT for the SUBSCRIBE arrived: the subscription is in force.
    confirmed: bool,
    /// Members' RECEIPTs that wait for that (queue, end signal, encoded RECEIPT).
    waiting: Vec<(mpsc::Sender<Bytes>, Arc<Signal>, Bytes)>,
}

/// One shared broker connection.
struct Conn {
    id: u64,
    out: mpsc::Sender<Bytes>,
    /// Destination → its shared subscription.
    subs: HashMap<Bytes, Shared>,
    /// The broker's `subscription` id → destination.
    by_broker_id: HashMap<Bytes, Bytes>,
    next_sub: u64,
}

/// Every shared subscription of the process (see the module docs).
pub struct FanoutHub {
    pub(super) patterns: Vec<String>,
    pub(super) queue: usize,
    pub(super) upstream: crate::config::UpstreamConfig,
    /// The broker members, shared with the sessions (their health and spreading).
    pub(super) members: Arc<crate::upstream::Members>,
    pub(super) tls: Option<Arc<UpstreamTls>>,
    pub(super) limits: Limits,
    state: Mutex<HashMap<Arc<BrokerKey>, Conn>>,
    next_id: AtomicU64,
    metrics: FanoutMetrics,
}

impl FanoutHub {
    /// The hub for `config`; `None` when no destination is opted in (`fanout` empty).
    pub fn new(
        config: &Config,
        members: Arc<crate::upstream::Members>,
        tls: Option<Arc<UpstreamTls>>,
        registry: &prometheus::Registry,
    ) -> Option<Arc<FanoutHub>> {
        if config.fanout.is_empty() {
            return None;
        }
        Some(Arc::new(FanoutHub {
            patterns: config.fanout.clone(),
            queue: config.fanout_queue.max(1),
            upstream: config.upstream.clone(),
            members,
            tls,
            limits: config.limits,
            state: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics: FanoutMetrics::new(registry),
        }))
    }

    /// A session's membership (no subscription yet) and the receiving end of its queue.
    pub fn member(self: &Arc<Self>, key: BrokerKey, version: Version) -> (Member, MemberRx) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Member::new(self.clone(), Arc::new(key), id, version)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<BrokerKey>, Conn>> {
        // Every change is completed before the lock is released: a panic cannot leave half.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `slot` to the shared subscription of `dest`, opening the broker connection and
    /// subscription when it is the first; `receipt` (the member's encoded RECEIPT) is queued
    /// once the broker subscription is in force. `false`: no room; the session keeps its own
    /// path.
    pub(super) fn join(
        self: &Arc<Self>,
        key: &Arc<BrokerKey>,
        dest: &Bytes,
        slot: Slot,
        receipt: Option<Bytes>,
    ) -> bool {
        let mut state = self.lock();
        let conn = state
            .entry(key.clone())
            .or_insert_with(|| self.open_conn(key));
        if !conn.subs.contains_key(dest) {
            conn.next_sub += 1;
            let broker_id = Bytes::from(format!("fanout-{}", conn.next_sub));
            let subscribe = Frame::new(Command::Subscribe)
                .with_header("id", broker_id.clone())
                .with_header("destination", dest.clone())
                .with_header("ack", "auto")
                .with_header("receipt", broker_id.clone());
            if conn
                .out
                .try_send(encoded(&subscribe, Version::V1_2))
                .is_err()
            {
                if conn.subs.is_empty() {
                    state.remove(key);
                    self.metrics.connections.dec();
                }
                return false;
            }
            conn.by_broker_id.insert(broker_id.clone(), dest.clone());
            let shared = Shared {
                broker_id,
                members: Vec::new(),
                confirmed: false,
                waiting: Vec::new(),
            };
            conn.subs.insert(dest.clone(), shared);
            self.metrics.subscriptions.inc();
        }
        if let Some(shared) = conn.subs.get_mut(dest) {
            if let Some(receipt) = receipt {
                let waiter = (slot.tx.clone(), slot.signal.clone(), receipt);
                match shared.confirmed {
                    true => self.answer(waiter),
                    false => shared.waiting.push(waiter),
                }
            }
            shared.members.push(slot);
            self.metrics.members.inc();
        }
        true
    }

    /// The broker's RECEIPT for shared subscription `receipt_id` of connection `conn_id`: it is
    /// in force; the members waiting for their RECEIPT get it.
    pub(super) fn confirm(&self, key: &Arc<BrokerKey>, conn_id: u64, receipt_id: &[u8]) {
        let mut state = self.lock();
        let Some(conn) = state.get_mut(key).filter(|c| c.id == conn_id) else {
            return;
        };
        let Some(dest) = conn.by_broker_id.get(receipt_id) else {
            return;
        };
        if let Some(shared) = conn.subs.get_mut(dest) {
            shared.confirmed = true;
            for waiter in shared.waiting.drain(..) {
                self.answer(waiter);
            }
        }
    }

    /// Queues a member's RECEIPT behind the copies already queued for it.
    fn answer(&self, (tx, signal, receipt): (mpsc::Sender<Bytes>, Arc<Signal>, Bytes)) {
        if let Err(TrySendError::Full(_)) = tx.try_send(receipt) {
            if signal.end(MemberEnd::TooSlow(self.queue)) {
                self.metrics.ends.with_label_values(&["too_slow"]).inc();
            }
        }
    }

    /// Starts a shared broker connection's task; its SUBSCRIBEs wait in its queue until the
    /// broker's CONNECTED.
    fn open_conn(self: &Arc<Self>, key: &Arc<BrokerKey>) -> Conn {
        let (out, rx) = mpsc::channel(LINK_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections.inc();
        debug!(?key, conn = id, "opening a shared broker connection");
        tokio::spawn(super::link::run(self.clone(), key.clone(), id, rx));
        Conn {
            id,
            out,
            subs: HashMap::new(),
            by_broker_id: HashMap::new(),
            next_sub: 0,
        }
    }

    /// Removes a member's subscription `sub_id` of `dest` (UNSUBSCRIBE or the session's end).
    pub(super) fn leave(&self, key: &Arc<BrokerKey>, member: u64, dest: &Bytes, sub_id: &Bytes) {
        let mut state = self.lock();
        let Some(conn) = state.get_mut(key) else {
            return;
        };
        if let Some(shared) = conn.subs.get_mut(dest) {
            let before = shared.members.len();
            shared
                .members
                .retain(|s| !(s.member == member && s.sub_id == *sub_id));
            self.metrics
                .members
                .sub((before - shared.members.len()) as i64);
        }
        if self.prune(conn, dest) {
            state.remove(key);
        }
    }

    /// Ends the broker subscription of `dest` once it has no members; `true` when the shared
    /// connection then has no subscription left (the caller drops it, which closes it).
    fn prune(&self, conn: &mut Conn, dest: &Bytes) -> bool {
        if conn.subs.get(dest).is_some_and(|s| s.members.is_empty()) {
            if let Some(shared) = conn.subs.remove(dest) {
                conn.by_broker_id.remove(&shared.broker_id);
                self.metrics.subscriptions.dec();
                let unsubscribe =
                    Frame::new(Command::Unsubscribe).with_header("id", shared.broker_id);
                if conn
                    .out
                    .try_send(encoded(&unsubscribe, Version::V1_2))
                    .is_err()
                {
                    warn!("shared broker connection queue full: UNSUBSCRIBE dropped");
                }
            }
        }
        let empty = conn.subs.is_empty();
        if empty {
            self.metrics.connections.dec();
        }
        empty
    }

    /// Copies a broker MESSAGE of shared connection `conn_id` to every member of its
    /// subscription. A member whose queue is full is ended, never waited for.
    pub(super) fn deliver(&self, key: &Arc<BrokerKey>, conn_id: u64, message: Frame) {
        let Some(broker_id) = message.header_value("subscription") else {
            return;
        };
        self.metrics.messages.inc();
        let mut state = self.lock();
        let Some(conn) = state.get_mut(key).filter(|c| c.id == conn_id) else {
            return;
        };
        let Some(dest) = conn.by_broker_id.get(&broker_id).cloned() else {
            return;
        };
        let Some(shared) = conn.subs.get_mut(&dest) else {
            return;
        };
        let mut copies = Copies::new(message);
        let (before, queue) = (shared.members.len(), self.queue);
        let mut slow = 0;
        shared.members.retain(|slot| {
            match slot
                .tx
                .try_send(copies.for_member(&slot.sub_id, slot.version))
            {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    slow += u64::from(slot.signal.end(MemberEnd::TooSlow(queue)));
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
        let kept = shared.members.len();
        self.metrics.copies.inc_by(kept as u64);
        self.metrics.members.sub((before - kept) as i64);
        self.metrics
            .ends
            .with_label_values(&["too_slow"])
            .inc_by(slow);
        if kept < before && self.prune(conn, &dest) {
            state.remove(key);
        }
    }

    /// The shared connection `conn_id` failed: every member of every subscription on it is
    /// ended with `why`.
    pub(super) fn fail(&self, key: &Arc<BrokerKey>, conn_id: u64, why: &str) {
        let mut state = self.lock();
        if state.get(key).is_none_or(|c| c.id != conn_id) {
            return;
        }
        let Some(conn) = state.remove(key) else {
            return;
        };
        self.metrics.connections.dec();
        let mut ended = 0;
        for shared in conn.subs.into_values() {
            self.metrics.subscriptions.dec();
            self.metrics.members.sub(shared.members.len() as i64);
            for slot in shared.members {
                ended += u64::from(slot.signal.end(MemberEnd::BrokerGone(why.to_owned())));
            }
        }
        self.metrics
            .ends
            .with_label_values(&["broker_gone"])
            .inc_by(ended);
    }
}

/// A MESSAGE's copies for each (subscription id, version): most pages use the same id
/// (stomp.js: `sub-0`), so most members share one encoding.
struct Copies {
    message: Frame,
    made: Vec<(Bytes, Version, Bytes)>,
}

impl Copies {
    fn new(mut message: Frame) -> Copies {
        // Auto ack: there is nothing for the page to acknowledge.
        message.remove_headers_where(|h| h.name == "ack");
        message.clear_raw();
        Copies {
            message,
            made: Vec::new(),
        }
    }

    fn for_member(&mut self, sub_id: &Bytes, version: Version) -> Bytes {
        if let Some((_, _, bytes)) = self
            .made
            .iter()
            .find(|(s, v, _)| s == sub_id && *v == version)
        {
            return bytes.clone();
        }
        let mut copy = self.message.clone();
        copy.set_header_first("subscription", sub_id.clone());
        let bytes = encoded(&copy, version);
        self.made.push((sub_id.clone(), version, bytes.clone()));
        bytes
    }
}

/// `frame` encoded for `version`.
pub(super) fn encoded(frame: &Frame, version: Version) -> Bytes {
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.freeze()
}
