//! Observability: the Prometheus registry, the live-connection table, and frame tracing.
//!
//! | file | concept |
//! |---|---|
//! | [`families`] | every `stompgate_*` family on the gateway's own registry, children pre-resolved |
//! | [`table`] | per-session counters ([`SessionStats`]) and the table behind `/connections` |
//! | [`trace`] | run-time frame tracing for one connection or user, secrets redacted |
//! | [`peer`] | the client address behind trusted proxies ([`client_ip`]) |
//!
//! The relay holds one [`SessionRecorder`] per session; each pump counts its frames into a
//! [`FrameTally`] (plain adds, no atomics, no lock, no label hashing) and publishes it once per
//! batch. One relaxed atomic load per frame decides whether the frame is traced.

pub mod families;
pub mod peer;
pub mod table;
pub mod tally;
pub mod trace;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, Registry, TextEncoder};

use crate::config::Config;
use crate::relay::End;
use crate::stomp::Frame;
use crate::transport::ClientMeta;

pub use families::{command_index, Direction, Families, RefusedReason};
pub use peer::client_ip;
pub use table::{ConnectionTable, SessionStats, SessionView};
pub use tally::FrameTally;
pub use trace::{FrameTracer, TraceRequest, TraceStatus};

/// Everything the gateway measures, shared by the relay and the admin API.
#[derive(Debug)]
pub struct Metrics {
    families: Families,
    connections: ConnectionTable,
    tracer: FrameTracer,
    per_connection: bool,
    per_connection_cap: usize,
    per_connection_live: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_options(false, 0)
    }
}

impl Metrics {
    /// Metrics as the configuration asks (per-connection series opt-in and cap).
    pub fn new(config: &Config) -> Arc<Metrics> {
        Arc::new(Metrics::with_options(
            config.metrics_per_connection,
            config.metrics_per_connection_cap,
        ))
    }

    /// Metrics with explicit per-connection settings.
    pub fn with_options(per_connection: bool, per_connection_cap: usize) -> Metrics {
        // The names and buckets are fixed; a failure here is a bug the unit tests catch.
        let families = Families::new().expect("metric families are valid");
        for result in ["success", "failure"] {
            families.config_reloads.with_label_values(&[result]);
        }
        Metrics {
            families,
            connections: ConnectionTable::default(),
            tracer: FrameTracer::default(),
            per_connection,
            per_connection_cap,
            per_connection_live: AtomicUsize::new(0),
        }
    }

    /// The gateway's own registry.
    pub fn registry(&self) -> &Registry {
        &self.families.registry
    }

    /// The families, for callers outside the relay.
    pub fn families(&self) -> &Families {
        &self.families
    }

    /// The live-connection table.
    pub fn connections(&self) -> &ConnectionTable {
        &self.connections
    }

