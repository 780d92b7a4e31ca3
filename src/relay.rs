//! One session's state machine (AwaitConnect → Connecting → Connected → Closing) and its two
//! pumps, `client_to_broker` and `broker_to_client`. (Being written by the lead.)

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::transport::{ClientLink, ClientRx, ClientTx};

/// What every session shares: configuration, policy, metrics, and the shutdown signal.
pub struct RelayContext {
    /// The running configuration.
    pub config: Arc<Config>,
    /// Cancelled when the gateway drains: sessions close with 1001.
    pub shutdown: CancellationToken,
}

impl RelayContext {
    /// A context for this configuration.
    pub fn new(config: Arc<Config>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(RelayContext { config, shutdown })
    }
}

/// Runs one client session to its end: waits for CONNECT, applies policy, connects upstream,
/// pumps frames both ways, and closes both sides with the right ERROR and close code.
pub async fn run_session<R: ClientRx, T: ClientTx>(ctx: Arc<RelayContext>, link: ClientLink<R, T>) {
    let _ = (ctx, link);
}
