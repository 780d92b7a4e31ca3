//! The relay against real RabbitMQ (STOMP 61613, users created by scripts/setup-rabbitmq.sh),
//! driven through an in-memory client link so every byte and close code is visible.

mod common;

use std::time::Duration;

use common::*;
use stompgate::config::{Config, Options, Secret};
use stompgate::stomp::Command;
use stompgate::transport::CloseCode;

fn config() -> Config {
    Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE)
}

async fn connected(config: Config) -> MemClient {
    let (mut c, _t) = MemClient::start(config);
    c.send_raw(connect_frame("guest", "wrong-password", ""))
        .await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Connected, "{f:?}");
    c
}

#[tokio::test]
async fn wrong_client_credentials_are_rewritten_and_connect() {
    let c = connected(config()).await;
    drop(c);
}

#[tokio::test]
async fn subscribe_send_message_round_trip_with_receipts() {
    let mut c = connected(config()).await;
    let q = unique("/queue/rt");
    c.send_raw(format!(
        "SUBSCRIBE\nid:s1\ndestination:{q}\nreceipt:r1\n\n\0"
    ))
    .await;
    let r = c.frame().await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("r1"))
    );
    c.send_raw(format!(
        "SEND\ndestination:{q}\npriority:9\ncontent-type:text/plain\nreceipt:r2\n\nhello\0"
    ))
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(c.frame().await);
    }
    let msg = got
        .iter()
        .find(|f| f.command == Command::Message)
        .expect("MESSAGE");
    assert_eq!(msg.body(), b"hello");
    assert_eq!(msg.header("subscription"), Some("s1"));
    assert!(got
        .iter()
        .any(|f| f.command == Command::Receipt && f.header("receipt-id") == Some("r2")));
}

#[tokio::test]
async fn disconnect_receipt_is_delivered_before_close() {
    let mut c = connected(config()).await;
    c.send_raw("DISCONNECT\nreceipt:bye-1\n\n\0").await;
    let r = c.frame().await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("bye-1"))
    );
    match c.next().await {
        Out::Close(code, _) => assert_eq!(code, CloseCode::Normal),
        other => panic!("expected close, got {other:?}"),
    }
}

#[tokio::test]
async fn frame_before_connect_is_refused() {
    let (mut c, _t) = MemClient::start(config());
    c.send_raw("SEND\ndestination:/queue/x\nreceipt:early\n\nhi\0")
        .await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Error);
    assert!(
        f.header("message").unwrap().contains("before CONNECT"),
        "{f:?}"
    );
    assert_eq!(f.header("receipt-id"), Some("early"));
    assert!(matches!(c.next().await, Out::Close(CloseCode::Protocol, _)));
}

#[tokio::test]
async fn second_connect_is_refused() {
    let mut c = connected(config()).await;
    c.send_raw(connect_frame("a", "b", "")).await;
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("second CONNECT"), "{msg}");
    assert_eq!(code, CloseCode::Protocol);
}

#[tokio::test]
async fn oversized_frame_gets_error_and_1009() {
    let mut cfg = config();
    cfg.limits.max_body_bytes = 1024;
    let mut c = connected(cfg).await;
    let body = "x".repeat(2048);
    c.send_raw(format!(
        "SEND\ndestination:/queue/big\ncontent-length:2048\n\n{body}\0"
    ))
    .await;
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("1024"), "{msg}");
    assert_eq!(code, CloseCode::TooBig);
}

#[tokio::test]
async fn malformed_frame_gets_error() {
    let mut c = connected(config()).await;
    c.send_raw("BOGUS\n\n\0").await;
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.starts_with("malformed frame"), "{msg}");
    assert_eq!(code, CloseCode::Protocol);
}

#[tokio::test]
async fn connect_timeout_gets_error() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(200);
    let (mut c, _t) = MemClient::start(cfg);
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("no CONNECT"), "{msg}");
    assert_eq!(code, CloseCode::Policy);
}

