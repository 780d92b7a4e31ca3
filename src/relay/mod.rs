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
mod lifetime;
mod pending;
mod pumps;
mod verify;

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
pub use pending::{PendingGuard, PendingLogins};
pub use verify::VerifyPool;

/// Largest command line + header block of a CONNECT, before the client has authenticated: room
/// for a 16 KiB token in `passcode` and the usual headers, far below the frame limits that
/// apply once it has.
pub const PRE_AUTH_HEADER_BYTES: usize = 24 * 1024;
/// Most header lines in a CONNECT before the client has authenticated.
pub const PRE_AUTH_HEADERS: usize = 64;
/// Largest frame body before the client has authenticated. A CONNECT has none (the codec
/// refuses one); a few bytes let a client that sends another frame first be told that the
/// first frame must be CONNECT, rather than that its body is too large.
pub const PRE_AUTH_BODY_BYTES: usize = 256;

/// The decoder limits before authentication: `config`'s, tightened to a small CONNECT, so an
/// anonymous client cannot make the gateway buffer megabytes.
pub fn pre_auth_limits(config: crate::stomp::Limits) -> crate::stomp::Limits {
    crate::stomp::Limits {
        max_header_bytes: config.max_header_bytes.min(PRE_AUTH_HEADER_BYTES),
        max_headers: config.max_headers.min(PRE_AUTH_HEADERS),
        max_body_bytes: config.max_body_bytes.min(PRE_AUTH_BODY_BYTES),
    }
}

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
    /// The threads that check credentials (only with a policy).
    pub verify: Option<VerifyPool>,
    /// Unauthenticated connections per client address (WebSocket and SockJS).
    pub pending: Arc<PendingLogins>,
    /// Bumped after every successful policy reload: live sessions re-check their identity.
    pub policy_reloaded: tokio::sync::watch::Sender<u64>,
    /// The broker members new sessions are spread over, and their health.
    pub upstreams: crate::upstream::Members,
    /// New connections a second (`--accept-rate`); `None`: no limit.
    pub accept_rate: Option<Arc<crate::admission::AcceptRate>>,
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
    /// The credential-checking threads could not start.
    #[error("cannot start the credential-checking threads: {0}")]
    Threads(std::io::Error),
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
        let verify = policy
            .as_ref()
            .map(|_| VerifyPool::with_threads(config.login_threads))
            .transpose()
            .map_err(ContextError::Threads)?;
        let upstreams = crate::upstream::Members::new(
            config.upstream.addrs.clone(),
            config.upstream.down_for,
            Some(metrics.registry()),
        );
        let accept_rate =
            crate::admission::AcceptRate::new(config.accept_rate, config.accept_burst)
                .map(Arc::new);
        Ok(Arc::new(RelayContext {
            pending: PendingLogins::new(config.max_pending_per_address),
            config,
            shutdown,
            metrics,
            policy,
            limiter: std::sync::Mutex::new(LoginLimiter::new(limits)),
            upstream_tls,
            verify,
            policy_reloaded: tokio::sync::watch::Sender::new(0),
            upstreams,
            accept_rate,
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
        decoder: Decoder::for_client(pre_auth_limits(ctx.config.limits)),
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
    // Held until the CONNECT has passed the policy (see `PendingLogins`).
    let Some(pending) = ctx.pending.try_enter(client.meta.peer.ip()) else {
        return (End::TooManyPending, Version::V1_0);
    };
    let connected = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return (End::Shutdown, Version::V1_0),
        _ = stats.kicked() => return (kicked(), Version::V1_0),
        // Boxed: the handshake's state is large and needed once; the pumps' is what an idle
        // session keeps.
        r = Box::pin(handshake::establish(ctx, client, tx)) => r,
    };
    drop(pending);
    // Only authentication reads the request headers.
    client.meta.headers = http::HeaderMap::new();
    let upstream = match connected {
        Ok(up) => up,
        Err(end) => return (end, Version::V1_0),
    };
    // Authenticated: the configured frame limits apply from the next frame on, and the
    // transport's own pre-authentication bound goes.
    client.decoder.set_limits(ctx.config.limits);
    client.rx.authenticated();
    let version = upstream.version;
    let identity = client.identity.clone();
    let end = tokio::select! {
        biased;
        _ = shutdown.cancelled() => End::Shutdown,
        _ = stats.kicked() => kicked(),
        end = lifetime::until_revoked(ctx, identity) => end,
        end = pumps::run(ctx, client, tx, upstream) => end,
    };
    (end, version)
}
