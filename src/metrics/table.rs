//! The live-connection table behind `GET /connections`: one [`SessionStats`] per session.
//!
//! The relay updates a session's counters with `Relaxed` atomics, never a lock; the facts that
//! are learnt once (user, vhost, version, heart-beats, upstream address) sit behind a mutex
//! that is taken during the handshake and by the admin API only. The table itself is locked
//! when a session opens or closes and when it is listed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::families::{command_index, Direction, COMMANDS};
use crate::stomp::{Command, Version};
use crate::transport::{ClientMeta, TransportKind};

/// Longest operator reason kept for a kick (the rest is cut).
pub const MAX_KICK_REASON_BYTES: usize = 200;

/// What is learnt about a session once, during its handshake.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionFacts {
    /// The user the client presented (its CONNECT `login`, or the policy's identity).
    pub user: Option<String>,
    /// The login the broker saw.
    pub broker_user: Option<String>,
    /// The vhost (`host` header) the broker saw.
    pub vhost: Option<String>,
    /// The negotiated STOMP version.
    pub stomp_version: Option<&'static str>,
    /// Negotiated heart-beats in ms: (client sends every, broker sends every); 0 = none.
    pub heart_beat_ms: (u64, u64),
    /// The broker address reached.
    pub upstream: Option<SocketAddr>,
}

/// One live session's identity and counters.
#[derive(Debug)]
pub struct SessionStats {
    /// The session id (`/connections/{id}`, the `session` field in logs).
    pub id: u64,
    /// The client address (after trusted forwarding headers).
    pub peer: SocketAddr,
    /// The transport in use.
    pub transport: TransportKind,
    /// Whether the client connection is TLS.
    pub tls: bool,
    started: Instant,
    started_unix_ms: u64,
    last_activity_ms: AtomicU64,
    connected: AtomicBool,
    facts: Mutex<SessionFacts>,
    frames: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    by_command: [[AtomicU64; COMMANDS]; 2],
    subscriptions: AtomicI64,
    queued: [AtomicU64; 2],
    kick: CancellationToken,
    kick_reason: Mutex<Option<String>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionStats {
    /// A fresh session for this client.
    pub fn new(id: u64, meta: &ClientMeta) -> SessionStats {
        let now = unix_ms(SystemTime::now());
        SessionStats {
            id,
            peer: meta.peer,
            transport: meta.transport,
            tls: meta.tls,
            started: Instant::now(),
            started_unix_ms: now,
            last_activity_ms: AtomicU64::new(now),
            connected: AtomicBool::new(false),
            facts: Mutex::default(),
            frames: Default::default(),
            bytes: Default::default(),
            by_command: Default::default(),
            subscriptions: AtomicI64::new(0),
            queued: Default::default(),
            kick: CancellationToken::new(),
            kick_reason: Mutex::new(None),
        }
    }

    /// Time since the session opened.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one relayed frame of `len` wire bytes.
    pub fn record_frame(&self, dir: Direction, command: Command, len: u64) {
        self.record_frames(dir, command, 1, len);
    }

    /// Counts `n` relayed frames of one command totalling `bytes` wire bytes.
    pub fn record_frames(&self, dir: Direction, command: Command, n: u64, bytes: u64) {
        let d = dir as usize;
        self.frames[d].fetch_add(n, Relaxed);
        self.bytes[d].fetch_add(bytes, Relaxed);
        self.by_command[d][command_index(command)].fetch_add(n, Relaxed);
        if dir == Direction::ClientToBroker {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            match command {
                Command::Subscribe => _ = self.subscriptions.fetch_add(n, Relaxed),
                Command::Unsubscribe => _ = self.subscriptions.fetch_sub(n, Relaxed),
                _ => {}
            }
        }
    }

    /// Marks activity at `now` (called once per forwarded batch, not per frame).
    pub fn touch(&self, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(u64::MAX);
        self.last_activity_ms
            .store(self.started_unix_ms.saturating_add(ms), Relaxed);
    }

    /// Sets the bytes queued in one direction; returns the change.
    pub fn set_queued(&self, dir: Direction, bytes: u64) -> i64 {
        let before = self.queued[dir as usize].swap(bytes, Relaxed);
        i64::try_from(bytes).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX)
    }

