//! The CONNECT policy step: who the client is, which broker identity and vhost it becomes
//! (invariant 2), and the per-frame destination ACL of the Connected state.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use super::{End, RelayContext};
use crate::policy::{claimed_user, rewrite_connect, AuthError, Identity, Policy};
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
        return authorize_static(ctx, connect).map_err(refuse);
    };
    if let Some(name) = GUARDED.iter().find(|g| count_any_case(connect, g) > 1) {
        return Err(refuse(format!(
            "ambiguous CONNECT: repeated `{name}` header"
        )));
    }
    let policy = handle.current();
    let identity = check_credentials(ctx, &policy, connect, meta)
        .await
        .map_err(|e| refused_login(ctx, meta.peer.ip(), e, refuse))?;
    let upstream = policy.upstream_for(&identity, connect).map_err(|e| {
        warn!(user = %identity.user, cause = %e, "no broker identity for this user");
        refuse("access refused: no broker mapping for this identity".into())
    })?;
    rewrite_connect(connect, &upstream);
    info!(user = %identity.user, broker_user = upstream.login.as_deref().unwrap_or(""), vhost = upstream.host.as_deref().unwrap_or(""), "authenticated");
    Ok(Some(identity))
}

/// The limiter and the credential check: a token is taken before the check (so parallel
/// attempts cannot outrun the limit) and given back when the login succeeds, or when it was
/// never checked (the verify queue was full).
async fn check_credentials(
    ctx: &RelayContext,
    policy: &Arc<Policy>,
    connect: &Frame,
    meta: &ClientMeta,
) -> Result<Identity, AuthError> {
    let (ip, user) = (meta.peer.ip(), claimed_user(connect, meta));
    {
        let mut limiter = lock(ctx);
        // `[login_limit]` may have changed in a reload since the limiter was made.
        limiter.set_settings(policy.login_limit());
        limiter.try_take(ip, &user, Instant::now())?;
    }
    let (frame, meta_owned, checker) = (connect.clone(), meta.clone(), policy.clone());
    // Password hashes are slow and memory-hungry on purpose: a few threads of their own.
    let verdict = match &ctx.verify {
        Some(pool) => pool
            .run(move || checker.authenticate(&frame, &meta_owned))
            .await
            .and_then(|v| v),
        None => Err(AuthError::Busy),
    };
    if matches!(verdict, Ok(_) | Err(AuthError::Busy)) {
        lock(ctx).give_back(ip, &user, Instant::now());
    }
    verdict
}

/// Without a policy: the static broker identity, or pass-through of the client's own login
/// (never none, never one on the deny list).
fn authorize_static(ctx: &RelayContext, connect: &mut Frame) -> Result<Option<Identity>, String> {
    let up = &ctx.config.upstream;
    if !up.passthrough {
        rewrite_connect(connect, &up.identity);
        return Ok(None);
    }
    let Some(login) = connect.header("login").filter(|l| !l.is_empty()) else {
        // The broker would apply its default user (RabbitMQ: `guest`, allowed over the
        // gateway's loopback link): pass-through forwards credentials, never their absence.
        ctx.metrics
            .auth_failed(AuthError::MissingCredentials.reason());
        return Err(AuthError::MissingCredentials.to_string());
    };
    if crate::policy::login_denied(&up.deny_logins, login) {
        warn!(
            reason = AuthError::LoginDenied.reason(),
            "pass-through login refused"
        );
        ctx.metrics.auth_failed(AuthError::LoginDenied.reason());
        return Err(AuthError::LoginDenied.to_string());
    }
    Ok(None)
}

/// Logs and counts a refused login; the ERROR to send.
fn refused_login(
    ctx: &RelayContext,
    ip: std::net::IpAddr,
    e: AuthError,
    refuse: impl Fn(String) -> End,
) -> End {
    warn!(peer = %ip, reason = e.reason(), "authentication failed");
    ctx.metrics.auth_failed(e.reason());
    refuse(e.to_string())
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

/// The destination ACL for one client frame of the Connected state (its `destination`, found
/// and checked for repeats by the caller), with the policy in force now and the identity the
/// session connected with.
pub(super) fn check_acl(
    ctx: &RelayContext,
    identity: Option<&Identity>,
    frame: &Frame,
    destination: Option<&[u8]>,
) -> Result<(), End> {
    let (Some(handle), Some(id)) = (&ctx.policy, identity) else {
        return Ok(());
    };
    handle
        .peek()
        .check_destination(id, frame.command, destination)
        .map_err(|denied| End::Refused {
            message: denied.to_string(),
            receipt: frame.header_value("receipt"),
        })
}
