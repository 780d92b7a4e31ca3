//! The harness: a gateway started in-process with a policy file written at test time, a
//! WebSocket STOMP client, a fake broker that records what it is sent, and the log capture
//! that the secrets test reads.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stompgate::config::Config;
use stompgate::relay::RelayContext;
use stompgate::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::common::{rabbitmq, BROKER_LOGIN, BROKER_PASSCODE};
use crate::policy_common::TempDir;

/// Bound on every wait for the gateway or the broker.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Log capture: every test in this binary logs at TRACE into one buffer.

fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the TRACE-level capture (once per test binary; `RUST_LOG` is ignored on purpose),
/// through the gateway's own filter ([`stompgate::logging::filter`]) as `--log trace` would.
pub fn capture_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .with_filter(stompgate::logging::filter(Some("trace")));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Everything logged so far by this test binary.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// A running gateway, stopped on drop, with its policy directory.
pub struct Gw {
    pub addr: SocketAddr,
    pub ctx: Arc<RelayContext>,
    pub dir: TempDir,
    stop: CancellationToken,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Gw {
    /// Opens a WebSocket (`v12.stomp`) with these extra upgrade headers and query string.
    pub async fn ws_with(&self, headers: &[(&str, &str)], query: &str) -> Ws {
        let mut req = format!("ws://{}/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("sec-websocket-protocol", "v12.stomp".parse().unwrap());
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("upgrade timed out")
            .expect("upgrade refused");
        Ws(ws)
    }

    /// Opens a plain WebSocket.
    pub async fn ws(&self) -> Ws {
        self.ws_with(&[], "").await
    }
}

/// Starts a gateway whose broker is `upstream` and whose policy is `policy` (written to
/// `policy.toml` in `dir`, next to the files it names).
pub async fn start_with(dir: TempDir, policy: &str, upstream: &str) -> Gw {
    capture_logs();
    let path = dir.write("policy.toml", policy);
    let mut config = Config::for_tests(upstream, BROKER_LOGIN, BROKER_PASSCODE);
    config.policy = Some(path);
    config.shutdown_grace = Duration::from_millis(100);
    config.connect_timeout = Duration::from_secs(5);
    let gw = Gateway::bind(Arc::new(config))
        .await
        .expect("gateway binds");
    let (addr, stop, ctx) = (gw.client_addr(), gw.shutdown_token(), gw.relay_context());
    tokio::spawn(gw.run());
    Gw {
        addr,
        ctx,
        dir,
        stop,
    }
}

/// Starts a gateway in front of the real RabbitMQ.
pub async fn start(dir: TempDir, policy: &str) -> Gw {
    start_with(dir, policy, &rabbitmq()).await
}

// ---------------------------------------------------------------------------------------------
// The WebSocket STOMP client.

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A STOMP client over a WebSocket.
pub struct Ws(pub Stream);

/// What the gateway did after an ERROR.
#[derive(Debug)]
pub struct Refusal {
    /// The ERROR frame, whole.
    pub frame: String,
    /// The WebSocket close code.
    pub code: Option<CloseCode>,
}

impl Refusal {
    /// The ERROR's `message` header.
    pub fn message(&self) -> String {
        header(&self.frame, "message").unwrap_or_default()
    }
}

impl Ws {
    /// Sends one WebSocket text message.
    pub async fn send(&mut self, text: &str) {
        self.0.send(Message::text(text)).await.expect("send");
    }

    /// The next STOMP frame, skipping heart-beats; `"<closed>"` when the socket closed.
    pub async fn frame(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("timed out waiting for a frame");
            match msg {
                Some(Ok(Message::Text(t))) if t.as_str() != "\n" => return t.as_str().into(),
                Some(Ok(Message::Binary(b))) if b.as_ref() != b"\n" => {
                    return String::from_utf8_lossy(&b).into_owned()
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return "<closed>".into(),
                _ => continue,
            }
        }
    }

    /// Expects an ERROR frame, then the close; returns both.
    pub async fn refusal(&mut self) -> Refusal {
        let frame = self.frame().await;
        assert!(
            frame.starts_with("ERROR\n"),
            "expected ERROR, got {frame:?}"
        );
        let code = self.close_code().await;
        Refusal { frame, code }
    }

    /// Waits for the close; its code (`None` if the socket ended without a close frame).
    pub async fn close_code(&mut self) -> Option<CloseCode> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("timed out waiting for the close");
            match msg {
                Some(Ok(Message::Close(c))) => return c.map(|c| c.code),
                None | Some(Err(_)) => return None,
                Some(Ok(m)) => assert!(
                    m.is_ping() || m.is_pong() || m.to_text().is_ok_and(|t| t == "\n"),
                    "expected the close, got {m:?}"
                ),
            }
        }
    }

