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

mod end;
mod handshake;
mod pumps;

use std::sync::Arc;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::Config;
use crate::stomp::{Decoder, Version};
use crate::transport::{ClientLink, ClientRx, ClientTx};

pub use end::End;

/// What every session shares: configuration, policy, metrics, and the shutdown signal.
pub struct RelayContext {
    /// The running configuration.
    pub config: Arc<Config>,
    /// Cancelled when the gateway stops waiting for sessions: they close with 1001.
    pub shutdown: CancellationToken,
}

impl RelayContext {
    /// A context for this configuration.
    pub fn new(config: Arc<Config>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(RelayContext { config, shutdown })
    }
}

/// The client half of a session: its link, unread bytes, and decoder.
struct ClientSide<R> {
    rx: R,
    buf: BytesMut,
    decoder: Decoder,
}

/// Runs one client session to its end: waits for CONNECT, applies policy, connects upstream,
/// pumps frames both ways, and closes both sides with the right ERROR and close code.
pub async fn run_session<R: ClientRx, T: ClientTx>(ctx: Arc<RelayContext>, link: ClientLink<R, T>) {
    let ClientLink { rx, mut tx, meta } = link;
    let mut client = ClientSide {
        rx,
        buf: BytesMut::new(),
        decoder: Decoder::new(ctx.config.limits),
    };
    let started = std::time::Instant::now();
    let (end, version) = drive(&ctx, &mut client, &mut tx).await;
    debug!(transport = meta.transport.as_str(), "session ending");
    end.finish(&mut tx, version).await;
    info!(
        reason = end.reason(),
        secs = started.elapsed().as_secs_f64(),
        "session closed"
    );
}

/// AwaitConnect → Connecting → Connected; returns why the session ended and the version in force.
async fn drive<R: ClientRx, T: ClientTx>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    tx: &mut T,
) -> (End, Version) {
    let shutdown = ctx.shutdown.clone();
    let connected = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return (End::Shutdown, Version::V1_0),
        r = handshake::establish(ctx, client, tx) => r,
    };
    let upstream = match connected {
        Ok(up) => up,
        Err(end) => return (end, Version::V1_0),
    };
    let version = upstream.version;
    let end = tokio::select! {
        biased;
        _ = shutdown.cancelled() => End::Shutdown,
        end = pumps::run(ctx, client, tx, upstream) => end,
    };
    (end, version)
}
