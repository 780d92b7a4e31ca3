//! Attacks on the CONNECT rewrite and the frame order, against a fake broker that records
//! the bytes it receives: every refusal happens before the broker is contacted, and what the
//! broker does see carries the gateway's `login`/`passcode`/`host`, never the client's.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::policy_common::TempDir;
use crate::support::*;

const POLICY: &str = r#"
[[auth]]
type = "static"
users_file = "users.toml"

[upstream.default]
login = "svc"
passcode = "svc-pw"
vhost = "vh"

[[acl]]
role = "*"
action = "allow"
commands = ["SEND", "SUBSCRIBE"]
destination = "/queue/ok"
"#;

/// The gateway's own CONNECT headers, first, in this order.
const OURS: [&str; 3] = ["login:svc", "passcode:svc-pw", "host:vh"];

async fn gateway(policy: &str) -> (Gw, FakeBroker, String) {
    let pw = secret("alice-attack-5Gb");
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&pw, "unused-bob-pw"));
    let broker = FakeBroker::start().await;
    let gw = start_with(dir, policy, &broker.addr).await;
    (gw, broker, pw)
}

#[tokio::test]
async fn the_broker_sees_exactly_the_gateway_identity() {
    let (gw, broker, pw) = gateway(POLICY).await;
    // A lone odd-case HOST is the client's, whatever its case: removed.
    gw.connected(&format!(
        "CONNECT\naccept-version:1.2\nlogin:alice\npasscode:{pw}\nHOST:evil\nheart-beat:0,0\n\n\0"
    ))
    .await;
    let seen = broker.seen(0, 1).await;
    assert!(seen.starts_with("CONNECT\n"), "{seen}");
    let mut want = OURS.to_vec();
    want.extend(["accept-version:1.2", "heart-beat:0,0"]);
    assert_eq!(first_frame_headers(&seen), want);

    // `STOMP` instead of `CONNECT` gets the same treatment.
    gw.connected(&format!(
        "STOMP\naccept-version:1.2\nhost:evil\nlogin:alice\npasscode:{pw}\n\n\0"
    ))
    .await;
    let seen = broker.seen(1, 1).await;
    assert!(seen.starts_with("STOMP\n"), "{seen}");
    let mut want = OURS.to_vec();
    want.push("accept-version:1.2");
    assert_eq!(first_frame_headers(&seen), want);
}

#[tokio::test]
async fn repeated_and_odd_case_credentials_are_refused_before_the_broker() {
    let (gw, broker, pw) = gateway(POLICY).await;
    let base = "CONNECT\naccept-version:1.2\nheart-beat:0,0\n";
    let repeated = |name: &str| format!("ambiguous CONNECT: repeated `{name}` header");
    let cases = [
        (
            format!("login:alice\nlogin:mallory\npasscode:{pw}\n"),
            repeated("login"),
        ),
        (
            format!("login:alice\nLogin:mallory\npasscode:{pw}\n"),
            repeated("login"),
        ),
        (
            format!("login:alice\npasscode:{pw}\nPASSCODE:x\n"),
            repeated("passcode"),
        ),
        (
            format!("login:alice\npasscode:{pw}\nhost:/\nhost:evil\n"),
            repeated("host"),
        ),
        (
            format!("login:alice\npasscode:{pw}\nhost:/\nHOST:evil\n"),
            repeated("host"),
        ),
        (
            format!("LOGIN:alice\nPasscode:{pw}\n"),
            "authentication failed: no credentials".into(),
        ),
    ];
    for (headers, want) in cases {
        let r = gw.refused(&format!("{base}{headers}\n\0")).await;
        assert_refused(&r, &want);
        assert!(!r.frame.contains(&pw), "{}", r.frame);
    }
    let stomp = "STOMP\naccept-version:1.2\nlogin:alice\npasscode:wrong\n\n\0";
    assert_refused(
        &gw.refused(stomp).await,
        "authentication failed: bad credentials",
    );
    assert_eq!(broker.connections(), 0, "the broker was never contacted");
}