    /// Bytes queued in one direction now.
    pub fn queued(&self, dir: Direction) -> u64 {
        self.queued[dir as usize].load(Relaxed)
    }

    /// Frames relayed in one direction.
    pub fn frames(&self, dir: Direction) -> u64 {
        self.frames[dir as usize].load(Relaxed)
    }

    /// Records what the handshake learnt.
    pub fn update_facts(&self, f: impl FnOnce(&mut SessionFacts)) {
        f(&mut lock(&self.facts));
    }

    /// A copy of what the handshake learnt.
    pub fn facts(&self) -> SessionFacts {
        lock(&self.facts).clone()
    }

    /// Marks the session connected (past the broker's CONNECTED) with its version and
    /// negotiated heart-beats.
    pub fn set_connected(&self, version: Version, hb: (Option<Duration>, Option<Duration>)) {
        let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        self.update_facts(|f| {
            f.stomp_version = Some(version.as_str());
            f.heart_beat_ms = (ms(hb.0), ms(hb.1));
        });
        self.connected.store(true, Relaxed);
    }

    /// Whether the session got past the broker's CONNECTED.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// Asks the session to close with an ERROR naming `reason` (first reason wins).
    pub fn kick(&self, reason: &str) {
        let mut cut = reason.trim().to_owned();
        if cut.len() > MAX_KICK_REASON_BYTES {
            let mut end = MAX_KICK_REASON_BYTES;
            while !cut.is_char_boundary(end) {
                end -= 1;
            }
            cut.truncate(end);
        }
        lock(&self.kick_reason).get_or_insert(cut);
        self.kick.cancel();
    }