#[tokio::test]
async fn unreachable_broker_gets_error_and_1013() {
    let (mut c, _t) = MemClient::start(Config::for_tests("127.0.0.1:1", "a", "b"));
    c.send_raw(connect_frame("x", "y", "")).await;
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("unreachable"), "{msg}");
    assert_eq!(code, CloseCode::TryAgainLater);
}

#[tokio::test]
async fn broker_refusing_gateway_credentials_gets_a_generic_error() {
    let (mut c, _t) = MemClient::start(Config::for_tests(
        &rabbitmq(),
        BROKER_LOGIN,
        "not-the-password",
    ));
    c.send_raw(connect_frame("x", "y", "")).await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Error);
    // RabbitMQ's own words name the broker user: they stay in the gateway's log.
    assert_eq!(
        f.header("message"),
        Some("broker refused the gateway's login")
    );
    assert!(matches!(c.next().await, Out::Close(CloseCode::Normal, _)));
}

#[tokio::test]
async fn broker_error_is_forwarded_before_close() {
    let mut c = connected(config()).await;
    let ex = unique("/exchange/does-not-exist");
    c.send_raw(format!("SUBSCRIBE\nid:s\ndestination:{ex}\n\n\0"))
        .await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Error, "{f:?}");
    assert!(matches!(c.next().await, Out::Close(CloseCode::Normal, _)));
}

#[tokio::test]
async fn client_going_away_closes_broker_and_unacked_is_redelivered() {
    let q = unique("/queue/redeliver");
    let mut a = connected(config()).await;
    a.send_raw(format!(
        "SUBSCRIBE\nid:s\ndestination:{q}\nack:client-individual\nreceipt:r\n\n\0"
    ))
    .await;
    assert_eq!(a.frame().await.command, Command::Receipt);
    a.send_raw(format!("SEND\ndestination:{q}\n\nkeep-me\0"))
        .await;
    let m = a.frame().await;
    assert_eq!(m.body(), b"keep-me");
    a.hang_up();
    tokio::time::timeout(Duration::from_secs(5), &mut a.session)
        .await
        .expect("session ends at once")
        .unwrap();
    let mut b = connected(config()).await;
    b.send_raw(format!("SUBSCRIBE\nid:s\ndestination:{q}\nack:auto\n\n\0"))
        .await;
    let m = b.frame().await;
    assert_eq!(m.body(), b"keep-me");
    assert_eq!(m.header("redelivered"), Some("true"));
}

#[tokio::test]
async fn byte_by_byte_and_batched_frames_arrive_intact() {
    let mut c = connected(config()).await;
    let q = unique("/queue/split");
    c.send_raw(format!("SUBSCRIBE\nid:s\ndestination:{q}\nreceipt:r\n\n\0"))
        .await;
    assert_eq!(c.frame().await.command, Command::Receipt);
    let one = format!("SEND\ndestination:{q}\ncontent-length:5\n\na\0b\0c\0");
    for b in one.bytes() {
        c.send_raw(vec![b]).await;
    }
    let ten: String = (0..10)
        .map(|i| format!("SEND\ndestination:{q}\n\nm{i}\0\n"))
        .collect();
    c.send_raw(ten).await;
    let first = c.frame().await;
    assert_eq!(first.body(), b"a\0b\0c");
    for i in 0..10 {
        let m = c.frame().await;
        assert_eq!(m.body(), format!("m{i}").as_bytes(), "in order");
    }
}

#[tokio::test]
async fn shutdown_closes_with_1001() {
    let (mut c, token) = MemClient::start(config());
    c.send_raw(connect_frame("guest", "guest", "")).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    token.cancel();
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("shutting down"));
    assert_eq!(code, CloseCode::GoingAway);
}

#[test]
fn passthrough_must_be_explicit() {
    let o = Options {
        upstream: Some(vec![rabbitmq()]),
        ..Options::default()
    };
    assert!(Config::resolve(o).is_err());
    let o = Options {
        upstream_passcode: Some(Secret::new("x")),
        ..Options::default()
    };
    assert!(Config::resolve(o).is_err());
}
