//! `wss://` end to end: a tokio-tungstenite client over TLS → the gateway's TLS listener →
//! RabbitMQ (STOMP 61613, users from scripts/setup-rabbitmq.sh). Certificate rotation during a
//! live STOMP session (the old session keeps flowing, the next handshake presents the new
//! certificate) and mutual TLS accepted and refused at the gateway. Then the broker link over
//! TLS to RabbitMQ's STOMP TLS listener (61614, scripts/setup-rabbitmq-tls.sh): CONNECTED, and
//! an untrusted CA or a name mismatch reaching the browser as an ERROR frame.

mod common;
mod tls_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{rabbitmq, unique, BROKER_LOGIN, BROKER_PASSCODE};
use futures_util::{SinkExt, StreamExt};
use stompgate::config::{ClientAuthMode, Config, ListenerTlsConfig, UpstreamTlsConfig};
use stompgate::server::Gateway;
use tls_support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

type Wss = WebSocketStream<ClientStream>;

/// Starts a gateway to RabbitMQ whose only client listener is TLS.
async fn start(tls: ListenerTlsConfig) -> Gateway {
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.shutdown_grace = Duration::from_millis(100);
    config.tls = Some(tls);
    Gateway::bind(Arc::new(config)).await.unwrap()
}

/// A `wss://` WebSocket with the STOMP subprotocols, over a handshake with `config`.
async fn open_wss(addr: SocketAddr, config: rustls::ClientConfig) -> std::io::Result<Wss> {
    let stream = handshake(addr, config).await?;
    let mut req = "wss://localhost/ws".into_client_request().unwrap();
    let offered = "v10.stomp, v11.stomp, v12.stomp".parse().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", offered);
    let upgrade = tokio_tungstenite::client_async(req, stream);
    let (ws, _resp) = tokio::time::timeout(WAIT, upgrade)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
        .map_err(std::io::Error::other)?;
    Ok(ws)
}

async fn next_text(ws: &mut Wss) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match msg.unwrap().unwrap() {
            Message::Text(t) if t.as_str() != "\n" => return t.as_str().to_owned(),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// CONNECT (the gateway supplies the broker identity) and SUBSCRIBE to `queue`.
async fn stomp_session(ws: &mut Wss, queue: &str) {
    send(ws, "CONNECT\naccept-version:1.2\nhost:/\n\n\0").await;
    let connected = next_text(ws).await;
    assert!(connected.starts_with("CONNECTED\n"), "{connected}");
    send(
        ws,
        &format!("SUBSCRIBE\nid:s1\ndestination:{queue}\nreceipt:r1\n\n\0"),
    )
    .await;
    assert!(next_text(ws).await.contains("receipt-id:r1"));
}

/// SEND to `queue` and expect the MESSAGE back on the same session.
async fn round_trip(ws: &mut Wss, queue: &str, body: &str) {
    send(ws, &format!("SEND\ndestination:{queue}\n\n{body}\0")).await;
    let msg = next_text(ws).await;
    assert!(msg.starts_with("MESSAGE\n"), "{msg}");
    assert!(msg.ends_with(&format!("\n\n{body}\0")), "{msg:?}");
}

#[tokio::test]
async fn rotation_during_a_live_wss_session() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (old, new) = (ca.server("before"), ca.server("after"));
    let (cert, key) = write_pair(dir.path(), &old);
    let gw = start(listener_config(cert, key, None)).await;
    let (addr, stop, tls) = (
        gw.client_addr(),
        gw.shutdown_token(),
        gw.server_tls().unwrap(),
    );
    tokio::spawn(gw.run());

    let mut live = open_wss(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(live.get_ref()), old.der);
    let queue = unique("/queue/tls-rotation");
    stomp_session(&mut live, &queue).await;
    round_trip(&mut live, &queue, "before rotation").await;

    write_pair(dir.path(), &new);
    tls.reload().unwrap(); // what SIGHUP (or the file watcher) does

    let mut next = open_wss(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(next.get_ref()), new.der);
    let other_queue = unique("/queue/tls-rotation-next");
    stomp_session(&mut next, &other_queue).await;
    round_trip(&mut next, &other_queue, "new session").await;
    round_trip(&mut live, &queue, "old session still flowing").await;
    stop.cancel();
}

