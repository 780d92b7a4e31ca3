//! The metric families on the gateway's own [`Registry`] (never the process-global default),
//! with every labelled child the hot path touches resolved once at start-up: recording a frame
//! indexes arrays by direction and [`Command`], it never hashes a label set.
//!
//! Names follow Prometheus practice: the `stompgate_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters. They are a contract with dashboards
//! (`deploy/grafana-dashboard.json`) and outside checks.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::stomp::Command;
use crate::transport::TransportKind;

/// Every transport, indexed by [`transport_index`].
pub const TRANSPORTS: [TransportKind; 7] = [
    TransportKind::WebSocket,
    TransportKind::SockjsWebsocket,
    TransportKind::SockjsXhrStreaming,
    TransportKind::SockjsXhrPolling,
    TransportKind::SockjsEventsource,
    TransportKind::SockjsHtmlfile,
    TransportKind::SockjsJsonp,
];

/// Number of STOMP commands ([`Command::ALL`]).
pub const COMMANDS: usize = Command::ALL.len();

/// The position of `t` in [`TRANSPORTS`].
pub fn transport_index(t: TransportKind) -> usize {
    match t {
        TransportKind::WebSocket => 0,
        TransportKind::SockjsWebsocket => 1,
        TransportKind::SockjsXhrStreaming => 2,
        TransportKind::SockjsXhrPolling => 3,
        TransportKind::SockjsEventsource => 4,
        TransportKind::SockjsHtmlfile => 5,
        TransportKind::SockjsJsonp => 6,
    }
}

/// The position of `c` in [`Command::ALL`] (its declaration order, checked by a test).
pub fn command_index(c: Command) -> usize {
    c as usize
}

/// Which way a frame flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the browser to the broker.
    ClientToBroker = 0,
    /// From the broker to the browser.
    BrokerToClient = 1,
}

impl Direction {
    /// Both directions, indexed by `as usize`.
    pub const ALL: [Direction; 2] = [Direction::ClientToBroker, Direction::BrokerToClient];

    /// The `direction` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToBroker => "client_to_broker",
            Direction::BrokerToClient => "broker_to_client",
        }
    }
}

/// Why a session was refused (`stompgate_sessions_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedReason {
    /// Authentication failed (policy refused the CONNECT).
    Auth,
    /// A destination ACL refused a frame.
    Acl,
    /// A connection limit (HTTP 503 before the session started).
    Limit,
    /// The client broke STOMP before it was connected (or sent no CONNECT in time).
    Protocol,
    /// The broker could not be reached or refused the CONNECT.
    Upstream,
    /// SockJS: a session id too long or outside `[A-Za-z0-9_-]` (404).
    SockjsSessionId,
    /// SockJS: the client address has its most sessions open (429).
    SockjsAddressLimit,
    /// SockJS: a POST body did not arrive in time (408).
    SockjsBodyTimeout,
    /// SockJS: a request without `Origin`, or cross-site, while a browser sends credentials on
    /// its own (403).
    SockjsOrigin,
    /// SockJS: a request for a session with another credential or address than its creator's
    /// (404, as for an unknown session).
    SockjsBinding,
    /// SockJS: a send found the session's inbound queue full for the send timeout (503).
    SockjsInboundFull,
    /// Over `--accept-rate`: a WebSocket upgrade or SockJS session creation (503).
    AcceptRate,
}

impl RefusedReason {
    /// Every reason, indexed by `as usize`.
    pub const ALL: [RefusedReason; 12] = [
        RefusedReason::Auth,
        RefusedReason::Acl,
        RefusedReason::Limit,
        RefusedReason::Protocol,
        RefusedReason::Upstream,
        RefusedReason::SockjsSessionId,
        RefusedReason::SockjsAddressLimit,
        RefusedReason::SockjsBodyTimeout,
        RefusedReason::SockjsOrigin,
        RefusedReason::SockjsBinding,
        RefusedReason::SockjsInboundFull,
        RefusedReason::AcceptRate,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::Auth => "auth",
            RefusedReason::Acl => "acl",
            RefusedReason::Limit => "limit",
            RefusedReason::Protocol => "protocol",
            RefusedReason::Upstream => "upstream",
            RefusedReason::SockjsSessionId => "sockjs_session_id",
            RefusedReason::SockjsAddressLimit => "sockjs_address_limit",
            RefusedReason::SockjsBodyTimeout => "sockjs_body_timeout",
            RefusedReason::SockjsOrigin => "sockjs_origin",
            RefusedReason::SockjsBinding => "sockjs_binding",
            RefusedReason::SockjsInboundFull => "sockjs_inbound_full",
            RefusedReason::AcceptRate => "accept_rate",
        }
    }
}

