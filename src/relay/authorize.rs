//! The CONNECT policy step: who the client is, which broker identity and vhost it becomes
//! (invariant 2), and the per-frame destination ACL of the Connected state.

use std::time::Instant;

use tracing::{info, warn};

use super::{End, RelayContext};
use crate::policy::{rewrite_connect, Dialect, Identity};
use crate::stomp::Frame;
use crate::transport::ClientMeta;

/// Headers that must not repeat in a CONNECT when the client's values could reach the broker.
const SINGLE_VALUED: [&str; 5] = ["login", "passcode", "host", "accept-version", "heart-beat"];

/// Under a policy these may not repeat in any letter case either: `host` + `HOST` is as
/// ambiguous to a broker that reads names case-insensitively as `host` twice.
const GUARDED: [&str; 3] = ["login", "passcode", "host"];

/// Authenticates the CONNECT and rewrites it in place. Returns the client's identity when a
/// policy is configured (`None` under the static rewrite).
pub(super) async fn authorize(
    ctx: &RelayContext,
    meta: &ClientMeta,
    connect: &mut Frame,
) -> Result<Option<Identity>, End> {
    let receipt = connect.header_value("receipt");
    let refuse = |message: String| End::Refused {
        message,
        receipt: receipt.clone(),
    };
    if let Some(name) = SINGLE_VALUED.iter().find(|h| connect.header_count(h) > 1) {
        // The first copy would win at the broker, but another reader might take the last:
        // an ambiguous CONNECT is refused, never guessed at (invariant 3).
        return Err(refuse(format!(
            "ambiguous CONNECT: repeated `{name}` header"
        )));
    }
    let Some(handle) = &ctx.policy else {
        if !ctx.config.upstream.passthrough {
            rewrite_connect(connect, &ctx.config.upstream.identity);
        } else if connect.header("login").is_none_or(str::is_empty) {
            // The broker would apply its default user (RabbitMQ: `guest`, allowed over the
            // gateway's loopback link): pass-through forwards credentials, never their absence.
            return Err(refuse("authentication failed: no credentials".into()));
        }
        return Ok(None);
    };
    if let Some(name) = GUARDED.iter().find(|g| count_any_case(connect, g) > 1) {
        return Err(refuse(format!(
            "ambiguous CONNECT: repeated `{name}` header"
        )));
    }
    let ip = meta.peer.ip();
    let policy = handle.current();
    let limited = {
        let mut limiter = lock(ctx);
        // `[login_limit]` may have changed in a reload since the limiter was made.
        limiter.set_settings(policy.login_limit());
        limiter.check(ip, Instant::now())
    };
    if let Err(e) = limited {
        warn!(peer = %ip, reason = e.reason(), "login refused");
        ctx.metrics.auth_failed(e.reason());
        return Err(refuse(e.to_string()));
    }
    let (frame, meta_owned, checker) = (connect.clone(), meta.clone(), policy.clone());
    // Password hashes are slow on purpose: keep them off the async workers.
    let verdict = tokio::task::spawn_blocking(move || checker.authenticate(&frame, &meta_owned))
        .await
        .map_err(|_| refuse("authentication failed: internal error".into()))?;
    let identity = match verdict {
        Ok(id) => id,
        Err(e) => {
            lock(ctx).record_failure(ip, Instant::now());
            warn!(peer = %ip, reason = e.reason(), "authentication failed");
            ctx.metrics.auth_failed(e.reason());
            return Err(refuse(e.to_string()));
        }
    };
    let upstream = policy.upstream_for(&identity, connect).map_err(|e| {
        warn!(user = %identity.user, cause = %e, "no broker identity for this user");
        refuse("access refused: no broker mapping for this identity".into())
    })?;
    rewrite_connect(connect, &upstream);
    info!(user = %identity.user, broker_user = upstream.login.as_deref().unwrap_or(""), vhost = upstream.host.as_deref().unwrap_or(""), "authenticated");
    Ok(Some(identity))
}

/// How many headers are named `name`, in any letter case.
fn count_any_case(frame: &Frame, name: &str) -> usize {
    frame
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
        .count()
}

fn lock(ctx: &RelayContext) -> std::sync::MutexGuard<'_, crate::policy::LoginLimiter> {
    // A panic while holding the lock cannot leave the limiter inconsistent: use it anyway.
    ctx.limiter.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ACL for one client frame of the Connected state (its `destination`, found and checked
/// for repeats by the caller; its guarded headers, unless the caller saw that none of its
/// headers may be one), with the policy in force now, the identity the session connected with
/// and the broker's dialect.
pub(super) fn check_acl(
    ctx: &RelayContext,
    identity: Option<&Identity>,
    dialect: Dialect,
    frame: &Frame,
    destination: Option<&[u8]>,
    may_carry_guarded: bool,
) -> Result<(), End> {
    let (Some(handle), Some(id)) = (&ctx.policy, identity) else {
        return Ok(());
    };
    handle
        .peek()
        .check_client_frame(id, frame, destination, dialect, may_carry_guarded)
        .map_err(|denied| End::Refused {
            message: denied.to_string(),
            receipt: frame.header_value("receipt"),
        })
}
