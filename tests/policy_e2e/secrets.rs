//! Secrets never reach the logs. Every test in this binary logs at TRACE into one buffer
//! (`support::capture_logs`, `RUST_LOG` ignored); this test runs sessions that carry known
//! secrets through every path (a right and a wrong passcode, a good and an expired JWT in the
//! passcode and in an `Authorization` header, broker passcodes in the policy), then checks
//! that none of them, nor any secret another test registered, appears in what was logged.

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::policy_common::{claims, now, sign_hs, TempDir};
use crate::support::*;

#[tokio::test]
async fn no_secret_appears_in_the_trace_logs() {
    let (alice_pw, bob_pw) = (secret("alice-logs-Zx81"), secret("bob-logs-Qw27"));
    let hs = secret("hs256-logs-secret-0123456789-abcdefghij");
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&alice_pw, &bob_pw));
    dir.write("hs256.secret", &hs);
    let policy = r#"
[[auth]]
type = "static"
users_file = "users.toml"
[[auth]]
type = "jwt"
audience = "stompgate"
sources = { passcode = true, authorization_header = true }
[[auth.key]]
alg = "HS256"
secret_file = "hs256.secret"

[upstream.default]
login = "svc-a"
passcode = "svc-a-secret"
vhost = "tenant-a"
"#;
    let gw = start(dir, policy).await;
    let good = secret(sign_hs(Algorithm::HS256, hs.as_bytes(), &claims("carol")));
    let mut c = claims("carol");
    c["exp"] = json!(now() - 3600);
    let expired = secret(sign_hs(Algorithm::HS256, hs.as_bytes(), &c));

    let mut ws = gw.connected(&connect("alice", &alice_pw, "")).await;
    ws.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    assert!(ws.frame().await.starts_with("RECEIPT\n"));
    gw.refused(&connect("alice", &bob_pw, "")).await;
    gw.connected(&connect("", &good, "")).await;
    gw.refused(&connect("", &expired, "")).await;
    let bearer = format!("Bearer {good}");
    gw.connected_with(&[("authorization", &bearer)], "", &connect("", "", ""))
        .await;
    tokio::time::sleep(QUIET).await;

    let logs = captured_logs();
    assert!(
        tracing::enabled!(target: "stompgate", tracing::Level::TRACE),
        "the capture runs at TRACE"
    );
    assert!(logs.contains("DEBUG"), "debug lines were captured");
    assert!(logs.contains("authenticated"), "sessions were logged");
    assert!(
        logs.contains("authentication failed"),
        "refusals were logged"
    );
    let mut secrets = registered_secrets();
    secrets.extend(BROKER_SECRETS.iter().map(|s| s.to_string()));
    let leaks: Vec<&str> = logs
        .lines()
        .filter(|l| secrets.iter().any(|s| l.contains(s.as_str())))
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets reached the logs:\n{}",
        leaks.join("\n")
    );
}
