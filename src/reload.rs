//! Live reload: on SIGHUP the policy (users, keys, ACLs) and the TLS certificate are re-read;
//! between signals the policy's files are polled for changes. A bad new file is rejected with a
//! log line and the old one stays in force (`stompgate_config_reloads_total{result}` counts both).

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::relay::RelayContext;
use crate::tls::ServerTls;

/// How often the policy's files are checked for changes.
pub const POLICY_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Runs until `stop`: reloads on SIGHUP, and the policy whenever its files change.
pub async fn run(ctx: Arc<RelayContext>, tls: Option<Arc<ServerTls>>, stop: CancellationToken) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(cause = %e, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    };
    let mut tick = tokio::time::interval(POLICY_POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => reload_policy(&ctx, false).await,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                info!("SIGHUP: reloading policy and certificates");
                reload_policy(&ctx, true).await;
                if let Some(tls) = &tls {
                    ctx.metrics.config_reload(tls.reload().is_ok());
                }
            }
        }
    }
}

/// Reloads the policy now (as SIGHUP does), then lets live sessions re-check their identity.
pub async fn reload_policy_now(ctx: &Arc<RelayContext>) {
    reload_policy(ctx, true).await;
}

/// Reloads the policy (always when `forced`, else only if a file changed), off the runtime.
async fn reload_policy(ctx: &Arc<RelayContext>, forced: bool) {
    let Some(handle) = ctx.policy.clone() else {
        return;
    };
    let outcome = tokio::task::spawn_blocking(move || {
        if forced {
            Some(handle.reload())
        } else {
            handle.reload_if_changed()
        }
    })
    .await;
    match outcome {
        Ok(Some(Ok(policy))) => {
            info!(file = %policy.path().display(), "policy reloaded");
            ctx.metrics.config_reload(true);
            // Live sessions re-check their identity against the new policy.
            ctx.policy_reloaded
                .send_modify(|generation| *generation += 1);
        }
        Ok(Some(Err(e))) => {
            warn!(cause = %e, "policy reload rejected; the previous policy stays in force");
            ctx.metrics.config_reload(false);
        }
        Ok(None) => {}
        Err(e) => warn!(cause = %e, "policy reload task failed"),
    }
}
