//! [`SockjsOptions`]: the SockJS service's limits and settings beyond
//! [`crate::config::SockjsConfig`], and what it learns from the rest of the gateway (the
//! policy, trusted proxies, metrics).

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::policy::PolicyHandle;

/// The `sockjs-client` the iframe page loads by default.
pub const DEFAULT_CLIENT_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// Limits and settings beyond [`crate::config::SockjsConfig`]; the defaults suit the gateway.
#[derive(Debug, Clone)]
pub struct SockjsOptions {
    /// Most live sessions (all transports); more are refused with 503. Default 100 000.
    pub max_sessions: usize,
    /// Largest `xhr_send` / `jsonp_send` body, and largest WebSocket message. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Most messages queued for one client. Default 1024.
    pub queue_messages: usize,
    /// Most bytes queued for one client (one message is always admitted). Default 8 MiB.
    pub queue_bytes: usize,
    /// The policy whose backends say which request credentials a session is bound to and
    /// whether a browser sends them on its own ([`crate::policy::RequestCredentials`]). Without one, sessions
    /// are bound to the client address. Default none.
    pub policy: Option<PolicyHandle>,
    /// Proxies whose `X-Forwarded-For` gives the client address (binding, per-address cap).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where refusals are counted (`stompgate_sessions_refused_total{reason}`). Default none.
    pub metrics: Option<Arc<Metrics>>,
    /// How long a send waits for queue room (or a WebSocket write) before the session is
    /// closed as too slow. Default 10 s.
    pub send_timeout: Duration,
    /// Client messages buffered towards the relay per session (with `batch_messages`: client
    /// sends, each one `xhr_send` body or one WebSocket read's worth). Default 256.
    pub inbound_messages: usize,
    /// The `sockjs-client` script URL in the iframe page. Default [`DEFAULT_CLIENT_URL`].
    pub client_url: String,
    /// Treat each session as a byte stream both ways, for a consumer that re-frames what it
    /// reads and flushes what it sends (the STOMP relay). A [`SockjsRx::recv`] then returns
    /// every client message already received, joined into one chunk, and a [`SockjsTx`] holds
    /// the frames it is sent until its `flush`, so they reach the client as one `a[...]` frame:
    /// the relay then writes one broker batch and one client write per burst, not one per
    /// message. Off by default, for an application that reads one SockJS message per `recv`
    /// and never flushes (the `sockjs_echo` example).
    pub batch_messages: bool,
    /// The accept-rate limit new sessions take a token from (over it: 503 with `Retry-After`).
    /// Default none.
    pub accept_rate: Option<Arc<crate::admission::AcceptRate>>,
}

impl Default for SockjsOptions {
    fn default() -> Self {
        SockjsOptions {
            max_sessions: 100_000,
            max_body_bytes: 8 * 1024 * 1024,
            queue_messages: 1024,
            queue_bytes: 8 * 1024 * 1024,
            policy: None,
            trusted_proxies: Vec::new(),
            metrics: None,
            send_timeout: Duration::from_secs(10),
            inbound_messages: 256,
            client_url: DEFAULT_CLIENT_URL.to_owned(),
            batch_messages: false,
            accept_rate: None,
        }
    }
}