    /// Asserts no STOMP frame arrives for [`QUIET`] (heart-beats and pings aside).
    pub async fn expect_quiet(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.0.next()).await {
            let beat = m.is_ping() || m.is_pong() || m.to_text().is_ok_and(|t| t == "\n");
            assert!(beat, "unexpected message {m:?}");
        }
    }

    /// SUBSCRIBE with a receipt; waits for it.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        self.send(&format!(
            "SUBSCRIBE\nid:{id}\ndestination:{destination}\nreceipt:sub-{id}\n\n\0"
        ))
        .await;
        let f = self.frame().await;
        assert_eq!(header(&f, "receipt-id"), Some(format!("sub-{id}")), "{f}");
    }

    /// SEND (no receipt: the MESSAGE of a subscriber on the same socket may come first).
    pub async fn send_to(&mut self, destination: &str, body: &str) {
        self.send(&format!(
            "SEND\ndestination:{destination}\ncontent-type:text/plain\n\n{body}\0"
        ))
        .await;
    }
}

/// A 1.2 CONNECT with `login`/`passcode` (omitted when empty) and `extra` header lines.
pub fn connect(login: &str, passcode: &str, extra: &str) -> String {
    let mut f = String::from("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n");
    if !login.is_empty() {
        f.push_str(&format!("login:{login}\n"));
    }
    if !passcode.is_empty() {
        f.push_str(&format!("passcode:{passcode}\n"));
    }
    f.push_str(extra);
    f.push_str("\n\0");
    f
}

