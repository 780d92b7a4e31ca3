//! The WebSocket transport: the upgrade answers of the real gateway (subprotocols, origin,
//! 405/426/400/404/503), and the [`WsRx`]/[`WsTx`] halves on the gateway's own listener code
//! (message type per mode, heart-beats, close code and reason, oversized messages).
//!
//! No broker is needed: refusals happen before a session starts, and the link tests drive the
//! halves directly. Loopback only, every wait bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use hyper::body::Incoming;
use stompgate::config::{Config, WsFrameMode};
use stompgate::server::{ConnInfo, Gateway, Listener};
use stompgate::transport::ws::{self, WsOptions, WsRx, WsTx};
use stompgate::transport::{ClientRx, ClientTx, CloseCode, LinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WAIT: Duration = Duration::from_secs(5);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Starts a gateway (broker unreachable: sessions only wait for CONNECT) and returns its
/// client address and shutdown token.
async fn gateway(tune: impl FnOnce(&mut Config)) -> (SocketAddr, CancellationToken) {
    let mut config = Config::for_tests("127.0.0.1:9", "u", "p");
    config.connect_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_millis(100);
    tune(&mut config);
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, token) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    (addr, token)
}

/// Sends raw bytes and returns the response head (status line and headers).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await.unwrap() {
                0 => break,
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A WebSocket handshake with extra header lines.
fn handshake(extra: &[&str]) -> String {
    let mut s = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn subprotocol_answer_is_the_best_one_offered() {
    let (addr, stop) = gateway(|_| {}).await;
    let table: &[(&[&str], Option<&str>)] = &[
        (&[], None),
        (&["Sec-WebSocket-Protocol: v10.stomp"], Some("v10.stomp")),
        (
            &["Sec-WebSocket-Protocol: v10.stomp, v11.stomp"],
            Some("v11.stomp"),
        ),
        (
            &[
                "Sec-WebSocket-Protocol: v11.stomp",
                "Sec-WebSocket-Protocol: v12.stomp, v10.stomp",
            ],
            Some("v12.stomp"),
        ),
        (&["Sec-WebSocket-Protocol: mqtt, wamp.2.json"], None),
    ];
    for (extra, want) in table {
        let head = raw(addr, &handshake(extra)).await;
        assert_eq!(status(&head), 101, "{extra:?}: {head}");
        assert_eq!(header(&head, "sec-websocket-protocol"), *want, "{extra:?}");
        assert_eq!(
            header(&head, "sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn bad_upgrades_get_the_right_status() {
    let (addr, stop) = gateway(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let post = "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status(&raw(addr, post).await), 405);
    let plain = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(status(&raw(addr, plain).await), 426);
    let old = handshake(&[]).replace("Version: 13", "Version: 8");
    let head = raw(addr, &old).await;
    assert_eq!(status(&head), 400);
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));
    let no_key = handshake(&[]).replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    assert_eq!(status(&raw(addr, &no_key).await), 400);
    let no_conn = handshake(&[]).replace("Connection: Upgrade", "Connection: keep-alive");
    assert_eq!(status(&raw(addr, &no_conn).await), 400);
    let evil = handshake(&["Origin: https://evil.example"]);
    assert_eq!(status(&raw(addr, &evil).await), 403);
    let good = handshake(&["Origin: https://app.example"]);
    assert_eq!(status(&raw(addr, &good).await), 101);
    let other = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(status(&raw(addr, other).await), 404);
    stop.cancel();
}

#[tokio::test]
async fn upgrades_over_the_session_cap_get_503() {
    let (addr, stop) = gateway(|c| c.max_connections = 1).await;
    let first = raw_ws(addr).await;
    assert_eq!(status(&raw(addr, &handshake(&[])).await), 503);
    drop(first);
    // The slot frees once the first session ends.
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(&raw(addr, &handshake(&[])).await);
        if s == 101 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot never freed (last status {s})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
}

/// A WebSocket connection through the handshake, kept open.
async fn raw_ws(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(handshake(&[]).as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    tcp
}

/// A listener whose upgraded connections are handed to the test as link halves.
async fn link_server(opts: WsOptions) -> (SocketAddr, mpsc::Receiver<(WsRx, WsTx)>) {
    let listener = Listener::bind("test", "127.0.0.1:0".parse().unwrap(), None, 16)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (links, rx) = mpsc::channel(4);
    let handler = move |mut req: Request<Incoming>, _conn: ConnInfo| {
        let (opts, links) = (opts.clone(), links.clone());
        async move {
            let (resp, pending) = match ws::upgrade(&mut req, &opts) {
                Ok(pair) => pair,
                Err(e) => return e.into_response(),
            };
            tokio::spawn(async move {
                let stream = pending.finish().await.unwrap();
                let _ = links.send(ws::split_link(stream, opts.frame_mode)).await;
            });
            resp
        }
    };
    tokio::spawn(listener.serve(handler, CancellationToken::new(), TaskTracker::new()));
    (addr, rx)
}

fn options(mode: WsFrameMode, max_message: usize) -> WsOptions {
    WsOptions {
        allowed_origins: Vec::new(),
        frame_mode: mode,
        config: ws::ws_config(max_message),
    }
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(opts: WsOptions) -> (Client, WsRx, WsTx) {
    let (addr, mut links) = link_server(opts).await;
    let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let (rx, tx) = tokio::time::timeout(WAIT, links.recv())
        .await
        .unwrap()
        .unwrap();
    (client, rx, tx)
}

async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(WAIT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn message_type_follows_the_mode_and_heartbeats_go_out_at_once() {
    let utf8 = Bytes::from_static(b"MESSAGE\ndestination:/q/a\n\nh\xc3\xa9\0");
    let not_utf8 = Bytes::from_static(b"MESSAGE\n\n\xff\xfe\0");
    for (mode, text_ok) in [
        (WsFrameMode::Auto, true),
        (WsFrameMode::Text, true),
        (WsFrameMode::Binary, false),
    ] {
        let (mut client, _rx, mut tx) = connect(options(mode, 1 << 20)).await;
        tx.send(utf8.clone()).await.unwrap();
        tx.send(not_utf8.clone()).await.unwrap();
        tx.flush().await.unwrap();
        let first = next(&mut client).await;
        assert_eq!(first.is_text(), text_ok, "{mode:?}");
        assert_eq!(first.into_data(), utf8);
        let second = next(&mut client).await;
        assert!(second.is_binary(), "{mode:?}: non-UTF-8 is always binary");
        assert_eq!(second.into_data(), not_utf8);
        // A heart-beat arrives without any flush from the relay.
        tx.send(Bytes::from_static(b"\n")).await.unwrap();
        assert_eq!(
            next(&mut client).await.into_data(),
            Bytes::from_static(b"\n")
        );
    }
}

async fn recv(rx: &mut WsRx) -> Option<Bytes> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn inbound_text_and_binary_are_both_bytes() {
    let (mut client, mut rx, _tx) = connect(options(WsFrameMode::Auto, 1 << 20)).await;
    client.send(Message::text("SEND\n")).await.unwrap();
    client
        .send(Message::binary(&b"\xffbody\0"[..]))
        .await
        .unwrap();
    assert_eq!(recv(&mut rx).await, Some(Bytes::from_static(b"SEND\n")));
    assert_eq!(recv(&mut rx).await, Some(Bytes::from_static(b"\xffbody\0")));
    client.close(None).await.unwrap();
    assert_eq!(recv(&mut rx).await, None);
}

#[tokio::test]
async fn close_delivers_code_and_truncated_reason() {
    let (mut client, rx, mut tx) = connect(options(WsFrameMode::Auto, 1 << 20)).await;
    drop(rx); // the relay may drop its receiving half first; close still completes the handshake
    let reason = "é".repeat(100);
    let closing = tokio::spawn(async move {
        let started = Instant::now();
        tx.close(CloseCode::Policy, &reason).await.unwrap();
        started.elapsed()
    });
    let Message::Close(Some(frame)) = next(&mut client).await else {
        panic!("expected a Close frame");
    };
    assert_eq!(frame.code, WsCode::Policy);
    assert_eq!(frame.reason.as_str(), "é".repeat(61));
    // The client's reply ends the server's wait well before the linger bound.
    assert!(tokio::time::timeout(WAIT, client.next())
        .await
        .unwrap()
        .is_none());
    let took = closing.await.unwrap();
    assert!(
        took < Duration::from_millis(1500),
        "close lingered {took:?}"
    );
}

#[tokio::test]
async fn oversized_message_is_refused_with_1009() {
    let (mut client, mut rx, mut tx) = connect(options(WsFrameMode::Auto, 1024)).await;
    client
        .send(Message::binary(vec![b'x'; 4096]))
        .await
        .unwrap();
    let err = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, LinkError::Protocol(_)), "{err:?}");
    tx.close(CloseCode::Protocol, "too big").await.unwrap();
    let Message::Close(Some(frame)) = next(&mut client).await else {
        panic!("expected a Close frame");
    };
    assert_eq!(frame.code, WsCode::Size);
}

#[tokio::test]
async fn oversized_message_is_refused_by_the_gateway() {
    let (addr, stop) = gateway(|c| {
        c.limits.max_body_bytes = 1024;
        c.limits.max_header_bytes = 1024;
    })
    .await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    client
        .send(Message::binary(vec![b'x'; 64 * 1024]))
        .await
        .unwrap();
    let closed = async {
        while let Some(Ok(msg)) = client.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| f.code);
            }
        }
        None
    };
    let code = tokio::time::timeout(WAIT, closed).await.unwrap();
    assert_eq!(code, Some(WsCode::Size));
    stop.cancel();
}
