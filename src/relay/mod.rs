//! One session's state machine and its two pumps.
//!
//! ```text
//! AwaitConnect ──CONNECT passes policy──► Connecting ──broker CONNECTED──► Connected ──► Closing
//!      │ timeout / bad frame                 │ unreachable / broker ERROR      │ one pump ends
//!      ▼                                     ▼                                 ▼
//!   ERROR + close                      ERROR + close                 ERROR (if due) + close
//! ```
//!
//! Nothing from the client reaches the broker before its CONNECT passed the policy (invariant 1);
//! the broker connection is opened only then. In `Connected`, `client_to_broker` and
//! `broker_to_client` run side by side in one task; the first to end decides how the session
//! closes ([`End`]), and the other is dropped at once, which closes the broker socket so the
//! broker redelivers what was not acknowledged (invariant 6).

mod authorize;
mod end;
mod handshake;
mod pumps;

use std::sync::Arc;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, Instrument};

use crate::config::Config;
use crate::metrics::{client_ip, Metrics, SessionRecorder};
use crate::policy::{Dialect, Identity, LoginLimiter, PolicyError, PolicyHandle};
use crate::stomp::{Decoder, Version};
use crate::tls::{TlsError, UpstreamTls};
use crate::transport::{ClientLink, ClientMeta, ClientRx, ClientTx};

pub use end::End;

/// What every session shares: configuration, policy, metrics, and the shutdown signal.
pub struct RelayContext {
    /// The running configuration.
    pub config: Arc<Config>,
    /// Cancelled when the gateway stops waiting for sessions: they close with 1001.
    pub shutdown: CancellationToken,
    /// Counters, the live-connection table and frame tracing (shared with the admin API).
    pub metrics: Arc<Metrics>,
    /// The reloadable policy (`--policy`); `None` means the static rewrite of `config.upstream`.
    pub policy: Option<PolicyHandle>,
    /// Failed logins per client IP (only with a policy).
    pub limiter: std::sync::Mutex<LoginLimiter>,
    /// TLS towards the broker (`--upstream-tls`).
    pub upstream_tls: Option<Arc<UpstreamTls>>,
}

/// Why a [`RelayContext`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The policy file is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The broker TLS settings are invalid.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl RelayContext {
    /// A context for this configuration, with metrics of its own.
    pub fn new(
        config: Arc<Config>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ContextError> {
        let metrics = Metrics::new(&config);
        RelayContext::with_metrics(config, shutdown, metrics)
    }

    /// A context sharing `metrics` (with the admin API, in the gateway). Loads the policy file
    /// and the broker TLS settings named by `config`.
    pub fn with_metrics(
        config: Arc<Config>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ContextError> {
        let fallback = config
            .upstream
            .identity
            .login
            .is_some()
            .then(|| config.upstream.identity.clone());
        let policy = config
            .policy
            .as_deref()
            .map(|p| PolicyHandle::load(p, fallback))
            .transpose()?;
        let limits = policy
            .as_ref()
            .map(|p| p.current().login_limit())
            .unwrap_or_default();
        let upstream_tls = config
            .upstream
            .tls
            .as_ref()
            .map(UpstreamTls::new)
            .transpose()?
            .map(Arc::new);
        Ok(Arc::new(RelayContext {
            config,
            shutdown,
            metrics,
            policy,
            limiter: std::sync::Mutex::new(LoginLimiter::new(limits)),
            upstream_tls,
        }))
    }
}

/// The client half of a session: its link, unread bytes, and decoder.
struct ClientSide<R> {
    rx: R,
    buf: BytesMut,
    decoder: Decoder,
    /// This session's metrics hooks and its row in the connection table.
    rec: Arc<SessionRecorder>,
    /// What the transport knows about the client (for authentication).
    meta: ClientMeta,
    /// Who the client proved to be (with a policy); kept for the whole session.
    identity: Option<Identity>,
    /// The broker's dialect (configured, or detected from CONNECTED), for the policy's
    /// per-frame checks.
    dialect: Dialect,
}

/// Runs one client session to its end: waits for CONNECT, applies policy, connects upstream,
/// pumps frames both ways, and closes both sides with the right ERROR and close code.
pub async fn run_session<R: ClientRx, T: ClientTx>(ctx: Arc<RelayContext>, link: ClientLink<R, T>) {
    let ClientLink {
        rx,
        mut tx,
        mut meta,
    } = link;
    // Behind a trusted proxy, the client is the first untrusted X-Forwarded-For hop.
    let ip = client_ip(meta.peer.ip(), &meta.headers, &ctx.config.trusted_proxies);
    meta.peer = std::net::SocketAddr::new(ip, meta.peer.port());
    meta.headers = compact_headers(&meta.headers);
    let rec = ctx.metrics.open_session(&meta);
    let span = info_span!("stomp", session = rec.id(), peer = %meta.peer);
    let mut client = ClientSide {
        rx,
        buf: BytesMut::new(),
        decoder: Decoder::for_client(ctx.config.limits),
        rec,
        meta,
        identity: None,
        dialect: ctx.config.broker.unwrap_or_default(),
    };
    async move {
        let started = std::time::Instant::now();
        let (end, version) = drive(&ctx, &mut client, &mut tx).await;
        debug!(transport = client.meta.transport.as_str(), "session ending");
        client.rec.close(&end);
        // Hand the receiving half back to the transport first: while closing, it reads the
        // client's Close reply itself (a held-but-unpolled half would stall the close).
        drop(client.rx);
        end.finish(&mut tx, version).await;
        info!(
            reason = end.reason(),
            secs = started.elapsed().as_secs_f64(),
            "session closed"
        );
    }
    .instrument(span)
    .await
}

/// The request headers with values of their own. hyper's values are slices of its 8 KiB read
/// buffer, which a session holding them would keep alive for its whole life.
fn compact_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = http::HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            out.append(name.clone(), copy);
        }
    }
    out
}

/// AwaitConnect → Connecting → Connected; returns why the session ended and the version in force.
async fn drive<R: ClientRx, T: ClientTx>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    tx: &mut T,
) -> (End, Version) {
    let shutdown = ctx.shutdown.clone();
    let stats = client.rec.stats().clone();
    let kicked = || End::Kicked(stats.kick_reason());
    let connected = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return (End::Shutdown, Version::V1_0),
        _ = stats.kicked() => return (kicked(), Version::V1_0),
        // Boxed: the handshake's state is large and needed once; the pumps' is what an idle
        // session keeps.
        r = Box::pin(handshake::establish(ctx, client, tx)) => r,
    };
    // Only authentication reads the request headers.
    client.meta.headers = http::HeaderMap::new();
    let upstream = match connected {
        Ok(up) => up,
        Err(end) => return (end, Version::V1_0),
    };
    let version = upstream.version;
    let end = tokio::select! {
        biased;
        _ = shutdown.cancelled() => End::Shutdown,
        _ = stats.kicked() => kicked(),
        end = pumps::run(ctx, client, tx, upstream) => end,
    };
    (end, version)
}
