//! Helpers shared by the gateway-level SockJS tests (`sockjs_security`, `sockjs_flood`): a
//! gateway in process, raw HTTP and WebSocket exchanges from a chosen loopback address, the
//! admin metrics and the RabbitMQ management API.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::common::{rabbitmq, BROKER_LOGIN, BROKER_PASSCODE};
use crate::policy_common::TempDir;

pub const WAIT: Duration = Duration::from_secs(10);
pub const APP: &str = "http://app.test";

/// A running gateway, stopped on drop.
pub struct Gw {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: CancellationToken,
    _dir: Option<TempDir>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start(config: Config, dir: Option<TempDir>) -> Gw {
    let gw = Gateway::bind(Arc::new(config))
        .await
        .expect("gateway binds");
    let (addr, admin, stop) = (gw.client_addr(), gw.admin_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    Gw {
        addr,
        admin,
        stop,
        _dir: dir,
    }
}

pub fn base_config() -> Config {
    let mut c = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    c.shutdown_grace = Duration::from_millis(100);
    c
}

pub async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One HTTP/1.1 exchange (`Connection: close`) from `from`: status and de-chunked body.
pub async fn http(
    from: &str,
    addr: SocketAddr,
    line: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut tcp = connect_from(from, addr).await;
    let mut req = format!("{line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("response stalled")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A SockJS `xhr_send` body carrying these STOMP frames as one message.
pub fn send_body(frames: &[String]) -> String {
    serde_json::to_string(&[frames.concat()]).unwrap()
}

pub fn connect_frame() -> String {
    "CONNECT\naccept-version:1.2\nhost:/\n\n\0".to_owned()
}

/// The broker's view of a queue (RabbitMQ management API, guest over loopback).
pub async fn queue_consumers(queue: &str) -> u64 {
    let mgmt: SocketAddr = "127.0.0.1:15672".parse().unwrap();
    let path = format!("GET /api/queues/%2F/{queue}");
    // guest:guest
    let auth = [("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")];
    // The count comes with the queue's statistics (every few seconds): wait for a non-zero one.
    let deadline = Instant::now() + WAIT;
    loop {
        // The management database may not know a queue this new yet (404).
        let (status, body) = http("127.0.0.1", mgmt, &path, &auth, "").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(n) = v["consumers"].as_u64().filter(|n| status == 200 && *n > 0) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no consumer count: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A metric's value from the admin endpoint (0 when absent).
pub async fn metric(gw: &Gw, series: &str) -> f64 {
    let (_, body) = http("127.0.0.1", gw.admin, "GET /metrics", &[], "").await;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls the victim's session (`xhr`) until its frames hold `needle`; everything seen.
pub async fn poll_until(gw: &Gw, url: &str, headers: &[(&str, &str)], needle: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + WAIT;
    while !seen.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "never saw {needle:?}; got {seen:?}"
        );
        let (status, body) = http(
            "127.0.0.1",
            gw.addr,
            &format!("POST {url}/xhr"),
            headers,
            "",
        )
        .await;
        assert_eq!(status, 200);
        seen.push_str(&body);
    }
    seen
}

pub async fn ws_open_from(from: &str, addr: SocketAddr) -> TcpStream {
    let mut tcp = connect_from(from, addr).await;
    let req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Protocol: v12.stomp\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        timeout(WAIT, tcp.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// A masked client text frame (payload under 126 bytes).
pub fn masked_text(text: &str) -> Vec<u8> {
    let mask = [7u8, 1, 9, 3];
    let mut out = vec![0x81, 0x80 | text.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame: opcode and payload.
pub async fn ws_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    timeout(WAIT, tcp.read_exact(&mut h))
        .await
        .unwrap()
        .unwrap();
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut l = [0u8; 2];
        tcp.read_exact(&mut l).await.unwrap();
        len = u64::from(u16::from_be_bytes(l));
    }
    let mut payload = vec![0u8; len as usize];
    tcp.read_exact(&mut payload).await.unwrap();
    (h[0] & 0x0f, payload)
}
