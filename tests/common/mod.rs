//! Shared helpers for integration tests: broker addresses, an in-memory client link, STOMP
//! frame helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use stompgate::config::Config;
use stompgate::relay::{run_session, RelayContext};
use stompgate::stomp::{Decoder, Frame, Item, Limits};
use stompgate::transport::{
    ClientLink, ClientMeta, ClientRx, ClientTx, CloseCode, LinkError, TransportKind,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// RabbitMQ's STOMP port, from the test script's environment.
pub fn rabbitmq() -> String {
    std::env::var("STOMPGATE_TEST_RABBITMQ").unwrap_or_else(|_| "127.0.0.1:61613".into())
}

/// ActiveMQ's STOMP port.
pub fn activemq() -> String {
    std::env::var("STOMPGATE_TEST_ACTIVEMQ").unwrap_or_else(|_| "127.0.0.1:61623".into())
}

/// The broker user the test script creates for the gateway.
pub const BROKER_LOGIN: &str = "stompgate";
/// Its passcode.
pub const BROKER_PASSCODE: &str = "stompgate-secret";

/// A unique name for queues in one test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the relay sent to the in-memory client.
#[derive(Debug)]
pub enum Out {
    Message(Bytes),
    Close(CloseCode, String),
}

pub struct MemRx(mpsc::Receiver<Bytes>);
pub struct MemTx(mpsc::Sender<Out>);

impl ClientRx for MemRx {
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        Ok(self.0.recv().await)
    }
}

impl ClientTx for MemTx {
    async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        self.0
            .send(Out::Message(frame))
            .await
            .map_err(|_| LinkError::Gone)
    }
    async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), LinkError> {
        self.0
            .send(Out::Close(code, reason.to_owned()))
            .await
            .map_err(|_| LinkError::Gone)
    }
}

/// The test's end of an in-memory session.
pub struct MemClient {
    pub to_relay: Option<mpsc::Sender<Bytes>>,
    pub from_relay: mpsc::Receiver<Out>,
    pub session: tokio::task::JoinHandle<()>,
    decoder: Decoder,
}

pub fn meta() -> ClientMeta {
    ClientMeta {
        peer: "127.0.0.1:1".parse().unwrap(),
        transport: TransportKind::WebSocket,
        tls: false,
        headers: Default::default(),
        query: None,
        client_cert: None,
    }
}

impl MemClient {
    /// Starts `run_session` with this configuration and an in-memory link.
    pub fn start(config: Config) -> (MemClient, CancellationToken) {
        let token = CancellationToken::new();
        let ctx = RelayContext::new(Arc::new(config), token.clone()).expect("relay context");
        (MemClient::start_in(ctx), token)
    }

    /// Starts `run_session` in a shared context (so sessions share upstream health, limits).
    pub fn start_in(ctx: Arc<RelayContext>) -> MemClient {
        let (to_relay, rx) = mpsc::channel(64);
        let (tx, from_relay) = mpsc::channel(1024);
        let link = ClientLink {
            rx: MemRx(rx),
            tx: MemTx(tx),
            meta: meta(),
        };
        let session = tokio::spawn(run_session(ctx, link));
        MemClient {
            to_relay: Some(to_relay),
            from_relay,
            session,
            decoder: Decoder::new(Limits::default()),
        }
    }

    pub async fn send_raw(&self, bytes: impl Into<Bytes>) {
        self.to_relay
            .as_ref()
            .unwrap()
            .send(bytes.into())
            .await
            .expect("relay gone");
    }

    /// Drops the sending side: the relay sees the client go away.
    pub fn hang_up(&mut self) {
        self.to_relay = None;
    }

    /// Next message or close from the relay, with a timeout.
    pub async fn next(&mut self) -> Out {
        tokio::time::timeout(Duration::from_secs(10), self.from_relay.recv())
            .await
            .expect("timed out waiting for the relay")
            .expect("relay ended without a close")
    }

    /// Next frame (skipping heart-beats); panics on close.
    pub async fn frame(&mut self) -> Frame {
        loop {
            match self.next().await {
                Out::Message(m) => {
                    if let Some(f) = decode_one(&mut self.decoder, &m) {
                        return f;
                    }
                }
                Out::Close(code, reason) => panic!("closed {code:?} {reason}"),
            }
        }
    }

    /// Expects an ERROR frame then a close; returns (message header, close code).
    pub async fn expect_error_close(&mut self) -> (String, CloseCode) {
        let f = self.frame().await;
        assert_eq!(
            f.command,
            stompgate::stomp::Command::Error,
            "expected ERROR, got {f:?}"
        );
        let msg = f.header("message").unwrap_or_default().to_owned();
        match self.next().await {
            Out::Close(code, _) => (msg, code),
            other => panic!("expected close after ERROR, got {other:?}"),
        }
    }
}

/// Decodes exactly one frame from one transport message; `None` for a heart-beat.
pub fn decode_one(decoder: &mut Decoder, msg: &[u8]) -> Option<Frame> {
    let mut buf = BytesMut::from(msg);
    match decoder
        .decode(&mut buf)
        .expect("relay sent a malformed frame")
    {
        Some(Item::Frame(f)) => {
            assert!(
                buf.iter().all(|b| *b == b'\n' || *b == b'\r'),
                "more than one frame in one message"
            );
            Some(f)
        }
        Some(Item::Heartbeat) | None => None,
    }
}

/// A CONNECT frame's bytes.
pub fn connect_frame(login: &str, passcode: &str, extra: &str) -> String {
    format!("CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\nheart-beat:0,0\n{extra}\n\0")
}

/// Sends one raw HTTP/1.1 request (it should say `Connection: close`) and returns the status
/// and the body, bounded by a timeout.
pub async fn http_exchange(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("timed out reading the HTTP response")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}
