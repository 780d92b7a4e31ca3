//! A session's side of the fan-out: which of its subscription ids are shared, and the bounded
//! queue its copies arrive on. Dropping the [`Member`] (the session ended) leaves every shared
//! subscription it was in.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::hub::{encoded, BrokerKey, FanoutHub, Slot};
use super::rules::shareable;
use crate::policy::Dialect;
use crate::stomp::{Command, Frame, Version};

/// Why the fan-out ended a member.
#[derive(Debug, Clone)]
pub enum MemberEnd {
    /// Its queue was full (the bound, in messages).
    TooSlow(usize),
    /// The shared broker connection failed.
    BrokerGone(String),
}

/// Set once when the fan-out ends a member.
pub(super) struct Signal {
    ended: CancellationToken,
    why: OnceLock<MemberEnd>,
}

impl Signal {
    /// Ends the member; `true` the first time.
    pub(super) fn end(&self, why: MemberEnd) -> bool {
        let first = self.why.set(why).is_ok();
        self.ended.cancel();
        first
    }
}

/// What the relay does with a client frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Intercept {
    /// Not the fan-out's: forward it to the session's own broker connection.
    Forward,
    /// Handled by the fan-out (a shared SUBSCRIBE or its UNSUBSCRIBE): forward nothing.
    Taken,
    /// Refuse the frame with this ERROR message.
    Refuse(&'static str),
}

/// The client-to-broker side of a session's membership.
pub struct Member {
    hub: Arc<FanoutHub>,
    key: Arc<BrokerKey>,
    id: u64,
    version: Version,
    tx: mpsc::Sender<Bytes>,
    signal: Arc<Signal>,
    /// Shared subscription id → destination.
    shared: HashMap<Bytes, Bytes>,
    /// Subscription ids on the session's own broker connection.
    own: HashSet<Bytes>,
}

/// The broker-to-client side: the member's copies, or why the fan-out ended it.
pub struct MemberRx {
    rx: mpsc::Receiver<Bytes>,
    signal: Arc<Signal>,
}

/// What the member's queue yields.
pub enum MemberEvent {
    /// A whole frame for the client.
    Frame(Bytes),
    /// The fan-out ended the member.
    End(MemberEnd),
}

impl Member {
    pub(super) fn new(
        hub: Arc<FanoutHub>,
        key: Arc<BrokerKey>,
        id: u64,
        version: Version,
    ) -> (Member, MemberRx) {
        let (tx, rx) = mpsc::channel(hub.queue);
        let signal = Arc::new(Signal {
            ended: CancellationToken::new(),
            why: OnceLock::new(),
        });
        let rx = MemberRx {
            rx,
            signal: signal.clone(),
        };
        let member = Member {
            hub,
            key,
            id,
            version,
            tx,
            signal,
            shared: HashMap::new(),
            own: HashSet::new(),
        };
        (member, rx)
    }

    /// Routes a client frame that passed the policy: a shareable SUBSCRIBE joins the shared
    /// subscription, its UNSUBSCRIBE leaves it; everything else is forwarded as today.
    pub fn on_client_frame(&mut self, dialect: Dialect, frame: &Frame) -> Intercept {
        match frame.command {
            Command::Subscribe => self.on_subscribe(dialect, frame),
            Command::Unsubscribe => self.on_unsubscribe(frame),
            _ => Intercept::Forward,
        }
    }

    fn on_subscribe(&mut self, dialect: Dialect, frame: &Frame) -> Intercept {
        let id = frame.header_value("id");
        if let Some(id) = &id {
            if self.shared.contains_key(id) || self.own.contains(id) {
                // Copies and the broker's own deliveries could not be told apart.
                return Intercept::Refuse("duplicate subscription id");
            }
        }
        if let Some((dest, sub_id)) = shareable(&self.hub.patterns, dialect, frame) {
            let (dest, sub_id) = (Bytes::copy_from_slice(dest), Bytes::copy_from_slice(sub_id));
            let slot = Slot {
                member: self.id,
                sub_id: sub_id.clone(),
                version: self.version,
                tx: self.tx.clone(),
                signal: self.signal.clone(),
            };
            let receipt = frame.header_value("receipt").map(|r| {
                let answer = Frame::new(Command::Receipt).with_header("receipt-id", r);
                encoded(&answer, self.version)
            });
            if self.hub.join(&self.key, &dest, slot, receipt) {
                self.shared.insert(sub_id, dest);
                return Intercept::Taken;
            }
        }
        if let Some(id) = id {
            self.own.insert(id);
        }
        Intercept::Forward
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Intercept {
        let Some(id) = frame.header_value("id") else {
            return Intercept::Forward;
        };
        let Some(dest) = self.shared.remove(&id) else {
            self.own.remove(&id);
            return Intercept::Forward;
        };
        self.hub.leave(&self.key, self.id, &dest, &id);
        if let Some(receipt) = frame.header_value("receipt") {
            // Behind every copy already queued for this subscription, as the broker would.
            let answer = Frame::new(Command::Receipt).with_header("receipt-id", receipt);
            if let Err(TrySendError::Full(_)) = self.tx.try_send(encoded(&answer, self.version)) {
                self.signal.end(MemberEnd::TooSlow(self.hub.queue));
            }
        }
        Intercept::Taken
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        for (sub_id, dest) in self.shared.drain() {
            self.hub.leave(&self.key, self.id, &dest, &sub_id);
        }
    }
}

impl MemberRx {
    /// The next copy for the client, or the member's end. Cancel-safe.
    pub async fn next(&mut self) -> MemberEvent {
        tokio::select! {
            biased;
            _ = self.signal.ended.cancelled() => {
                let why = self.signal.why.get().cloned();
                MemberEvent::End(why.unwrap_or(MemberEnd::BrokerGone("fan-out ended".into())))
            }
            Some(bytes) = self.rx.recv() => MemberEvent::Frame(bytes),
        }
    }

    /// A copy already queued, without waiting (to batch copies into one flush).
    pub fn try_next(&mut self) -> Option<Bytes> {
        if self.signal.ended.is_cancelled() {
            return None;
        }
        self.rx.try_recv().ok()
    }
}