#[tokio::test]
async fn an_escaped_newline_smuggles_no_header() {
    // With a policy: the escape is not decoded in CONNECT, so the login is the literal
    // `alice\nhost:evil` (backslash, n), an unknown user, in 1.1 and 1.2 alike.
    let (gw, broker, pw) = gateway(POLICY).await;
    for version in ["1.1", "1.2"] {
        let f = format!(
            "CONNECT\naccept-version:{version}\nlogin:alice\\nhost:evil\npasscode:{pw}\n\n\0"
        );
        assert_refused(
            &gw.refused(&f).await,
            "authentication failed: bad credentials",
        );
    }
    assert_eq!(broker.connections(), 0);

    // In pass-through the client's login would reach the broker, which unescapes CONNECT
    // headers (the spec says they are not escaped): read two ways, so refused before the
    // broker is contacted.
    let dir = TempDir::new();
    let broker = FakeBroker::start().await;
    let gw = start_with(dir, "[[auth]]\ntype = \"passthrough\"\n", &broker.addr).await;
    let r = gw
        .refused("CONNECT\naccept-version:1.2\nhost:vh\nheart-beat:0,0\nlogin:x\\nhost:evil\npasscode:p\n\n\0")
        .await;
    assert_eq!(
        r.message(),
        "malformed frame: ambiguous header: backslash in a STOMP 1.0 or CONNECT header"
    );
    assert_eq!(broker.connections(), 0);
}

#[tokio::test]
async fn frames_before_connect_and_a_second_connect_are_refused() {
    let (gw, broker, pw) = gateway(POLICY).await;
    let mut ws = gw.ws().await;
    ws.send("SEND\ndestination:/queue/ok\nreceipt:r1\n\nearly\0")
        .await;
    let r = ws.refusal().await;
    assert_eq!(
        r.message(),
        "SEND before CONNECT: the first frame must be CONNECT or STOMP"
    );
    assert_eq!(header(&r.frame, "receipt-id"), Some("r1".into()));
    assert_eq!(r.code, Some(CloseCode::Protocol));
    assert_eq!(broker.connections(), 0);

    let mut ws = gw.connected(&connect("alice", &pw, "")).await;
    ws.send(&connect("mallory", "x", "receipt:again\n")).await;
    let r = ws.refusal().await;
    assert_eq!(
        r.message(),
        "already connected: a second CONNECT is not allowed"
    );
    assert_eq!(header(&r.frame, "receipt-id"), Some("again".into()));
    tokio::time::sleep(QUIET).await;
    let seen = broker.seen(0, 1).await;
    assert_eq!(seen.matches("CONNECT").count(), 1, "{seen}");
    assert!(!seen.contains("mallory"), "{seen}");
}

#[tokio::test]
async fn content_length_hides_no_frame() {
    let (gw, broker, pw) = gateway(POLICY).await;
    let mut ws = gw.connected(&connect("alice", &pw, "")).await;
    // The body holds what looks like a NUL and a whole SEND to a forbidden queue: with
    // content-length it is body, delivered as is, and the ACL is not fooled either way.
    let hidden = "a\0\nSEND\ndestination:/queue/evil\n\nb";
    let send = format!(
        "SEND\ndestination:/queue/ok\ncontent-length:{}\n\n{hidden}\0",
        hidden.len()
    );
    ws.send(&send).await;
    let seen = broker.seen(0, 3).await;
    let (_, after_connect) = seen.split_once("\0").unwrap();
    assert_eq!(after_connect, send, "the SEND went through whole, once");
    ws.expect_quiet().await;

    // A content-length that ends early leaves a real frame behind it: the ACL sees that one.
    ws.send(
        "SEND\ndestination:/queue/ok\ncontent-length:1\n\na\0SEND\ndestination:/queue/evil\n\nb\0",
    )
    .await;
    let r = ws.refusal().await;
    assert_refused(&r, "access refused: SEND to /queue/evil is not allowed");
    // A body longer than its content-length is malformed.
    let mut ws = gw.connected(&connect("alice", &pw, "")).await;
    ws.send("SEND\ndestination:/queue/ok\ncontent-length:2\n\na\0\nSEND\0")
        .await;
    let r = ws.refusal().await;
    assert!(r.message().starts_with("malformed frame"), "{}", r.frame);
    tokio::time::sleep(QUIET).await;
    for i in 0..broker.connections() {
        let seen = broker.seen(i, 1).await;
        assert_eq!(
            seen.matches("/queue/evil").count(),
            usize::from(i == 0),
            "{seen}"
        );
    }
}
