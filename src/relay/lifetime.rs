//! How long an authenticated session may live: until its token's `exp` (plus leeway), and only
//! while the policy in force still accepts its identity.
//!
//! Runs beside the pumps in the Connected state; when it ends, the session closes with an
//! `ERROR` (`authentication failed: token expired`, `… user removed`, `… no longer accepted`)
//! so stomp.js reconnects, with fresh credentials.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tracing::info;

use super::{End, RelayContext};
use crate::policy::Identity;

/// Completes when the session must end for want of valid credentials; never without a policy
/// identity.
pub(super) async fn until_revoked(ctx: &RelayContext, identity: Option<Identity>) -> End {
    let Some(id) = identity else {
        return std::future::pending().await;
    };
    let expiry = id.valid_until_unix.map(deadline);
    let mut reloads = ctx.policy_reloaded.subscribe();
    loop {
        tokio::select! {
            _ = sleep_until(expiry) => {
                info!(user = %id.user, "token expired: closing the session");
                return End::TokenExpired;
            }
            changed = reloads.changed() => {
                if changed.is_err() {
                    // The context is going away: nothing more will be reloaded.
                    return std::future::pending().await;
                }
                let verdict = ctx.policy.as_ref().and_then(|p| p.peek().revocation(&id));
                if let Some(why) = verdict {
                    info!(user = %id.user, reason = why.reason(), "policy reload: closing the session");
                    return End::Revoked(why);
                }
            }
        }
    }
}

/// The instant a Unix time (seconds) falls at, on tokio's clock.
fn deadline(unix_secs: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = Duration::from_secs(unix_secs);
    Instant::now() + at.saturating_sub(now)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
