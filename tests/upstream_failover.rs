//! Spreading and failover over `--upstream a,b,c`, against in-process fake brokers: one port
//! that refuses, one broker that accepts TCP and never answers CONNECT, and good ones that count
//! the sessions they get.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use stompgate::config::Config;
use stompgate::relay::RelayContext;
use stompgate::stomp::Command;
use stompgate::transport::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A broker answering every CONNECT with CONNECTED; counts the sessions it got.
async fn good_broker() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.contains(&0) {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, SeqCst);
                let _ = s.write_all(b"CONNECTED\nversion:1.2\n\n\0").await;
                // Hold the session until the gateway closes it.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    (addr, count)
}

/// A port nothing listens on (bound, then released).
async fn refusing_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

/// Accepts TCP and never says a word.
async fn silent_broker() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

fn context(addrs: &[&str], connect_timeout: Duration) -> Arc<RelayContext> {
    let mut cfg = Config::for_tests(addrs[0], "svc", "pw");
    cfg.upstream.addrs = addrs.iter().map(|a| a.to_string()).collect();
    cfg.upstream.connect_timeout = connect_timeout;
    cfg.upstream.down_for = Duration::from_secs(60);
    RelayContext::new(Arc::new(cfg), CancellationToken::new()).unwrap()
}

/// Opens a session; `Ok` when the broker's CONNECTED came back, else the ERROR and close code.
async fn session(ctx: &Arc<RelayContext>) -> (MemClient, Result<(), (String, CloseCode)>) {
    let mut c = MemClient::start_in(ctx.clone());
    c.send_raw(connect_frame("guest", "guest", "")).await;
    let f = c.frame().await;
    if f.command == Command::Connected {
        return (c, Ok(()));
    }
    let msg = f.header("message").unwrap_or_default().to_owned();
    let code = match c.next().await {
        Out::Close(code, _) => code,
        other => panic!("expected close, got {other:?}"),
    };
    (c, Err((msg, code)))
}

fn metric(ctx: &RelayContext, name: &str, member: &str) -> Option<f64> {
    let text = ctx.metrics.render();
    let prefix = format!("{name}{{member=\"{member}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn new_sessions_are_spread_over_healthy_members() {
    let (a, a_count) = good_broker().await;
    let (b, b_count) = good_broker().await;
    let ctx = context(&[&a, &b], Duration::from_secs(2));
    let mut held = Vec::new();
    for _ in 0..6 {
        let (c, r) = session(&ctx).await;
        r.unwrap();
        held.push(c);
    }
    assert_eq!((a_count.load(SeqCst), b_count.load(SeqCst)), (3, 3));
}

#[tokio::test]
async fn refusing_and_silent_members_are_marked_down_and_skipped() {
    let refusing = refusing_port().await;
    let silent = silent_broker().await;
    let (good, good_count) = good_broker().await;
    let ctx = context(&[&refusing, &silent, &good], Duration::from_millis(300));
    let mut failures = Vec::new();
    let mut held = Vec::new();
    for _ in 0..9 {
        let (c, r) = session(&ctx).await;
        if let Err(e) = r {
            failures.push(e);
        }
        held.push(c);
    }
    // A refused TCP connect fails over within the session; a member that accepts TCP but never
    // answers CONNECT costs the one session that found out, and is skipped afterwards.
    assert!(failures.len() <= 1, "{failures:?}");
    for (msg, code) in &failures {
        assert!(
            msg.contains("broker refused the connection or is unavailable (timeout)"),
            "{msg}"
        );
        assert_eq!(*code, CloseCode::TryAgainLater);
    }
    assert_eq!(good_count.load(SeqCst), 9 - failures.len());
    let down = "stompgate_upstream_member_down_total";
    let up = "stompgate_upstream_member_up";
    assert_eq!(metric(&ctx, down, &refusing), Some(1.0));
    assert_eq!(metric(&ctx, up, &refusing), Some(0.0));
    assert_eq!(metric(&ctx, down, &silent), Some(failures.len() as f64));
    assert_eq!(metric(&ctx, up, &good), Some(1.0));
}

#[tokio::test]
async fn every_member_down_is_unreachable_with_1013() {
    let ctx = context(
        &[&refusing_port().await, &refusing_port().await],
        Duration::from_secs(1),
    );
    for _ in 0..2 {
        // The second session still tries the down members: they are the last resort.
        let (_c, r) = session(&ctx).await;
        let (msg, code) = r.unwrap_err();
        assert!(msg.contains("broker unreachable"), "{msg}");
        assert_eq!(code, CloseCode::TryAgainLater);
    }
}
