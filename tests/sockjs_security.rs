//! Issue 17 through a real gateway (in process, 127.0.0.1:0) and RabbitMQ: a SockJS session
//! cannot be taken over with the victim's cookie (checked on the victim's stream, in the
//! gateway's metrics and on the broker's queue), one address flooding session-creating
//! requests cannot lock others out, and the plain WebSocket endpoint closes with the full
//! closing handshake.

mod common;
mod policy_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use common::{rabbitmq, unique, BROKER_LOGIN, BROKER_PASSCODE};
use policy_common::{claims, sign_hs, TempDir};

const WAIT: Duration = Duration::from_secs(10);
const APP: &str = "http://app.test";

/// A running gateway, stopped on drop.
struct Gw {
    addr: SocketAddr,
    admin: SocketAddr,
    stop: CancellationToken,
    _dir: Option<TempDir>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(config: Config, dir: Option<TempDir>) -> Gw {
    let gw = Gateway::bind(Arc::new(config)).await.expect("gateway binds");
    let (addr, admin, stop) = (gw.client_addr(), gw.admin_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    Gw {
        addr,
        admin,
        stop,
        _dir: dir,
    }
}

fn base_config() -> Config {
    let mut c = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    c.shutdown_grace = Duration::from_millis(100);
    c
}

async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One HTTP/1.1 exchange (`Connection: close`) from `from`: status and de-chunked body.
async fn http(from: &str, addr: SocketAddr, line: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
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

fn dechunk(mut s: &str) -> String {
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
fn send_body(frames: &[String]) -> String {
    serde_json::to_string(&[frames.concat()]).unwrap()
}

fn connect_frame() -> String {
    "CONNECT\naccept-version:1.2\nhost:/\n\n\0".to_owned()
}

/// The broker's view of a queue (RabbitMQ management API, guest over loopback).
async fn queue_consumers(queue: &str) -> u64 {
    let mgmt: SocketAddr = "127.0.0.1:15672".parse().unwrap();
    let path = format!("GET /api/queues/%2F/{queue}");
    // guest:guest
    let auth = [("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")];
    let (status, body) = http("127.0.0.1", mgmt, &path, &auth, "").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["consumers"].as_u64().unwrap()
}

/// A metric's value from the admin endpoint (0 when absent).
async fn metric(gw: &Gw, series: &str) -> f64 {
    let (_, body) = http("127.0.0.1", gw.admin, "GET /metrics", &[], "").await;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls the victim's session (`xhr`) until its frames hold `needle`; everything seen.
async fn poll_until(gw: &Gw, url: &str, headers: &[(&str, &str)], needle: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + WAIT;
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "never saw {needle:?}; got {seen:?}");
        let (status, body) = http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), headers, "").await;
        assert_eq!(status, 200);
        seen.push_str(&body);
    }
    seen
}

/// With a cookie backend, a page on another site cannot open or use a session with the
/// victim's cookie, and a client without the cookie cannot reach the victim's session.
#[tokio::test]
async fn takeover_with_the_victims_cookie_is_refused_and_the_victim_is_unaffected() {
    let key = "issue17-hs256-secret-0123456789-abcdef";
    let dir = TempDir::new();
    dir.write("hs256.secret", key);
    let policy = dir.write(
        "policy.toml",
        "[[auth]]\ntype = \"jwt\"\nissuer = \"https://idp.test\"\naudience = \"stompgate\"\n\
         sources = { cookie = \"sg_token\" }\n[[auth.key]]\nalg = \"HS256\"\n\
         secret_file = \"hs256.secret\"\n[upstream.default]\nlogin = \"stompgate\"\n\
         passcode = \"stompgate-secret\"\nvhost = \"/\"\n",
    );
    let mut config = base_config();
    config.policy = Some(policy);
    config.allowed_origins = vec![APP.to_owned()];
    let gw = start(config, Some(dir)).await;
    let cookie = format!("theme=dark; sg_token={}", sign_hs(Algorithm::HS256, key.as_bytes(), &claims("victim")));
    let victim_h = [("Origin", APP), ("Cookie", cookie.as_str())];

    // The victim opens a session and subscribes.
    let queue = unique("issue17-takeover");
    let url = "/sockjs/000/victim01";
    assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &victim_h, "").await.1, "o\n");
    let sub = format!("SUBSCRIBE\nid:s1\ndestination:/queue/{queue}\nauto-delete:true\nreceipt:r1\n\n\0");
    let body = send_body(&[connect_frame(), sub]);
    let (status, _) = http("127.0.0.1", gw.addr, &format!("POST {url}/xhr_send"), &victim_h, &body).await;
    assert_eq!(status, 204);
    poll_until(&gw, url, &victim_h, "receipt-id:r1").await;

    // A page on another site, with the victim's cookie: no Origin-less transport, no iframe,
    // no Origin-less or foreign-origin request.
    let cross = [("Cookie", cookie.as_str()), ("Sec-Fetch-Site", "cross-site")];
    for path in ["/sockjs/000/attack01/jsonp?c=x", "/sockjs/000/victim01/jsonp?c=x", "/sockjs/000/attack01/htmlfile?c=x", "/sockjs/iframe.html"] {
        assert_eq!(http("127.0.0.1", gw.addr, &format!("GET {path}"), &cross, "").await.0, 404, "{path}");
    }
    let attack = send_body(&[connect_frame(), format!("SUBSCRIBE\nid:x\ndestination:/queue/{queue}\n\n\0")]);
    assert_eq!(http("127.0.0.1", gw.addr, "GET /sockjs/000/attack02/eventsource", &cross, "").await.0, 403);
    assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr_send"), &cross, &attack).await.0, 403);
    assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &cross, "").await.0, 403);
    let evil = [("Origin", "http://evil.test"), ("Cookie", cookie.as_str())];
    assert_eq!(http("127.0.0.1", gw.addr, "POST /sockjs/000/attack03/xhr", &evil, "").await.0, 403);
    assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr_send"), &evil, &attack).await.0, 403);

    // A client that knows the session id but not the cookie (or has another one) finds nothing.
    let other = format!("sg_token={}", sign_hs(Algorithm::HS256, key.as_bytes(), &claims("mallory")));
    for h in [vec![("Origin", APP)], vec![("Origin", APP), ("Cookie", other.as_str())]] {
        assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr_send"), &h, &attack).await.0, 404);
        assert_eq!(http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &h, "").await.0, 404);
    }

    // The victim's session saw none of it and still works; the broker has its one consumer.
    let send = format!("SEND\ndestination:/queue/{queue}\n\nstill mine\0");
    let (status, _) = http("127.0.0.1", gw.addr, &format!("POST {url}/xhr_send"), &victim_h, &send_body(&[send])).await;
    assert_eq!(status, 204);
    let seen = poll_until(&gw, url, &victim_h, "still mine").await;
    assert!(!seen.contains("ERROR"), "{seen}");
    assert_eq!(queue_consumers(&queue).await, 1, "the attacker's SUBSCRIBE reached nothing");
    let refused = |r: &str| format!("stompgate_sessions_refused_total{{reason=\"{r}\"}}");
    assert!(metric(&gw, &refused("sockjs_origin")).await >= 5.0);
    assert!(metric(&gw, &refused("sockjs_binding")).await >= 4.0);
    let jsonp = "stompgate_connections_opened_total{transport=\"sockjs-jsonp\"}";
    assert_eq!(metric(&gw, jsonp).await, 0.0);

    // The same-origin exception: a browser's own-origin `eventsource` carries no Origin.
    let same = [("Cookie", cookie.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let mut tcp = connect_from("127.0.0.1", gw.addr).await;
    let req = format!("GET /sockjs/000/sameorig/eventsource HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nSec-Fetch-Site: {}\r\n\r\n", same[0].1, same[1].1);
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}

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
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let (mut created, mut capped) = (0, 0);
    for i in 0..5000 {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/sockjs/000/f{i}/xhr"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = timeout(WAIT, sender.send_request(req)).await.unwrap().unwrap();
        match res.status().as_u16() {
            200 => created += 1,
            429 => capped += 1,
            other => panic!("request {i}: {other}"),
        }
        res.into_body().collect().await.unwrap();
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
    assert_eq!(http("127.0.0.2", gw.addr, &format!("POST {url}/xhr"), &[], "").await.1, "o\n");
    let body = send_body(&[format!("CONNECT\naccept-version:1.2\nhost:/\nlogin:{BROKER_LOGIN}\npasscode:x\n\n\0")]);
    assert_eq!(http("127.0.0.2", gw.addr, &format!("POST {url}/xhr_send"), &[], &body).await.0, 204);
    let (_, frames) = http("127.0.0.2", gw.addr, &format!("POST {url}/xhr"), &[], "").await;
    assert!(frames.contains("CONNECTED"), "{frames}");
    let mut ws = ws_open_from("127.0.0.2", gw.addr).await;
    ws.write_all(&masked_text(&connect_frame())).await.unwrap();
    let (_, payload) = ws_frame(&mut ws).await;
    assert!(payload.starts_with(b"CONNECTED"), "{}", String::from_utf8_lossy(&payload));
}

async fn ws_open_from(from: &str, addr: SocketAddr) -> TcpStream {
    let mut tcp = connect_from(from, addr).await;
    let req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Protocol: v12.stomp\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        timeout(WAIT, tcp.read_exact(&mut b)).await.unwrap().unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// A masked client text frame (payload under 126 bytes).
fn masked_text(text: &str) -> Vec<u8> {
    let mask = [7u8, 1, 9, 3];
    let mut out = vec![0x81, 0x80 | text.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame: opcode and payload.
async fn ws_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    timeout(WAIT, tcp.read_exact(&mut h)).await.unwrap().unwrap();
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

/// The plain `/ws` endpoint: a close the gateway starts (no CONNECT in time) sends ERROR and
/// Close, keeps TCP open until the client's Close, then drops it.
#[tokio::test]
async fn ws_endpoint_close_waits_for_the_clients_close() {
    let mut config = base_config();
    config.connect_timeout = Duration::from_millis(200);
    let gw = start(config, None).await;
    let mut tcp = ws_open_from("127.0.0.1", gw.addr).await;
    let (op, error) = ws_frame(&mut tcp).await;
    assert!(op == 1 && error.starts_with(b"ERROR"), "{op} {error:?}");
    let (op, _) = ws_frame(&mut tcp).await;
    assert_eq!(op, 8, "Close");
    let mut b = [0u8; 1];
    let early = timeout(Duration::from_millis(500), tcp.read(&mut b)).await;
    assert!(early.is_err(), "TCP closed before the client's Close: {early:?}");
    tcp.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]).await.unwrap();
    let n = timeout(WAIT, tcp.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "EOF once both Close frames are out");
}
