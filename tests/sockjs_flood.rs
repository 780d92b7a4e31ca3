//! Issue 17's flood through a real gateway (in process, 127.0.0.1:0) and RabbitMQ: 5,000
//! session-creating SockJS requests from one address. Its own test binary, so the RSS it
//! reports is this test's alone.

mod common;
mod policy_common;
mod sockjs_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use common::BROKER_LOGIN;
use sockjs_support::*;

/// RSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 5,000 session-creating requests from one address on one keep-alive connection: at most
/// the per-address cap (100) become sessions, memory stays bounded, and a WebSocket client and
/// a SockJS client from another address still get in (the cap is below `max_connections`).
#[tokio::test]
async fn a_flood_from_one_address_does_not_lock_others_out() {
    let mut config = base_config();
    config.max_connections = 150;
    config.connect_timeout = Duration::from_secs(60);
    config.sockjs.disconnect_delay = Duration::from_secs(60);
    let gw = start(config, None).await;
    let before = rss_kib();
    let started = Instant::now();
    let tcp = connect_from("127.0.0.1", gw.addr).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (mut created, mut capped) = (0, 0);
    for i in 0..5000 {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/sockjs/000/f{i}/xhr"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = timeout(WAIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        match res.status().as_u16() {
            200 => created += 1,
            429 => capped += 1,
            other => panic!("request {i}: {other}"),
        }
        res.into_body().collect().await.unwrap();
        if i % 1000 == 99 {
            println!(
                "flood: after {} requests RSS +{} KiB",
                i + 1,
                rss_kib().saturating_sub(before)
            );
        }
    }
    let grown = rss_kib().saturating_sub(before);
    println!(
        "flood: 5000 requests in {:?}: {created} sessions, {capped} refused (429); RSS +{} KiB",
        started.elapsed(),
        grown
    );
    assert_eq!((created, capped), (100, 4900));
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    let capped_metric = "stompgate_sessions_refused_total{reason=\"sockjs_address_limit\"}";
    assert_eq!(metric(&gw, capped_metric).await, 4900.0);

    // Another address: a SockJS client and a WebSocket client both reach the broker.
    let url = "/sockjs/000/otherone";
    assert_eq!(
        http("127.0.0.2", gw.addr, &format!("POST {url}/xhr"), &[], "")
            .await
            .1,
        "o\n"
    );
    let body = send_body(&[format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:{BROKER_LOGIN}\npasscode:x\n\n\0"
    )]);
    assert_eq!(
        http(
            "127.0.0.2",
            gw.addr,
            &format!("POST {url}/xhr_send"),
            &[],
            &body
        )
        .await
        .0,
        204
    );
    let (_, frames) = http("127.0.0.2", gw.addr, &format!("POST {url}/xhr"), &[], "").await;
    assert!(frames.contains("CONNECTED"), "{frames}");
    let mut ws = ws_open_from("127.0.0.2", gw.addr).await;
    ws.write_all(&masked_text(&connect_frame())).await.unwrap();
    let (_, payload) = ws_frame(&mut ws).await;
    assert!(
        payload.starts_with(b"CONNECTED"),
        "{}",
        String::from_utf8_lossy(&payload)
    );
}
