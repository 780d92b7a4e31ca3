//! Issue 17 at the SockJS layer, in process on 127.0.0.1:0 with the example echo server
//! (`examples/sockjs_echo.rs`): the four protocol behaviours as sockjs-node 0.3 has them
//! (chunked 2010 / closed answers, `text/event-stream`, `Origin: null`, the WebSocket closing
//! handshake) and the limits that hold before any login (session ids, per-address cap, body
//! timeout, the inbound queue in bytes, sessions bound to their creator's address).

#[path = "../examples/sockjs_echo.rs"]
mod echo;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stompgate::transport::sockjs::{Sockjs, SockjsOptions, SockjsRx, SockjsTx};
use stompgate::transport::ClientLink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn start(services: Vec<Arc<Sockjs>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, services));
    addr
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One raw HTTP/1.1 exchange from `from` with `Connection: close`: status line and headers
/// (lower-cased names) and the raw body bytes as sent.
async fn raw(from: &str, addr: SocketAddr, head: &str, body: &str) -> (String, Vec<u8>) {
    let mut tcp = connect_from(from, addr).await;
    let req = format!(
        "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("response stalled")
        .unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
    (head, buf[split..].to_vec())
}

fn status(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The chunks of a chunked body, in order, as the server framed them.
fn chunks(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push(body[eol + 2..eol + 2 + size].to_vec());
        body = &body[eol + 2 + size + 2..];
    }
}

fn sid(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Protocol 1: the 2010 answer to a second receiver, and the answer on a closed session, are
/// streamed as sockjs-node streams them: chunked, prelude and frame as their own chunks.
#[tokio::test]
async fn busy_and_closed_answers_are_chunked_prelude_frame_end() {
    let a = start(echo::services()).await;
    let url = format!("/echo/000/{}", sid("busy"));
    let mut first = connect_from("127.0.0.1", a).await;
    let head = format!("POST {url}/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    first.write_all(head.as_bytes()).await.unwrap();
    let mut got = vec![0u8; 4096];
    let n = timeout(WAIT, first.read(&mut got)).await.unwrap().unwrap();
    assert!(n > 0);
    let (head, body) = raw(
        "127.0.0.1",
        a,
        &format!("POST {url}/xhr_streaming HTTP/1.1"),
        "",
    )
    .await;
    assert_eq!(status(&head), 200);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let parts = chunks(&body);
    assert_eq!(parts.len(), 2, "prelude, then the frame");
    assert_eq!(parts[0], [vec![b'h'; 2048], b"\n".to_vec()].concat());
    assert_eq!(parts[1], b"c[2010,\"Another connection still open\"]\n");

    // A closed session (the `/close` service closes each at once) answers the same way.
    let url = format!("/close/000/{}", sid("closed"));
    raw("127.0.0.1", a, &format!("POST {url}/xhr HTTP/1.1"), "").await;
    let (head, body) = raw(
        "127.0.0.1",
        a,
        &format!("POST {url}/xhr_streaming HTTP/1.1"),
        "",
    )
    .await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let parts = chunks(&body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1], b"c[3000,\"Go away!\"]\n");
    let (head, body) = raw("127.0.0.1", a, &format!("POST {url}/xhr HTTP/1.1"), "").await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(chunks(&body), [b"c[3000,\"Go away!\"]\n".to_vec()]);
}

/// Protocol 2: `eventsource` answers exactly `text/event-stream`.
#[tokio::test]
async fn eventsource_content_type_is_exact() {
    let a = start(echo::services()).await;
    let url = format!("/close/000/{}/eventsource", sid("es"));
    let (head, _) = raw("127.0.0.1", a, &format!("GET {url} HTTP/1.1"), "").await;
    assert!(
        head.contains("\r\ncontent-type: text/event-stream\r\n"),
        "{head}"
    );
}

/// A service at `/n` with the allowlist `origins`.
fn with_origins(origins: &[&str]) -> Arc<Sockjs> {
    let list = origins.iter().map(|o| (*o).to_owned()).collect();
    Sockjs::new(echo::config("/n"), list, echo::echo_sink())
}

/// Protocol 3: `Origin: null` passes no allowlist that does not name it; where it passes
/// (no allowlist, or one naming `null`), CORS echoes `null` with credentials like sockjs-node.
#[tokio::test]
async fn null_origin_needs_an_allowlist_that_names_it() {
    for (origins, allowed) in [
        (&[][..], true),
        (&["http://app.test"][..], false),
        (&["http://app.test", "null"][..], true),
    ] {
        let a = start(vec![with_origins(origins)]).await;
        let head = format!("POST /n/000/{}/xhr HTTP/1.1\r\nOrigin: null", sid("null"));
        let (head, body) = raw("127.0.0.1", a, &head, "").await;
        if !allowed {
            assert_eq!(status(&head), 403, "{origins:?}");
            continue;
        }
        assert_eq!(status(&head), 200, "{origins:?}");
        assert!(
            head.contains("access-control-allow-origin: null\r\n"),
            "{head}"
        );
        assert!(
            head.contains("access-control-allow-credentials: true\r\n"),
            "{head}"
        );
        assert_eq!(chunks(&body), [b"o\n".to_vec()]);
        let info = "GET /n/info HTTP/1.1\r\nOrigin: null";
        assert_eq!(status(&raw("127.0.0.1", a, info, "").await.0), 200);
    }
    let a = start(vec![with_origins(&["http://app.test"])]).await;
    let ws = "GET /n/websocket HTTP/1.1\r\nOrigin: null\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    assert_eq!(status(&raw("127.0.0.1", a, ws, "").await.0), 403);
}

/// Opens a WebSocket by hand on `path` and returns the socket after the 101.
async fn ws_open(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = connect_from("127.0.0.1", addr).await;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
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

/// Reads one unmasked server frame: opcode and payload.
async fn ws_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
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

/// Protocol 4: a close the server starts sends Close, then keeps TCP open until the client's
/// Close comes back (RFC 6455 §5.5.1), and only then drops it.
#[tokio::test]
async fn server_close_waits_for_the_clients_close_before_dropping_tcp() {
    let a = start(echo::services()).await;
    for path in [
        "/close/websocket".to_owned(),
        format!("/close/000/{}/websocket", sid("ws")),
    ] {
        let mut tcp = ws_open(a, &path).await;
        let close = loop {
            let (op, payload) = ws_frame(&mut tcp).await;
            if op == 0x8 {
                break payload;
            }
        };
        if path == "/close/websocket" {
            assert_eq!(u16::from_be_bytes([close[0], close[1]]), 3000, "{path}");
            assert_eq!(&close[2..], b"Go away!");
        }
        // Nothing more, and no EOF, while the client has not answered.
        let mut b = [0u8; 1];
        let early = timeout(Duration::from_millis(500), tcp.read(&mut b)).await;
        assert!(
            early.is_err(),
            "{path}: TCP closed before the client's Close: {early:?}"
        );
        // The client's Close (masked, code 1000): now the server drops the socket.
        let started = Instant::now();
        tcp.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])
            .await
            .unwrap();
        let n = timeout(WAIT, tcp.read(&mut b)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "{path}: EOF after the Close exchange");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path}: dropped promptly"
        );
    }
}