/// Per direction, per command.
pub type ByCommand<T> = [[T; COMMANDS]; 2];

/// Every family, registered on one registry.
#[derive(Debug)]
pub struct Families {
    /// The gateway's own registry.
    pub registry: Registry,
    /// `stompgate_connections_open{transport}`.
    pub connections_open: [IntGauge; 7],
    /// `stompgate_connections_opened_total{transport}`.
    pub connections_opened: [IntCounter; 7],
    /// `stompgate_connections_closed_total{transport,reason}` (resolved once per close).
    pub connections_closed: IntCounterVec,
    /// `stompgate_sessions_refused_total{reason}`.
    pub sessions_refused: [IntCounter; RefusedReason::ALL.len()],
    /// `stompgate_frames_total{direction,command}`.
    pub frames: ByCommand<IntCounter>,
    /// `stompgate_frame_bytes_total{direction,command}`.
    pub frame_bytes: ByCommand<IntCounter>,
    /// `stompgate_heartbeats_total{direction}`.
    pub heartbeats: [IntCounter; 2],
    /// `stompgate_frame_size_bytes{direction}`.
    pub frame_size: [Histogram; 2],
    /// `stompgate_frame_gateway_latency_seconds{direction}`.
    pub gateway_latency: [Histogram; 2],
    /// `stompgate_upstream_connect_duration_seconds`.
    pub upstream_connect: Histogram,
    /// `stompgate_session_duration_seconds`.
    pub session_duration: Histogram,
    /// `stompgate_heartbeat_timeouts_total{side}` (0: client, 1: broker).
    pub heartbeat_timeouts: [IntCounter; 2],
    /// `stompgate_queued_bytes{direction}`.
    pub queued_bytes: [IntGauge; 2],
    /// `stompgate_tls_handshake_failures_total{reason}`.
    pub tls_failures: IntCounterVec,
    /// `stompgate_auth_failures_total{reason}` (reasons: `policy::AuthError::reason()`).
    pub auth_failures: IntCounterVec,
    /// `stompgate_config_reloads_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `stompgate_connection_frames_total{connection,direction}` (opt-in).
    pub per_conn_frames: IntCounterVec,
    /// `stompgate_connection_bytes_total{connection,direction}` (opt-in).
    pub per_conn_bytes: IntCounterVec,
    /// `stompgate_admin_requests_refused_total{reason}`.
    pub admin_refused: IntCounterVec,
}

/// Frame sizes: 64 B .. 4 MiB (the default body limit).
fn size_buckets() -> Vec<f64> {
    exponential_buckets(64.0, 4.0, 10).unwrap_or_default()
}

/// Time inside the gateway: 10 µs .. ~2.6 s.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.000_01, 4.0, 10).unwrap_or_default()
}

