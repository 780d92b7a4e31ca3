//! The heart-beat watchdog, both ways, against an in-process fake broker: a browser that
//! promised heart-beats and falls silent ends its broker session (the broker sees its socket
//! close, so it redelivers what was not acknowledged); a broker that promised heart-beats and
//! falls silent ends the browser session with an ERROR. Heart-beats of 100 ms keep it short: the
//! tolerance is twice the interval plus one second of slack.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stompgate::config::Config;
use stompgate::stomp::Command;
use stompgate::transport::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Tolerance for a 100 ms heart-beat: 2 × 100 ms + 1 s.
const TOLERANCE: Duration = Duration::from_millis(1200);

/// A broker that answers CONNECT with `connected`, then heart-beats every 100 ms when `beat`,
/// and reports when the gateway closed its connection (time since CONNECTED).
async fn fake_broker(connected: &'static str, beat: bool) -> (String, oneshot::Receiver<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.contains(&0) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "gateway closed before CONNECT");
            seen.extend_from_slice(&buf[..n]);
        }
        s.write_all(connected.as_bytes()).await.unwrap();
        let since = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick(), if beat => {
                    if s.write_all(b"\n").await.is_err() { break; }
                }
                r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break; },
                _ = tokio::time::sleep(Duration::from_secs(10)) => return,
            }
        }
        let _ = closed_tx.send(since.elapsed());
    });
    (addr, closed_rx)
}

#[tokio::test]
async fn a_silent_browser_ends_its_broker_session() {
    // The broker heart-beats (so the gateway's broker side stays healthy) and wants the
    // client's every 100 ms: what the browser must then send (heart-beats are negotiated
    // end to end; the gateway watches what was negotiated).
    let (addr, closed) =
        fake_broker("CONNECTED\nversion:1.2\nheart-beat:100,100\n\n\0", true).await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    // The browser promises a heart-beat every 100 ms, then sends nothing.
    let connect =
        connect_frame("guest", "guest", "").replace("heart-beat:0,0", "heart-beat:100,100");
    c.send_raw(connect).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let after = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the broker connection stayed open")
        .unwrap();
    assert!(
        after >= Duration::from_millis(200),
        "closed too early: {after:?}"
    );
    // Generous over the tolerance (CI machines are busy): the point is that it does close.
    assert!(
        after <= TOLERANCE + Duration::from_millis(1500),
        "closed late: {after:?}"
    );
    let (msg, code) = c.expect_error_close().await;
    assert!(msg.contains("nothing received from the client"), "{msg}");
    assert_eq!(code, CloseCode::Policy);
}

#[tokio::test]
async fn a_browser_that_keeps_beating_stays_connected() {
    let (addr, mut closed) =
        fake_broker("CONNECTED\nversion:1.2\nheart-beat:100,100\n\n\0", true).await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    let connect =
        connect_frame("guest", "guest", "").replace("heart-beat:0,0", "heart-beat:100,100");
    c.send_raw(connect).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    // Twice the tolerance, beating every 100 ms: the session must survive.
    for _ in 0..24 {
        c.send_raw("\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed.try_recv().is_err(),
        "the gateway closed a heart-beating session"
    );
}

#[tokio::test]
async fn a_silent_broker_ends_the_browser_session_with_an_error() {
    // The broker promises a heart-beat every 100 ms and sends none.
    let (addr, closed) = fake_broker("CONNECTED\nversion:1.2\nheart-beat:100,0\n\n\0", false).await;
    let (mut c, _t) = MemClient::start(Config::for_tests(&addr, "svc", "pw"));
    let connect = connect_frame("guest", "guest", "").replace("heart-beat:0,0", "heart-beat:0,100");
    c.send_raw(connect).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    let started = Instant::now();
    let (msg, code) = c.expect_error_close().await;
    // (The test decoder does not unescape `\\c`, so match after the colon.)
    assert!(msg.contains("nothing received from the broker"), "{msg}");
    assert_eq!(code, CloseCode::Internal);
    assert!(started.elapsed() <= TOLERANCE + Duration::from_millis(1500));
    // And the broker's socket is closed too, not left dangling.
    tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .expect("the broker connection stayed open")
        .unwrap();
}
