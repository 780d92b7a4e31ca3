//! The harness for the attack tests: RabbitMQ's management API (a broker user of each test's
//! own, so its connections can be counted on the broker), gateways in-process and as a child
//! process (for RSS), and a WebSocket STOMP client.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use stompgate::config::Config;
use stompgate::relay::RelayContext;
use stompgate::server::Gateway;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::common::{rabbitmq, unique};

/// Bound on every single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// RabbitMQ's management API (guest works over loopback).
const MANAGEMENT: &str = "127.0.0.1:15672";

// ---------------------------------------------------------------------------------------------
// RabbitMQ management API.

/// One HTTP/1.0 request to the management API (no chunked answers): status and JSON body.
pub async fn management(method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = base64_basic("guest", "guest");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = TcpStream::connect(MANAGEMENT)
        .await
        .expect("management API");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("management API answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// A broker user of the test's own (full rights on `/`), deleted on drop: its connections are
/// the test's and no one else's.
pub struct BrokerUser {
    pub name: String,
    pub password: String,
}

impl BrokerUser {
    pub async fn create(prefix: &str) -> BrokerUser {
        let name = unique(&format!("issue18-{prefix}"));
        let password = format!("{name}-pw");
        let (s, _) = management(
            "PUT",
            &format!("/api/users/{name}"),
            &format!(r#"{{"password":"{password}","tags":""}}"#),
        )
        .await;
        assert!(s == 201 || s == 204, "create user: {s}");
        let (s, _) = management(
            "PUT",
            &format!("/api/permissions/%2F/{name}"),
            r#"{"configure":".*","write":".*","read":".*"}"#,
        )
        .await;
        assert!(s == 201 || s == 204, "permissions: {s}");
        BrokerUser { name, password }
    }

    /// STOMP connections the broker has for this user now.
    pub async fn connections(&self) -> usize {
        broker_connections(&self.name).await
    }

    /// Waits until the broker has exactly `n` connections for this user.
    pub async fn await_connections(&self, n: usize) {
        await_broker_connections(&self.name, n).await
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, off the test's runtime (which may be shutting down).
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(management("DELETE", &format!("/api/users/{name}"), ""));
            }
        });
    }
}

/// STOMP connections the broker has for `user`.
pub async fn broker_connections(user: &str) -> usize {
    let (s, all) = management("GET", "/api/connections", "").await;
    assert_eq!(s, 200, "GET /api/connections");
    all.as_array()
        .map(|a| a.iter().filter(|c| c["user"] == user).count())
        .unwrap_or(0)
}

/// Waits (bounded) until the broker has exactly `n` connections for `user`.
pub async fn await_broker_connections(user: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = broker_connections(user).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker connections for {user}: {now}, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Gateways.

/// An in-process gateway, stopped on drop.
pub struct Gw {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub ctx: Arc<RelayContext>,
    stop: CancellationToken,
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A configuration for the real RabbitMQ, with `policy` (a file path) when given.
pub fn config(policy: Option<&Path>) -> Config {
    let mut c = Config::for_tests(&rabbitmq(), "unused", "unused");
    c.policy = policy.map(Path::to_owned);
    c.shutdown_grace = Duration::from_millis(100);
    c.connect_timeout = Duration::from_secs(5);
    c
}

/// Starts a gateway in-process.
pub async fn start(config: Config) -> Gw {
    let gw = Gateway::bind(Arc::new(config))
        .await
        .expect("gateway binds");
    let (addr, admin) = (gw.client_addr(), gw.admin_addr());
    let (stop, ctx) = (gw.shutdown_token(), gw.relay_context());
    tokio::spawn(gw.run());
    Gw {
        addr,
        admin,
        ctx,
        stop,
    }
}

/// The gateway binary as a child process (its RSS is its own), killed on drop.
pub struct Child {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl Child {
    /// Starts `stompgate` with `args` plus loopback listeners on port 0.
    pub async fn start(args: &[&str]) -> Child {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stompgate"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .env("STOMPGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("gateway binary");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(a) = line.strip_prefix("listening client ") {
                    return a.parse().unwrap();
                }
            }
            panic!("the gateway exited before listening");
        })
        .await
        .expect("gateway start-up");
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Child { child, addr }
    }

    /// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
    }
}

// ---------------------------------------------------------------------------------------------
// A WebSocket STOMP client.

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `ws://addr/ws` with `v12.stomp`.
pub async fn open_ws(addr: SocketAddr) -> Client {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "v12.stomp".parse().unwrap());
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade in time")
        .expect("upgrade accepted")
        .0
}

pub async fn send(ws: &mut Client, text: &str) {
    ws.send(Message::text(text.to_owned())).await.unwrap();
}

/// The next STOMP frame, skipping heart-beats; `None` once the socket closed.
pub async fn next_frame(ws: &mut Client) -> Option<String> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) if t.as_str() != "\n" => return Some(t.as_str().to_owned()),
            Some(Ok(Message::Binary(b))) if b.as_ref() != b"\n" => {
                return Some(String::from_utf8_lossy(&b).into_owned())
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            _ => continue,
        }
    }
}

/// A CONNECT frame.
pub fn connect(login: &str, passcode: &str, heart_beat: &str) -> String {
    format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\nheart-beat:{heart_beat}\n\n\0"
    )
}

/// Connects and returns the first frame the gateway answers with.
pub async fn connect_answer(addr: SocketAddr, frame: &str) -> (Client, String) {
    let mut ws = open_ws(addr).await;
    send(&mut ws, frame).await;
    let answer = next_frame(&mut ws).await.unwrap_or_default();
    (ws, answer)
}

/// A header's value (1.2 unescaping of `\c` only, enough for our messages).
pub fn header(frame: &str, name: &str) -> Option<String> {
    frame
        .split("\n\n")
        .next()?
        .lines()
        .skip(1)
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.replace("\\c", ":"))
}

/// Asserts an ERROR frame with this `message`.
pub fn assert_error(frame: &str, message: &str) {
    assert!(
        frame.starts_with("ERROR\n"),
        "expected an ERROR, got {frame:?}"
    );
    assert_eq!(
        header(frame, "message").as_deref(),
        Some(message),
        "{frame:?}"
    );
}

/// Waits until the socket closes (any close), bounded.
pub async fn await_close(ws: &mut Client) {
    while next_frame(ws).await.is_some() {}
}
