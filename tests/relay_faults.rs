//! Faults a real broker cannot produce on cue, against an in-process fake broker: a drop
//! mid-session, a half-written frame followed by a stall, a broker that never answers CONNECT.

mod common;

use std::time::Duration;

use common::*;
use stompgate::config::Config;
use stompgate::stomp::Command;
use stompgate::transport::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake broker that answers the first CONNECT with `connected`, then runs `then`.
async fn fake_broker<F, Fut>(connected: &'static str, then: F) -> String
where
    F: FnOnce(tokio::net::TcpStream, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.contains(&0) {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        s.write_all(connected.as_bytes()).await.unwrap();
        then(s, seen).await;
    });
    addr
}

#[tokio::test]
async fn broker_drop_gives_error_and_1011() {
    let addr = fake_broker("CONNECTED\nversion:1.2\n\n\0", |s, _| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(s);
    })
    .await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw(connect_frame("guest", "guest", "")).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("broker connection lost"), "{msg}");
    assert_eq!(code, CloseCode::Internal);
}

#[tokio::test]
async fn broker_sees_only_the_gateway_identity() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let addr = fake_broker("CONNECTED\nversion:1.2\n\n\0", |s, seen| async move {
        let _ = seen_tx.send(seen);
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(s);
    })
    .await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw("CONNECT\naccept-version:1.2\nlogin:guest\nLOGIN:guest\npasscode:guest\nPasscode:x\nhost:evil\nHost:evil2\n\n\0").await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let seen = String::from_utf8(seen_rx.await.unwrap()).unwrap();
    assert!(
        seen.starts_with("CONNECT\nlogin:svc\npasscode:pw\n"),
        "{seen}"
    );
    assert!(!seen.to_ascii_lowercase().contains("guest"), "{seen}");
    assert!(!seen.contains("evil"), "{seen}");
}

#[tokio::test]
async fn half_written_frame_then_stall_trips_the_broker_heartbeat() {
    let addr = fake_broker(
        "CONNECTED\nversion:1.2\nheart-beat:100,100\n\n\0",
        |mut s, _| async move {
            s.write_all(b"MESSAGE\ndestination:/queue/x\nmessage-id:1\nsubscription:s\n\nhal")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        },
    )
    .await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw(connect_frame("guest", "guest", "").replace("heart-beat:0,0", "heart-beat:0,100"))
        .await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("heart-beat timeout"), "{msg}");
    assert_eq!(code, CloseCode::Internal);
}

#[tokio::test]
async fn broker_silent_on_connect_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let _hold = tokio::spawn(async move {
        let (_s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut cfg = Config::for_tests(&addr, "svc", "pw");
    cfg.upstream.connect_timeout = Duration::from_millis(300);
    let (mut c, _t) = MemClient::start(cfg);
    c.send_raw(connect_frame("guest", "guest", "")).await;
    let (msg, code) = c.expect_error_close().await;
    assert!(
        msg.contains("broker refused the connection or is unavailable (timeout)"),
        "{msg}"
    );
    assert_eq!(code, CloseCode::TryAgainLater);
}

/// A broker that accepts TCP, reads the CONNECT, then answers with `answer` and closes: what
/// RabbitMQ does at its file-descriptor limit (and while starting or stopping).
async fn refusing_broker(answer: &'static [u8]) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(answer).await;
    });
    addr
}

#[tokio::test]
async fn broker_closing_before_connected_is_a_refusal_not_an_invalid_frame() {
    let addr = refusing_broker(b"").await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw(connect_frame("guest", "guest", "")).await;
    let (msg, code) = c.expect_error_close().await;
    assert!(
        msg.contains("broker refused the connection or is unavailable (closed)"),
        "{msg}"
    );
    assert!(!msg.contains("invalid frame"), "{msg}");
    assert_eq!(code, CloseCode::TryAgainLater);
}

#[tokio::test]
async fn broker_garbage_before_connected_is_a_refusal() {
    let addr = refusing_broker(b"AMQP\x00\x00\x09\x01 no more descriptors\n\0").await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw(connect_frame("guest", "guest", "")).await;
    let (msg, code) = c.expect_error_close().await;
    assert!(
        msg.contains("broker refused the connection or is unavailable (invalid_answer)"),
        "{msg}"
    );
    assert_eq!(code, CloseCode::TryAgainLater);
}

#[tokio::test]
async fn passthrough_never_forwards_a_connect_without_login() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let o = stompgate::config::Options {
        upstream: Some(vec![addr]),
        passthrough_credentials: Some(true),
        ..Default::default()
    };
    let cfg = Config::resolve(o).unwrap();
    let (mut c, _t) = MemClient::start(cfg);
    c.send_raw("CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        .await;
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("no credentials"), "{msg}");
    assert_eq!(code, CloseCode::Policy);
    // The broker was never contacted (it would have applied its default user).
    let accepted = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
    assert!(accepted.is_err(), "the gateway connected to the broker");
}

#[tokio::test]
async fn eol_padding_after_a_frame_is_not_a_message_but_a_lone_heartbeat_is() {
    let addr = fake_broker(
        "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0\n",
        |mut s, _| async move {
            s.write_all(b"MESSAGE\ndestination:/queue/x\nmessage-id:1\nsubscription:s\n\nhi\0\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.write_all(b"\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        },
    )
    .await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    c.send_raw(connect_frame("guest", "guest", "")).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let mut messages = Vec::new();
    for _ in 0..2 {
        match c.next().await {
            Out::Message(m) => messages.push(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(messages[0].starts_with(b"MESSAGE\n"), "{messages:?}");
    assert_eq!(
        &messages[1][..],
        b"\n",
        "the lone EOL is forwarded as a heart-beat"
    );
}