    /// The frame-tracing switch.
    pub fn tracer(&self) -> &FrameTracer {
        &self.tracer
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.families.registry.gather())
            .unwrap_or_default()
    }

    /// Counts a failed client TLS handshake (`reason`: `tls::TlsError::label()`).
    pub fn tls_handshake_failed(&self, reason: &str) {
        self.families
            .tls_failures
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a refused authentication (`reason`: `policy::AuthError::reason()`, a fixed set).
    pub fn auth_failed(&self, reason: &str) {
        self.families
            .auth_failures
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a refused admin API request (`reason`: a fixed set, see `admin`).
    pub fn admin_refused(&self, reason: &str) {
        self.families
            .admin_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a configuration (policy, certificate) reload.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.families
            .config_reloads
            .with_label_values(&[result])
            .inc();
    }

    /// Counts a session refused before it started (e.g. [`RefusedReason::Limit`] on HTTP 503).
    pub fn session_refused(&self, reason: RefusedReason) {
        self.families.sessions_refused[reason as usize].inc();
    }

    /// Opens a session: counts it, puts it in the table, and returns its recorder.
    pub fn open_session(self: &Arc<Self>, meta: &ClientMeta) -> Arc<SessionRecorder> {
        let t = families::transport_index(meta.transport);
        self.families.connections_opened[t].inc();
        self.families.connections_open[t].inc();
        let stats = self.connections.open(meta);
        let per_conn = self.per_connection_series(stats.id);
        Arc::new(SessionRecorder {
            metrics: self.clone(),
            stats,
            per_conn,
            closed: AtomicBool::new(false),
        })
    }

    /// Per-connection children, when enabled and under the cap.
    fn per_connection_series(&self, id: u64) -> Option<PerConnection> {
        if !self.per_connection {
            return None;
        }
        let live = self.per_connection_live.fetch_add(1, Relaxed);
        if live >= self.per_connection_cap {
            self.per_connection_live.fetch_sub(1, Relaxed);
            return None;
        }
        let id = id.to_string();
        let f = &self.families;
        Some(PerConnection {
            frames: Direction::ALL.map(|d| f.per_conn_frames.with_label_values(&[&id, d.as_str()])),
            bytes: Direction::ALL.map(|d| f.per_conn_bytes.with_label_values(&[&id, d.as_str()])),
            id,
        })
    }
}

/// A session's own series (opt-in).
#[derive(Debug)]
struct PerConnection {
    id: String,
    frames: [IntCounter; 2],
    bytes: [IntCounter; 2],
}

/// Which refusal (if any) a session end counts as. Before the broker's CONNECTED a policy
/// refusal is `auth`; after it, `acl` (per-frame destination rules).
pub fn refused_reason(end: &End, connected: bool) -> Option<RefusedReason> {
    Some(match end {
        End::Refused { .. } if connected => RefusedReason::Acl,
        End::Refused { .. } => RefusedReason::Auth,
        End::TooManyPending => RefusedReason::Limit,
        _ if connected => return None,
        End::ClientProtocol { .. } | End::Malformed(_) | End::ConnectTimeout => {
            RefusedReason::Protocol
        }
        End::BrokerUnreachable(_)
        | End::BrokerRefused(_)
        | End::BrokerError
        | End::BrokerGone(_)
        | End::BrokerProtocol(_) => RefusedReason::Upstream,
        _ => return None,
    })
}

/// One session's hooks, called by the relay. Closing (explicitly with [`SessionRecorder::close`],
/// or when the last handle drops) takes it out of the table and settles the gauges.
#[derive(Debug)]
pub struct SessionRecorder {
    metrics: Arc<Metrics>,
    stats: Arc<SessionStats>,
    per_conn: Option<PerConnection>,
    closed: AtomicBool,
}

impl SessionRecorder {
    /// The session's counters and facts.
    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.stats.id
    }

    /// Counts one relayed frame of `len` wire bytes (and traces it when a trace is on).
    #[inline]
    pub fn frame(&self, dir: Direction, frame: &Frame, len: usize) {
        let (d, c) = (dir as usize, command_index(frame.command));
        let f = &self.metrics.families;
        let len64 = len as u64;
        f.frames[d][c].inc();
        f.frame_bytes[d][c].inc_by(len64);
        f.frame_size[d].observe(len as f64);
        self.stats.record_frame(dir, frame.command, len64);
        if let Some(p) = &self.per_conn {
            p.frames[d].inc();
            p.bytes[d].inc_by(len64);
        }
        if self.metrics.tracer.is_active() {
            self.metrics.tracer.trace(&self.stats, dir, frame);
        }
    }

    /// A per-batch tally for one direction of this session (see [`FrameTally`]).
    pub fn tally(self: &Arc<Self>, dir: Direction) -> FrameTally {
        FrameTally::new(self.clone(), dir)
    }

    /// Adds `frames` frames of `command` totalling `bytes` to the per-session figures (and the
    /// per-connection series, when enabled).
    fn count(&self, dir: Direction, command: crate::stomp::Command, frames: u64, bytes: u64) {
        self.stats.record_frames(dir, command, frames, bytes);
        if let Some(p) = &self.per_conn {
            p.frames[dir as usize].inc_by(frames);
            p.bytes[dir as usize].inc_by(bytes);
        }
    }

    /// Counts one relayed heart-beat EOL.
    #[inline]
    pub fn heartbeat(&self, dir: Direction) {
        self.metrics.families.heartbeats[dir as usize].inc();
    }

    /// A batch whose first frame was decoded at `first_decoded` was handed to the other side.
    #[inline]
    pub fn batch_forwarded(&self, dir: Direction, first_decoded: Instant) {
        let now = Instant::now();
        let secs = now.saturating_duration_since(first_decoded).as_secs_f64();
        self.metrics.families.gateway_latency[dir as usize].observe(secs);
        self.stats.touch(now);
    }

    /// Bytes received one way and not yet handed on.
    #[inline]
    pub fn set_queued(&self, dir: Direction, bytes: usize) {
        let delta = self.stats.set_queued(dir, bytes as u64);
        if delta != 0 {
            self.metrics.families.queued_bytes[dir as usize].add(delta);
        }
    }

    /// The broker answered CONNECTED `elapsed` after the connect began.
    pub fn upstream_connected(&self, elapsed: Duration) {
        self.metrics
            .families
            .upstream_connect
            .observe(elapsed.as_secs_f64());
    }

    /// Records how the session ended and takes it out of the table.
    pub fn close(&self, end: &End) {
        let refused = refused_reason(end, self.stats.is_connected());
        let hb_side = match end {
            End::ClientHeartbeatTimeout => Some(0),
            End::BrokerHeartbeatTimeout => Some(1),
            _ => None,
        };
        self.settle(end.reason(), refused, hb_side);
    }

    fn settle(&self, reason: &str, refused: Option<RefusedReason>, hb_side: Option<usize>) {
        if self.closed.swap(true, Relaxed) {
            return;
        }
        let f = &self.metrics.families;
        let transport = self.stats.transport;
        f.connections_open[families::transport_index(transport)].dec();
        f.connections_closed
            .with_label_values(&[transport.as_str(), reason])
            .inc();
        f.session_duration.observe(self.stats.age().as_secs_f64());
        if let Some(r) = refused {
            f.sessions_refused[r as usize].inc();
        }
        if let Some(side) = hb_side {
            f.heartbeat_timeouts[side].inc();
        }
        for dir in Direction::ALL {
            self.set_queued(dir, 0);
        }
        if let Some(p) = &self.per_conn {
            for d in Direction::ALL {
                let _ = f.per_conn_frames.remove_label_values(&[&p.id, d.as_str()]);
                let _ = f.per_conn_bytes.remove_label_values(&[&p.id, d.as_str()]);
            }
            self.metrics.per_connection_live.fetch_sub(1, Relaxed);
        }
        self.metrics.connections.remove(self.stats.id);
    }
}