impl Families {
    /// Creates and registers every family. Fails only on a programming error (a duplicate or
    /// invalid name), which the unit tests catch.
    pub fn new() -> Result<Families, prometheus::Error> {
        let r = Registry::new();
        let open = reg(
            &r,
            IntGaugeVec::new(
                opts("stompgate_connections_open", "Client sessions open now."),
                &["transport"],
            )?,
        )?;
        let opened = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_connections_opened_total",
                    "Client sessions opened.",
                ),
                &["transport"],
            )?,
        )?;
        let refused = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_sessions_refused_total",
                    "Sessions refused, by reason (auth, acl, limit, protocol, upstream, sockjs_*).",
                ),
                &["reason"],
            )?,
        )?;
        let frames = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_frames_total",
                    "STOMP frames relayed, by direction and command.",
                ),
                &["direction", "command"],
            )?,
        )?;
        let bytes = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_frame_bytes_total",
                    "Bytes of STOMP frames relayed, by direction and command.",
                ),
                &["direction", "command"],
            )?,
        )?;
        let beats = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_heartbeats_total",
                    "Heart-beat EOLs relayed, by direction.",
                ),
                &["direction"],
            )?,
        )?;
        let size = reg(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "stompgate_frame_size_bytes",
                    "Size of relayed STOMP frames.",
                )
                .buckets(size_buckets()),
                &["direction"],
            )?,
        )?;
        let latency = reg(&r, HistogramVec::new(HistogramOpts::new("stompgate_frame_gateway_latency_seconds", "Time from decoding the first frame of a forwarded batch to handing the batch to the other side's writer (one sample per batch).").buckets(latency_buckets()), &["direction"])?)?;
        let timeouts = reg(
            &r,
            IntCounterVec::new(
                opts(
                    "stompgate_heartbeat_timeouts_total",
                    "Sessions closed because a side stopped heart-beating.",
                ),
                &["side"],
            )?,
        )?;
        let queued = reg(
            &r,
            IntGaugeVec::new(
                opts(
                    "stompgate_queued_bytes",
                    "Bytes received by the gateway and not yet handed to the other side.",
                ),
                &["direction"],
            )?,
        )?;
        Ok(Families {
            connections_open: TRANSPORTS.map(|t| open.with_label_values(&[t.as_str()])),
            connections_opened: TRANSPORTS.map(|t| opened.with_label_values(&[t.as_str()])),
            connections_closed: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_connections_closed_total",
                        "Client sessions closed, by transport and close reason.",
                    ),
                    &["transport", "reason"],
                )?,
            )?,
            sessions_refused: RefusedReason::ALL.map(|x| refused.with_label_values(&[x.as_str()])),
            frames: by_command(&frames),
            frame_bytes: by_command(&bytes),
            heartbeats: Direction::ALL.map(|d| beats.with_label_values(&[d.as_str()])),
            frame_size: Direction::ALL.map(|d| size.with_label_values(&[d.as_str()])),
            gateway_latency: Direction::ALL.map(|d| latency.with_label_values(&[d.as_str()])),
            upstream_connect: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "stompgate_upstream_connect_duration_seconds",
                        "Time to reach the broker: TCP connect until its CONNECTED.",
                    )
                    .buckets(exponential_buckets(0.000_5, 3.0, 10)?),
                )?,
            )?,
            session_duration: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "stompgate_session_duration_seconds",
                        "Lifetime of client sessions.",
                    )
                    .buckets(vec![
                        0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
                    ]),
                )?,
            )?,
            heartbeat_timeouts: ["client", "broker"].map(|s| timeouts.with_label_values(&[s])),
            queued_bytes: Direction::ALL.map(|d| queued.with_label_values(&[d.as_str()])),
            tls_failures: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_tls_handshake_failures_total",
                        "Client TLS handshakes that failed, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            auth_failures: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_auth_failures_total",
                        "Client authentications refused by the policy, by reason.",
                    ),
                    &["reason"],
                )?,
            )?,
            config_reloads: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_config_reloads_total",
                        "Configuration/policy/certificate reloads, by result.",
                    ),
                    &["result"],
                )?,
            )?,
            per_conn_frames: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_connection_frames_total",
                        "Frames per live session (opt-in, capped).",
                    ),
                    &["connection", "direction"],
                )?,
            )?,
            per_conn_bytes: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_connection_bytes_total",
                        "Frame bytes per live session (opt-in, capped).",
                    ),
                    &["connection", "direction"],
                )?,
            )?,
            admin_refused: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "stompgate_admin_requests_refused_total",
                        "Admin API requests refused, by reason (host, unauthorized, no_token, origin, content_type).",
                    ),
                    &["reason"],
                )?,
            )?,
            registry: r,
        })
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// Registers a collector and hands it back.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> Result<C, prometheus::Error> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn by_command(v: &IntCounterVec) -> ByCommand<IntCounter> {
    Direction::ALL.map(|d| Command::ALL.map(|c| v.with_label_values(&[d.as_str(), c.as_str()])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_index_follows_all() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(command_index(*c), i);
        }
        for (i, t) in TRANSPORTS.iter().enumerate() {
            assert_eq!(transport_index(*t), i);
        }
    }

    #[test]
    fn families_register_with_stompgate_names() {
        let f = Families::new().unwrap();
        f.frames[1][command_index(Command::Message)].inc();
        let names: Vec<String> = f
            .registry
            .gather()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert!(
            names.iter().all(|n| n.starts_with("stompgate_")),
            "{names:?}"
        );
        assert!(names.contains(&"stompgate_frames_total".to_owned()));
        assert!(names.contains(&"stompgate_frame_gateway_latency_seconds".to_owned()));
    }
}