/// The first value of header `name` in a frame's text, unescaped (STOMP 1.1/1.2 escapes).
pub fn header(frame: &str, name: &str) -> Option<String> {
    let head = frame.split("\n\n").next()?;
    let raw = head
        .lines()
        .skip(1)
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?;
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('c') => out.push(':'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    Some(out)
}

/// The body of a frame's text (without the NUL).
pub fn body(frame: &str) -> &str {
    frame
        .split_once("\n\n")
        .map_or("", |(_, b)| b.trim_end_matches('\0'))
}

/// Asserts a refusal: ERROR with exactly `message`, close 1008 (policy).
pub fn assert_refused(r: &Refusal, message: &str) {
    assert_eq!(r.message(), message, "{}", r.frame);
    assert_eq!(r.code, Some(CloseCode::Policy), "{}", r.frame);
}

// ---------------------------------------------------------------------------------------------
// The fake broker.

/// The bytes one broker connection received.
type Recorded = Arc<Mutex<Vec<u8>>>;

/// An in-process broker that answers every CONNECT with CONNECTED and records each
/// connection's bytes (for asserting exactly what a broker would have seen).
pub struct FakeBroker {
    pub addr: String,
    conns: Arc<Mutex<Vec<Recorded>>>,
}

/// Most connections a fake broker accepts (tests open a handful).
const FAKE_BROKER_MAX_CONNS: usize = 32;

impl FakeBroker {
    pub async fn start() -> FakeBroker {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let conns: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let list = conns.clone();
        tokio::spawn(async move {
            for _ in 0..FAKE_BROKER_MAX_CONNS {
                let Ok((s, _)) = l.accept().await else { return };
                let seen = Arc::new(Mutex::new(Vec::new()));
                list.lock().unwrap().push(seen.clone());
                tokio::spawn(serve_fake(s, seen));
            }
        });
        FakeBroker { addr, conns }
    }

    /// How many connections the gateway opened.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// The bytes received on connection `i`, once they hold at least `frames` NULs.
    pub async fn seen(&self, i: usize, frames: usize) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self
                .conns
                .lock()
                .unwrap()
                .get(i)
                .map(|c| c.lock().unwrap().clone());
            if let Some(bytes) = got.filter(|b| b.iter().filter(|&&c| c == 0).count() >= frames) {
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fake broker: connection {i} never got {frames} frames"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve_fake(mut s: TcpStream, seen: Recorded) {
    let mut buf = [0u8; 4096];
    let mut answered = false;
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, s.read(&mut buf)).await {
        if n == 0 {
            return;
        }
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
        if !answered && buf[..n].contains(&0) {
            answered = true;
            let ok = s
                .write_all(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
                .await;
            if ok.is_err() {
                return;
            }
        }
    }
}

/// The header lines of the first frame in `bytes` (command excluded).
pub fn first_frame_headers(bytes: &str) -> Vec<&str> {
    let head = bytes.split("\n\n").next().unwrap_or("");
    head.lines().skip(1).collect()
}

impl Gw {
    /// Sends `connect` on a fresh WebSocket and expects CONNECTED; returns the socket.
    pub async fn connected(&self, connect: &str) -> Ws {
        self.connected_with(&[], "", connect).await
    }

    /// [`Gw::connected`] with upgrade headers and a query string.
    pub async fn connected_with(&self, headers: &[(&str, &str)], query: &str, connect: &str) -> Ws {
        let mut ws = self.ws_with(headers, query).await;
        ws.send(connect).await;
        let f = ws.frame().await;
        assert!(
            f.starts_with("CONNECTED\n"),
            "expected CONNECTED, got {f:?}"
        );
        ws
    }

    /// Sends `connect` on a fresh WebSocket and expects an ERROR and a close.
    pub async fn refused(&self, connect: &str) -> Refusal {
        self.refused_with(&[], "", connect).await
    }

    /// [`Gw::refused`] with upgrade headers and a query string.
    pub async fn refused_with(
        &self,
        headers: &[(&str, &str)],
        query: &str,
        connect: &str,
    ) -> Refusal {
        let mut ws = self.ws_with(headers, query).await;
        ws.send(connect).await;
        ws.refusal().await
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets used by the tests, for the log check.

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers `s` as a secret the logs must never show, and returns it.
pub fn secret(s: impl Into<String>) -> String {
    let s = s.into();
    secrets()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(s.clone());
    s
}

/// Every secret registered so far.
pub fn registered_secrets() -> Vec<String> {
    secrets().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Broker passcodes the policies in these tests hold (from scripts/setup-rabbitmq.sh).
pub const BROKER_SECRETS: [&str; 3] = ["stompgate-secret", "svc-a-secret", "svc-b-secret"];

/// A users file with `alice` (argon2id, fast test parameters) and `bob` (bcrypt, cost 4),
/// each with a `tenant` claim, for the passwords given.
pub fn users_file(alice_pw: &str, bob_pw: &str) -> String {
    let alice = stompgate::policy::hash_password_with(
        alice_pw.as_bytes(),
        stompgate::policy::test_params(),
    )
    .unwrap();
    let bob = bcrypt::hash(bob_pw, 4).unwrap();
    secret(alice.clone());
    secret(bob.clone());
    format!(
        "[[user]]\nname = \"alice\"\nhash = {alice:?}\nroles = [\"user\"]\nclaims = {{ tenant = \"a\" }}\n\n\
         [[user]]\nname = \"bob\"\nhash = {bob:?}\nroles = [\"user\"]\nclaims = {{ tenant = \"b\" }}\n"
    )
}

/// `[upstream.default]`: everyone becomes the gateway's broker user on `/`.
pub const UPSTREAM_DEFAULT: &str = r#"
[upstream.default]
login = "stompgate"
passcode = "stompgate-secret"
vhost = "/"
"#;
