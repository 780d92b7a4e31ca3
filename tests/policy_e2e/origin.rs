//! The policy's `allowed_origins` on the upgrade and on SockJS: a foreign `Origin` gets 403
//! before any session exists; a listed one (any case) and a request with no `Origin` pass.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy_common::TempDir;
use crate::support::*;

/// Sends one HTTP/1.1 request and returns the response's status code.
async fn status(gw: &Gw, request_line: &str, headers: &str) -> u16 {
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!("{request_line} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("no HTTP answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const UPGRADE: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v12.stomp\r\n";

#[tokio::test]
async fn foreign_origins_get_403_on_the_upgrade_and_on_sockjs() {
    let dir = TempDir::new();
    let policy = format!(
        "allowed_origins = [\"https://app.example\"]\n[[auth]]\ntype = \"passthrough\"\n{UPSTREAM_DEFAULT}"
    );
    let gw = start(dir, &policy).await;
    let origin = |o: &str| format!("{UPGRADE}Origin: {o}\r\n");
    assert_eq!(
        status(&gw, "GET /ws", &origin("https://evil.example")).await,
        403
    );
    assert_eq!(status(&gw, "GET /ws", &origin("null")).await, 403);
    assert_eq!(
        status(&gw, "GET /ws", &origin("https://APP.example")).await,
        101
    );
    assert_eq!(status(&gw, "GET /ws", UPGRADE).await, 101);

    let xhr = "POST /sockjs/000/abcdefgh/xhr";
    assert_eq!(
        status(&gw, xhr, "Origin: https://evil.example\r\n").await,
        403
    );
    assert_eq!(
        status(&gw, xhr, "Origin: https://app.example\r\n").await,
        200
    );
    let raw = format!("{UPGRADE}Origin: https://evil.example\r\n");
    assert_eq!(status(&gw, "GET /sockjs/websocket", &raw).await, 403);
}