#[tokio::test]
async fn mutual_tls_at_the_gateway() {
    let dir = TempDir::new();
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("server CA"),
        Ca::new("client CA"),
        Ca::new("rogue CA"),
    );
    let (cert, key) = write_pair(dir.path(), &server_ca.server("gw"));
    let client_ca_path = write(dir.path(), "client-ca.crt", &client_ca.pem);
    let mtls = Some((client_ca_path, ClientAuthMode::Required));
    let gw = start(listener_config(cert, key, mtls)).await;
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());

    // TLS 1.3: the refusal of a client certificate arrives after the client's handshake
    // finished, so it shows as the WebSocket upgrade failing.
    assert!(open_wss(addr, client_config(&server_ca.pem, None))
        .await
        .is_err());
    let rogue = rogue_ca.client(Some("mallory"), &[]);
    let refused = open_wss(addr, client_config(&server_ca.pem, Some(&rogue))).await;
    assert!(refused.is_err());

    let alice = client_ca.client(Some("alice"), &[]);
    let mut ws = open_wss(addr, client_config(&server_ca.pem, Some(&alice)))
        .await
        .unwrap();
    let queue = unique("/queue/tls-mtls");
    stomp_session(&mut ws, &queue).await;
    round_trip(&mut ws, &queue, "hello from alice").await;
    stop.cancel();
}

/// The broker's STOMP TLS address and the CA from scripts/setup-rabbitmq-tls.sh.
fn rabbitmq_tls() -> (String, std::path::PathBuf) {
    let addr =
        std::env::var("STOMPGATE_TEST_RABBITMQ_TLS").unwrap_or_else(|_| "127.0.0.1:61614".into());
    let dir = std::env::var_os("STOMPGATE_BROKER_TLS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/etc/rabbitmq/stompgate-tls".into());
    (addr, dir.join("ca.crt"))
}

/// A plain `ws://` gateway whose broker link is TLS to RabbitMQ's 61614 with `tls`.
async fn start_with_broker_tls(tls: UpstreamTlsConfig) -> (SocketAddr, CancellationToken) {
    let (addr, _) = rabbitmq_tls();
    let mut config = Config::for_tests(&addr, BROKER_LOGIN, BROKER_PASSCODE);
    config.shutdown_grace = Duration::from_millis(100);
    config.upstream.tls = Some(tls);
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let out = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    out
}

async fn open_ws(addr: SocketAddr) -> Ws {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    let offered = "v10.stomp, v11.stomp, v12.stomp".parse().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", offered);
    let connect = tokio_tungstenite::connect_async(req);
    tokio::time::timeout(WAIT, connect)
        .await
        .unwrap()
        .unwrap()
        .0
}

/// Sends CONNECT and returns the first frame the gateway answers with.
async fn connect_reply(ws: &mut Ws) -> String {
    let connect = "CONNECT\naccept-version:1.2\nhost:/\n\n\0";
    ws.send(Message::text(connect)).await.unwrap();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match msg.unwrap().unwrap() {
            Message::Text(t) if t.as_str() != "\n" => return t.as_str().to_owned(),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn broker_link_over_tls_to_rabbitmq() {
    let (_, ca) = rabbitmq_tls();
    let (addr, stop) = start_with_broker_tls(UpstreamTlsConfig {
        ca: Some(ca),
        ..UpstreamTlsConfig::default()
    })
    .await;
    let mut ws = open_ws(addr).await;
    let reply = connect_reply(&mut ws).await;
    assert!(reply.starts_with("CONNECTED\n"), "{reply}");
    stop.cancel();
}

#[tokio::test]
async fn broker_tls_refusals_end_the_session_with_an_error_frame() {
    let dir = TempDir::new();
    let (_, ca) = rabbitmq_tls();
    let wrong_ca = write(dir.path(), "other-ca.crt", &Ca::new("not RabbitMQ's").pem);
    let cases = [
        (
            UpstreamTlsConfig {
                ca: Some(wrong_ca),
                ..UpstreamTlsConfig::default()
            },
            "broker certificate not trusted",
        ),
        (
            UpstreamTlsConfig {
                ca: Some(ca),
                server_name: Some("rabbitmq.prod.example".into()),
                ..UpstreamTlsConfig::default()
            },
            "broker certificate name mismatch",
        ),
    ];
    for (tls, reason) in cases {
        let (addr, stop) = start_with_broker_tls(tls).await;
        let mut ws = open_ws(addr).await;
        let reply = connect_reply(&mut ws).await;
        assert!(reply.starts_with("ERROR\n"), "{reason}: {reply}");
        // The browser learns the precise reason (not a secret; what an operator needs).
        assert!(
            reply.contains(&format!("message:broker TLS failed: {reason}")),
            "{reason}: {reply}"
        );
        stop.cancel();
    }
}
