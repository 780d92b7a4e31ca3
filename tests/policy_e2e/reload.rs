//! Reload through a running gateway: a broken policy or users file is rejected and the old
//! rules keep working; a valid change takes effect for new sessions (picked up by the file
//! poll); and the per-IP failed-login limit.

use std::time::Duration;

use crate::policy_common::TempDir;
use crate::support::*;

const STATIC: &str = "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n";
const BAD: &str = "authentication failed: bad credentials";

#[tokio::test]
async fn a_broken_file_keeps_the_old_policy_and_a_good_one_takes_effect() {
    let (old_pw, new_pw) = (secret("alice-old-0Pl"), secret("alice-new-3Mn"));
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&old_pw, "unused-bob-pw"));
    let policy = format!("{STATIC}{UPSTREAM_DEFAULT}");
    let gw = start(dir, &policy).await;
    let handle = gw.ctx.policy.clone().expect("a policy is loaded");
    let mut live = gw.connected(&connect("alice", &old_pw, "")).await;

    gw.dir.write("policy.toml", "[[auth]]\ntype = \"nope\"\n");
    assert!(handle.reload().is_err(), "a broken policy file is rejected");
    gw.connected(&connect("alice", &old_pw, "")).await;
    gw.dir.write("policy.toml", &policy);
    gw.dir.write(
        "users.toml",
        "[[user]]\nname = \"alice\"\nhash = \"plain\"\n",
    );
    assert!(handle.reload().is_err(), "a broken users file is rejected");
    gw.connected(&connect("alice", &old_pw, "")).await;

    // A valid change, found by the gateway's own poll of the files (no explicit reload).
    gw.dir
        .write("users.toml", users_file(&new_pw, "unused-bob-pw"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let mut ws = gw.ws().await;
        ws.send(&connect("alice", &new_pw, "")).await;
        if ws.frame().await.starts_with("CONNECTED\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new users file was never loaded"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_refused(&gw.refused(&connect("alice", &old_pw, "")).await, BAD);
    // The session that connected before all this is still alive.
    let q = crate::common::unique("/queue/reload");
    live.subscribe("s", &q).await;
}

#[tokio::test]
async fn failed_logins_per_address_are_limited() {
    let pw = secret("alice-limit-8Vc");
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&pw, "unused-bob-pw"));
    let policy =
        format!("{STATIC}{UPSTREAM_DEFAULT}\n[login_limit]\nburst = 3\nrefill_every = \"1h\"\n");
    let gw = start(dir, &policy).await;
    gw.connected(&connect("alice", &pw, "")).await;
    for _ in 0..3 {
        assert_refused(&gw.refused(&connect("alice", "guess", "")).await, BAD);
    }
    // Even the right password waits now: the address spent its failures.
    assert_refused(
        &gw.refused(&connect("alice", &pw, "")).await,
        "authentication failed: too many failed attempts, try again later",
    );
}