impl Drop for SessionRecorder {
    fn drop(&mut self) {
        // A session task that was aborted never reached `close`.
        self.settle("aborted", None, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::Command;
    use crate::transport::TransportKind;

    fn meta() -> ClientMeta {
        ClientMeta {
            peer: "127.0.0.1:9".parse().unwrap(),
            transport: TransportKind::SockjsXhrStreaming,
            tls: false,
            headers: Default::default(),
            query: None,
            client_cert: None,
        }
    }

    #[test]
    fn session_life_shows_in_the_exposition() {
        let m = Arc::new(Metrics::with_options(true, 1));
        let a = m.open_session(&meta());
        let b = m.open_session(&meta());
        a.frame(Direction::ClientToBroker, &Frame::new(Command::Send), 10);
        a.set_queued(Direction::BrokerToClient, 5);
        let text = m.render();
        assert!(
            text.contains("stompgate_connections_open{transport=\"sockjs-xhr-streaming\"} 2"),
            "{text}"
        );
        assert!(text
            .contains("stompgate_frames_total{command=\"SEND\",direction=\"client_to_broker\"} 1"));
        assert!(text.contains("stompgate_queued_bytes{direction=\"broker_to_client\"} 5"));
        // Cap 1: only the first session has its own series.
        assert!(text.contains(&format!(
            "stompgate_connection_frames_total{{connection=\"{}\"",
            a.id()
        )));
        assert!(!text.contains(&format!("connection=\"{}\"", b.id())));
        a.close(&End::ClientHeartbeatTimeout);
        drop(b);
        let text = m.render();
        assert!(text.contains("stompgate_connections_open{transport=\"sockjs-xhr-streaming\"} 0"));
        assert!(text.contains("reason=\"client_heartbeat_timeout\""));
        assert!(text.contains("reason=\"aborted\""));
        assert!(text.contains("stompgate_heartbeat_timeouts_total{side=\"client\"} 1"));
        assert!(text.contains("stompgate_queued_bytes{direction=\"broker_to_client\"} 0"));
        assert!(!text.contains("stompgate_connection_frames_total{"));
        assert!(m.connections().is_empty());
    }

    #[test]
    fn refusals_are_classified_by_phase() {
        let refused = End::Refused {
            message: "no".into(),
            receipt: None,
        };
        assert_eq!(refused_reason(&refused, false), Some(RefusedReason::Auth));
        assert_eq!(refused_reason(&refused, true), Some(RefusedReason::Acl));
        assert_eq!(
            refused_reason(&End::ConnectTimeout, false),
            Some(RefusedReason::Protocol)
        );
        assert_eq!(
            refused_reason(&End::BrokerError, false),
            Some(RefusedReason::Upstream)
        );
        assert_eq!(refused_reason(&End::BrokerError, true), None);
        assert_eq!(refused_reason(&End::ClientGone, false), None);
    }
}
