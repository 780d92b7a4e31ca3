//! Destination ACLs through the gateway to RabbitMQ: rules allow and deny SEND and SUBSCRIBE
//! as written, `{user}` resolves per user, a refusal carries `receipt-id` when the frame asked
//! for a receipt, and the session closes after it (the frame never reaches the broker).

use crate::common::unique;
use crate::policy_common::TempDir;
use crate::support::*;

const POLICY: &str = r#"
[[auth]]
type = "static"
users_file = "users.toml"

[upstream.default]
login = "stompgate"
passcode = "stompgate-secret"
vhost = "/"

[[acl]]
role = "*"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/exchange/FanoutDemandExchange"

[[acl]]
role = "user"
action = "deny"
commands = ["SEND"]
destination = "/queue/user.{user}.admin"

[[acl]]
role = "user"
action = "allow"
commands = ["SEND", "SUBSCRIBE"]
destination = "/queue/user.{user}.*"
"#;

async fn gateway() -> (Gw, String, String) {
    let (alice_pw, bob_pw) = (secret("alice-acl-1Wq"), secret("bob-acl-7Ec"));
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&alice_pw, &bob_pw));
    (start(dir, POLICY).await, alice_pw, bob_pw)
}

#[tokio::test]
async fn allowed_destinations_work() {
    let (gw, alice_pw, bob_pw) = gateway().await;
    let mut alice = gw.connected(&connect("alice", &alice_pw, "")).await;
    alice
        .subscribe("fanout", "/exchange/FanoutDemandExchange")
        .await;
    let own = format!("/queue/user.alice.{}", unique("q"));
    alice.subscribe("own", &own).await;
    alice.send_to(&own, "hello alice").await;
    assert_eq!(body(&alice.frame().await), "hello alice");

    let mut bob = gw.connected(&connect("bob", &bob_pw, "")).await;
    let own = format!("/queue/user.bob.{}", unique("q"));
    bob.subscribe("own", &own).await;
    bob.send_to(&own, "hello bob").await;
    assert_eq!(body(&bob.frame().await), "hello bob");
}

#[tokio::test]
async fn denied_frames_get_an_error_with_receipt_id_and_a_close() {
    let (gw, alice_pw, bob_pw) = gateway().await;
    let bobs = format!("/queue/user.bob.{}", unique("q"));
    let cases = [
        (
            format!("SEND\ndestination:{bobs}\nreceipt:r-bob\n\nsecret plan\0"),
            format!("access refused: SEND to {bobs} is not allowed"),
            Some("r-bob"),
        ),
        (
            "SEND\ndestination:/queue/user.alice.admin\n\nx\0".into(),
            "access refused: SEND to /queue/user.alice.admin is not allowed".into(),
            None,
        ),
        (
            "SUBSCRIBE\nid:1\ndestination:/queue/elsewhere\nreceipt:r-sub\n\n\0".into(),
            "access refused: SUBSCRIBE to /queue/elsewhere is not allowed".into(),
            Some("r-sub"),
        ),
        (
            "SEND\ndestination:/exchange/FanoutDemandExchange\n\nx\0".into(),
            "access refused: SEND to /exchange/FanoutDemandExchange is not allowed".into(),
            None,
        ),
        (
            "SEND\nreceipt:r-none\n\nx\0".into(),
            "access refused: SEND without a destination".into(),
            Some("r-none"),
        ),
    ];
    for (frame, want, receipt) in cases {
        let mut ws = gw.connected(&connect("alice", &alice_pw, "")).await;
        ws.send(&frame).await;
        let r = ws.refusal().await;
        assert_refused(&r, &want);
        assert_eq!(
            header(&r.frame, "receipt-id").as_deref(),
            receipt,
            "{}",
            r.frame
        );
    }
    // The refused SEND never reached the broker: bob's queue is empty.
    let mut bob = gw.connected(&connect("bob", &bob_pw, "")).await;
    bob.subscribe("own", &bobs).await;
    bob.expect_quiet().await;
}
