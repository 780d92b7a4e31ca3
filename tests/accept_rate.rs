//! The accept-rate limit (`--accept-rate`, `--accept-burst`): past the burst, new WebSocket
//! upgrades and new SockJS sessions get 503 with `Retry-After`, counted under
//! `stompgate_sessions_refused_total{reason="accept_rate"}`; the bucket refills at the rate.
//! No broker is needed: the refusal comes before any CONNECT.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;

const WAIT: Duration = Duration::from_secs(5);

/// A WebSocket upgrade: the socket when it succeeded, else (status, Retry-After).
async fn upgrade(addr: SocketAddr) -> Result<impl Sized, (u16, Option<String>)> {
    let url = format!("ws://{addr}/ws");
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("upgrade timed out")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => Err((
            res.status().as_u16(),
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// A SockJS `xhr` poll that would create session `id`: the raw response head.
async fn sockjs_open(addr: SocketAddr, id: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /sockjs/000/{id}/xhr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("SockJS answer timed out")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn refused_accept_rate(gw_metrics: &str) -> f64 {
    gw_metrics
        .lines()
        .find_map(|l| l.strip_prefix("stompgate_sessions_refused_total{reason=\"accept_rate\"} "))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn over_the_rate_new_connections_get_503_with_retry_after() {
    let mut config = Config::for_tests("127.0.0.1:9", "u", "p");
    config.connect_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_millis(100);
    config.accept_rate = 2;
    config.accept_burst = 2;
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, stop, ctx) = (gw.client_addr(), gw.shutdown_token(), gw.relay_context());
    tokio::spawn(gw.run());

    // The burst: two new connections at once (one WebSocket, one SockJS session).
    let _first = upgrade(addr).await.expect("first upgrade");
    let opened = sockjs_open(addr, "sg19a").await;
    assert!(opened.starts_with("HTTP/1.1 200"), "{opened}");
    // Over the rate: both kinds refused with 503 and Retry-After.
    let (status, retry) = upgrade(addr).await.err().expect("third upgrade refused");
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    let refused = sockjs_open(addr, "sg19b").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{refused}"
    );
    // An existing SockJS session is not a new connection: it is not charged.
    let again = sockjs_open(addr, "sg19a").await;
    assert!(!again.starts_with("HTTP/1.1 503"), "{again}");
    assert_eq!(refused_accept_rate(&ctx.metrics.render()), 2.0);

    // Two a second: a token is back after half a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _later = upgrade(addr).await.expect("upgrade after the refill");
    stop.cancel();
}