/// The links a test's sink keeps, unread.
type HeldLinks = Arc<Mutex<Vec<ClientLink<SockjsRx, SockjsTx>>>>;

/// A service at `/t` with `config` changes and `options`, whose sink keeps every link unread
/// (held in `links`).
fn unread(
    configure: impl FnOnce(&mut stompgate::config::SockjsConfig),
    options: SockjsOptions,
) -> (Arc<Sockjs>, HeldLinks) {
    let links = Arc::new(Mutex::new(Vec::new()));
    let held = links.clone();
    let sink = Arc::new(move |link| held.lock().unwrap().push(link));
    let mut config = echo::config("/t");
    configure(&mut config);
    (
        Sockjs::with_options(config, Vec::new(), sink, options),
        links,
    )
}

/// The inbound queue is bounded in bytes: with a relay that does not read, a send that would
/// take it over its bytes waits and is refused (503), though chunk slots remain.
#[tokio::test]
async fn inbound_queue_is_bounded_in_bytes() {
    let options = SockjsOptions {
        send_timeout: Duration::from_millis(300),
        inbound_messages: 256,
        ..SockjsOptions::default()
    };
    let (svc, _links) = unread(|c| c.inbound_bytes = 64 * 1024, options);
    let a = start(vec![svc]).await;
    let url = format!("/t/000/{}", sid("in"));
    raw("127.0.0.1", a, &format!("POST {url}/xhr HTTP/1.1"), "").await;
    let big = format!("[\"{}\"]", "x".repeat(40 * 1024));
    let send = format!("POST {url}/xhr_send HTTP/1.1");
    assert_eq!(status(&raw("127.0.0.1", a, &send, &big).await.0), 204);
    let started = Instant::now();
    let (head, _) = raw("127.0.0.1", a, &send, &big).await;
    assert_eq!(status(&head), 503, "80 KiB would exceed the 64 KiB bound");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// Session ids are short and plain; the per-address cap counts every transport and leaves
/// other addresses alone; sessions answer only their creator's address.
#[tokio::test]
async fn ids_per_address_cap_and_address_binding() {
    let (svc, links) = unread(|c| c.max_sessions_per_address = 3, SockjsOptions::default());
    let a = start(vec![svc.clone()]).await;
    let long = "a".repeat(65);
    for id in [long.as_str(), "a%20b", "a~b"] {
        let (head, _) = raw(
            "127.0.0.1",
            a,
            &format!("POST /t/000/{id}/xhr HTTP/1.1"),
            "",
        )
        .await;
        assert_eq!(status(&head), 404, "{id}");
    }
    let ok = "a".repeat(64);
    let (head, _) = raw(
        "127.0.0.1",
        a,
        &format!("POST /t/000/{ok}/xhr HTTP/1.1"),
        "",
    )
    .await;
    assert_eq!(status(&head), 200);
    let _ws = ws_open(a, &format!("/t/000/{}/websocket", sid("cap"))).await;
    let third = sid("cap");
    let (head, _) = raw(
        "127.0.0.1",
        a,
        &format!("POST /t/000/{third}/xhr HTTP/1.1"),
        "",
    )
    .await;
    assert_eq!(status(&head), 200);
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(svc.sessions_from(local), 3);
    let fourth = format!("POST /t/000/{}/xhr HTTP/1.1", sid("cap"));
    assert_eq!(status(&raw("127.0.0.1", a, &fourth, "").await.0), 429);
    let raw_ws = "GET /t/websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    assert_eq!(status(&raw("127.0.0.1", a, raw_ws, "").await.0), 429);
    // Another address is not affected, and cannot use this address's sessions.
    let other = format!("POST /t/000/{}/xhr HTTP/1.1", sid("cap"));
    assert_eq!(status(&raw("127.0.0.2", a, &other, "").await.0), 200);
    let theirs = format!("POST /t/000/{third}/xhr_send HTTP/1.1");
    assert_eq!(
        status(&raw("127.0.0.2", a, &theirs, "[\"x\"]").await.0),
        404
    );
    let theirs = format!("POST /t/000/{third}/xhr HTTP/1.1");
    assert_eq!(status(&raw("127.0.0.2", a, &theirs, "").await.0), 404);
    let mine = format!("POST /t/000/{third}/xhr_send HTTP/1.1");
    assert_eq!(status(&raw("127.0.0.1", a, &mine, "[\"x\"]").await.0), 204);
    assert_eq!(
        links.lock().unwrap().len(),
        4,
        "refused requests opened no session"
    );
}

/// A POST whose body never comes is answered 408 after the body timeout and its connection
/// closed, for sending and receiving requests alike; no session is opened.
#[tokio::test]
async fn stalled_bodies_time_out() {
    let (svc, links) = unread(
        |c| c.body_timeout = Duration::from_millis(300),
        SockjsOptions::default(),
    );
    let a = start(vec![svc]).await;
    let id = sid("stall");
    raw(
        "127.0.0.1",
        a,
        &format!("POST /t/000/{id}/xhr HTTP/1.1"),
        "",
    )
    .await;
    for transport in ["xhr_send", "xhr_streaming"] {
        let target = if transport == "xhr_send" {
            id.clone()
        } else {
            sid("stall")
        };
        let mut tcp = connect_from("127.0.0.1", a).await;
        let req = format!(
            "POST /t/000/{target}/{transport} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[\"par"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        timeout(WAIT, tcp.read_to_end(&mut buf))
            .await
            .expect("the connection must be closed, not held")
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{transport}: {text}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
    assert_eq!(links.lock().unwrap().len(), 1);
}