    /// Completes once the session was kicked.
    pub fn kicked(&self) -> WaitForCancellationFuture<'_> {
        self.kick.cancelled()
    }

    /// The operator's reason, once kicked.
    pub fn kick_reason(&self) -> String {
        lock(&self.kick_reason).clone().unwrap_or_default()
    }

    /// The JSON view for `/connections`.
    pub fn view(&self) -> SessionView {
        let per_dir = |d: Direction| DirectionView {
            frames: self.frames[d as usize].load(Relaxed),
            bytes: self.bytes[d as usize].load(Relaxed),
            queued_bytes: self.queued[d as usize].load(Relaxed),
            frames_by_command: Command::ALL
                .iter()
                .map(|c| {
                    (
                        c.as_str(),
                        self.by_command[d as usize][command_index(*c)].load(Relaxed),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        };
        let facts = self.facts();
        SessionView {
            id: self.id,
            peer: self.peer,
            transport: self.transport.as_str(),
            tls: self.tls,
            user: facts.user,
            broker_user: facts.broker_user,
            vhost: facts.vhost,
            stomp_version: facts.stomp_version,
            heart_beat: HeartBeatView {
                client_to_broker_ms: facts.heart_beat_ms.0,
                broker_to_client_ms: facts.heart_beat_ms.1,
            },
            started_unix_ms: self.started_unix_ms,
            last_activity_unix_ms: self.last_activity_ms.load(Relaxed),
            age_secs: self.age().as_secs_f64(),
            connected: self.is_connected(),
            client_to_broker: per_dir(Direction::ClientToBroker),
            broker_to_client: per_dir(Direction::BrokerToClient),
            subscriptions: self.subscriptions.load(Relaxed).max(0),
            queued_bytes: self.queued(Direction::ClientToBroker)
                + self.queued(Direction::BrokerToClient),
            upstream: facts.upstream,
        }
    }
}

/// Traffic one way, as `/connections` shows it.
#[derive(Debug, Serialize)]
pub struct DirectionView {
    /// Frames relayed.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes received and not yet handed on.
    pub queued_bytes: u64,
    /// Frames per command (commands never seen are left out).
    pub frames_by_command: std::collections::BTreeMap<&'static str, u64>,
}

/// Negotiated heart-beat intervals (0: none).
#[derive(Debug, Serialize)]
pub struct HeartBeatView {
    /// How often the client must send.
    pub client_to_broker_ms: u64,
    /// How often the broker must send.
    pub broker_to_client_ms: u64,
}

/// One session as `GET /connections` shows it.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: u64,
    /// Client address.
    pub peer: SocketAddr,
    /// Transport label.
    pub transport: &'static str,
    /// TLS on the client side.
    pub tls: bool,
    /// Client user.
    pub user: Option<String>,
    /// Broker login.
    pub broker_user: Option<String>,
    /// Broker vhost.
    pub vhost: Option<String>,
    /// STOMP version in force.
    pub stomp_version: Option<&'static str>,
    /// Negotiated heart-beats.
    pub heart_beat: HeartBeatView,
    /// Start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Last forwarded batch, ms since the Unix epoch.
    pub last_activity_unix_ms: u64,
    /// Seconds since the start.
    pub age_secs: f64,
    /// Past the broker's CONNECTED.
    pub connected: bool,
    /// Browser → broker traffic.
    pub client_to_broker: DirectionView,
    /// Broker → browser traffic.
    pub broker_to_client: DirectionView,
    /// SUBSCRIBE minus UNSUBSCRIBE frames.
    pub subscriptions: i64,
    /// Bytes queued both ways.
    pub queued_bytes: u64,
    /// Broker address.
    pub upstream: Option<SocketAddr>,
}

/// Every live session by id.
#[derive(Debug, Default)]
pub struct ConnectionTable {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<SessionStats>>>,
}

impl ConnectionTable {
    /// Registers a new session and returns it.
    pub fn open(&self, meta: &ClientMeta) -> Arc<SessionStats> {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let stats = Arc::new(SessionStats::new(id, meta));
        lock(&self.live).insert(id, stats.clone());
        stats
    }

    /// Forgets a session.
    pub fn remove(&self, id: u64) {
        lock(&self.live).remove(&id);
    }

    /// One session.
    pub fn get(&self, id: u64) -> Option<Arc<SessionStats>> {
        lock(&self.live).get(&id).cloned()
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<Arc<SessionStats>> {
        let mut all: Vec<_> = lock(&self.live).values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ClientMeta {
        ClientMeta {
            peer: "10.0.0.1:5000".parse().unwrap(),
            transport: TransportKind::WebSocket,
            tls: true,
            headers: Default::default(),
            query: None,
            client_cert: None,
        }
    }

    #[test]
    fn counts_frames_and_subscriptions() {
        let t = ConnectionTable::default();
        let s = t.open(&meta());
        s.record_frame(Direction::ClientToBroker, Command::Subscribe, 40);
        s.record_frame(Direction::ClientToBroker, Command::Subscribe, 40);
        s.record_frame(Direction::ClientToBroker, Command::Unsubscribe, 20);
        s.record_frame(Direction::BrokerToClient, Command::Message, 100);
        let v = s.view();
        assert_eq!(v.client_to_broker.frames, 3);
        assert_eq!(v.client_to_broker.bytes, 100);
        assert_eq!(v.client_to_broker.frames_by_command["SUBSCRIBE"], 2);
        assert_eq!(v.broker_to_client.frames_by_command["MESSAGE"], 1);
        assert_eq!(v.subscriptions, 1);
        assert_eq!(t.list().len(), 1);
        t.remove(s.id);
        assert!(t.is_empty());
    }

    #[test]
    fn kick_keeps_first_reason_and_cuts_long_ones() {
        let s = SessionStats::new(1, &meta());
        s.kick(&"é".repeat(300));
        s.kick("second");
        assert!(s.kick_reason().len() <= MAX_KICK_REASON_BYTES);
        assert!(s.kick_reason().starts_with('é'));
        assert!(s.kick.is_cancelled());
    }

    #[test]
    fn queued_reports_the_change() {
        let s = SessionStats::new(1, &meta());
        assert_eq!(s.set_queued(Direction::BrokerToClient, 100), 100);
        assert_eq!(s.set_queued(Direction::BrokerToClient, 30), -70);
        assert_eq!(s.queued(Direction::BrokerToClient), 30);
    }
}
