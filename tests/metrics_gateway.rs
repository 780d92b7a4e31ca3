//! Observability end to end: real gateway, real WebSocket clients, real RabbitMQ (61613, users
//! from scripts/setup-rabbitmq.sh). A known traffic pattern goes through N connections; the
//! test then asserts exact counters scraped from `/metrics` (parsed by `prometheus-parse`),
//! the per-connection figures in `/connections`, that `DELETE /connections/{id}` closes the
//! right session with an ERROR naming the reason, and that a frame trace logs frames with
//! secrets redacted and stops when told. Loopback only; every wait is bounded.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{rabbitmq, unique, BROKER_LOGIN, BROKER_PASSCODE};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use stompgate::config::{Config, Secret};
use stompgate::server::Gateway;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "adm1n-t0ken";
/// Connections in the traffic pattern.
const N: usize = 3;
/// The unit of frames per command in the pattern.
const M: usize = 2;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Log lines captured from the whole test binary.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .try_init();
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

async fn start() -> Gateway {
    capture_logs();
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.admin_token = Some(Secret::new(TOKEN));
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.shutdown_grace = Duration::from_millis(100);
    Gateway::bind(Arc::new(config)).await.unwrap()
}

/// One admin request with `Connection: close`: status and body.
async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    common::http_exchange(addr, &req).await
}

/// `/metrics`, parsed by a real Prometheus text-format parser: value by `name{labels}` with
/// the labels sorted.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = admin(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    out
}

fn frames(m: &HashMap<String, f64>, dir: &str, cmd: &str) -> f64 {
    m[&format!("stompgate_frames_total{{command={cmd},direction={dir}}}")]
}

async fn connections(addr: SocketAddr) -> Vec<Value> {
    let (status, body) = admin(addr, "GET", "/connections", "").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn open_ws(addr: SocketAddr, forwarded_for: &str) -> Client {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("sec-websocket-protocol", "v12.stomp".parse().unwrap());
    h.insert("x-forwarded-for", forwarded_for.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next STOMP frame (text or binary), skipping heart-beats; panics on close.
async fn next_frame(ws: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match msg.unwrap().unwrap() {
            Message::Text(t) if t.as_str() != "\n" => return t.as_str().to_owned(),
            Message::Binary(b) if b.as_ref() != b"\n" => {
                return String::from_utf8_lossy(&b).into_owned()
            }
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

fn header<'a>(frame: &'a str, name: &str) -> Option<&'a str> {
    let head = frame.split("\n\n").next()?;
    head.lines()
        .skip(1)
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

/// Sends `frame` and returns its wire length.
async fn send(ws: &mut Client, frame: String) -> usize {
    let len = frame.len();
    ws.send(Message::text(frame)).await.unwrap();
    len
}

/// The traffic pattern of one connection, up to (not including) DISCONNECT. Returns the
/// client→broker bytes of its SEND frames.
async fn run_pattern(ws: &mut Client, user: &str) -> usize {
    let connect = format!(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:{user}\npasscode:client-pw\nheart-beat:0,0\n\n\0"
    );
    send(ws, connect).await;
    assert!(next_frame(ws).await.starts_with("CONNECTED\n"));
    let queues: Vec<String> = (0..M).map(|_| unique("/queue/metrics")).collect();
    for (i, q) in queues.iter().enumerate() {
        let sub = format!("SUBSCRIBE\nid:s{i}\ndestination:{q}\nack:client-individual\n\n\0");
        send(ws, sub).await;
    }
    let mut send_bytes = 0;
    for k in 0..2 * M {
        let q = &queues[k % M];
        send_bytes += send(ws, format!("SEND\ndestination:{q}\n\nbody-{k}\0")).await;
    }
    let mut acks = Vec::new();
    for _ in 0..2 * M {
        let msg = next_frame(ws).await;
        assert!(msg.starts_with("MESSAGE\n"), "{msg}");
        acks.push(header(&msg, "ack").expect("ack header").to_owned());
    }
    for id in &acks[..M] {
        send(ws, format!("ACK\nid:{id}\n\n\0")).await;
    }
    for id in &acks[M..] {
        send(ws, format!("NACK\nid:{id}\nrequeue:false\n\n\0")).await;
    }
    for t in 0..2 * M {
        send(ws, format!("BEGIN\ntransaction:t{t}\n\n\0")).await;
    }
    for t in 0..M {
        send(ws, format!("COMMIT\ntransaction:t{t}\n\n\0")).await;
        send(ws, format!("ABORT\ntransaction:t{}\n\n\0", t + M)).await;
    }
    send(ws, "UNSUBSCRIBE\nid:s1\nreceipt:unsub\n\n\0".to_owned()).await;
    let receipt = next_frame(ws).await;
    assert!(receipt.starts_with("RECEIPT\n"), "{receipt}");
    send_bytes
}

/// Waits until the gateway's open-connections gauge reads `want`.
async fn await_open(admin_addr: SocketAddr, want: f64) -> HashMap<String, f64> {
    for _ in 0..100 {
        let m = scrape(admin_addr).await;
        if m["stompgate_connections_open{transport=websocket}"] == want {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connections_open never reached {want}");
}

#[tokio::test]
async fn traffic_pattern_gives_exact_counters_and_connection_figures() {
    let gw = start().await;
    let (addr, admin_addr, stop) = (gw.client_addr(), gw.admin_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());

    let mut clients = Vec::new();
    let mut send_bytes = 0;
    for i in 0..N {
        let mut ws = open_ws(addr, &format!("198.51.100.{i}")).await;
        send_bytes += run_pattern(&mut ws, &format!("user{i}")).await;
        clients.push(ws);
    }
    // A client that sends SEND before CONNECT is refused as a protocol error.
    let mut bad = open_ws(addr, "198.51.100.99").await;
    send(&mut bad, "SEND\ndestination:/queue/x\n\n\0".to_owned()).await;
    assert!(next_frame(&mut bad).await.starts_with("ERROR\n"));

    let table = connections(admin_addr).await;
    let mine: Vec<&Value> = table.iter().filter(|c| c["connected"] == true).collect();
    assert_eq!(mine.len(), N, "{table:?}");
    for (i, c) in mine.iter().enumerate() {
        // Under the static rewrite the client's login proves nothing: no user is claimed.
        assert_eq!(c["user"], Value::Null);
        assert_eq!(c["broker_user"], BROKER_LOGIN);
        assert_eq!(
            c["peer"].as_str().unwrap().split(':').next(),
            Some(&*format!("198.51.100.{i}"))
        );
        assert_eq!(c["transport"], "websocket");
        assert_eq!(c["tls"], false);
        assert_eq!(c["stomp_version"], "1.2");
        assert_eq!(c["subscriptions"], (M - 1) as u64);
        assert_eq!(c["upstream"], rabbitmq());
        let c2b = &c["client_to_broker"]["frames_by_command"];
        assert_eq!(c2b["CONNECT"], 1);
        assert_eq!(c2b["SUBSCRIBE"], M as u64);
        assert_eq!(c2b["SEND"], 2 * M as u64);
        assert_eq!(c2b["ACK"], M as u64);
        assert_eq!(c2b["NACK"], M as u64);
        assert_eq!(c2b["BEGIN"], 2 * M as u64);
        assert_eq!(c2b["COMMIT"], M as u64);
        assert_eq!(c2b["ABORT"], M as u64);
        assert_eq!(c2b["UNSUBSCRIBE"], 1);
        assert_eq!(c["client_to_broker"]["frames"], (1 + M * 9 + 1) as u64);
        let b2c = &c["broker_to_client"]["frames_by_command"];
        assert_eq!(b2c["CONNECTED"], 1);
        assert_eq!(b2c["MESSAGE"], 2 * M as u64);
        assert_eq!(b2c["RECEIPT"], 1);
        assert_eq!(c["broker_to_client"]["frames"], (2 + 2 * M) as u64);
    }

    // Kick the middle connection: it gets an ERROR naming the reason, then a 1008 close.
    let kicked_id = mine[1]["id"].as_u64().unwrap();
    let (status, body) = admin(
        admin_addr,
        "DELETE",
        &format!("/connections/{kicked_id}"),
        r#"{"reason":"maintenance window"}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let error = next_frame(&mut clients[1]).await;
    assert!(error.starts_with("ERROR\n"), "{error}");
    // STOMP 1.2 escapes `:` in header values as `\c`.
    let message = header(&error, "message").map(|m| m.replace("\\c", ":"));
    assert_eq!(
        message.as_deref(),
        Some("closed by operator: maintenance window")
    );
    match tokio::time::timeout(WAIT, clients[1].next()).await.unwrap() {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1008),
        other => panic!("expected a 1008 close, got {other:?}"),
    }
    let (status, _) = admin(admin_addr, "GET", &format!("/connections/{kicked_id}"), "").await;
    assert_eq!(status, 404, "the kicked session left the table");
    for i in [0, 2] {
        let id = mine[i]["id"].as_u64().unwrap();
        let (status, one) = admin(admin_addr, "GET", &format!("/connections/{id}"), "").await;
        assert_eq!(status, 200, "the other sessions stay: {one}");
    }

    for i in [0, 2] {
        send(&mut clients[i], "DISCONNECT\nreceipt:bye\n\n\0".to_owned()).await;
        assert!(next_frame(&mut clients[i]).await.contains("receipt-id:bye"));
    }
    let m = await_open(admin_addr, 0.0).await;
    let c2b = "client_to_broker";
    let b2c = "broker_to_client";
    let n = N as f64;
    let mm = M as f64;
    assert_eq!(frames(&m, c2b, "CONNECT"), n);
    assert_eq!(frames(&m, c2b, "SUBSCRIBE"), n * mm);
    assert_eq!(frames(&m, c2b, "SEND"), n * 2.0 * mm);
    assert_eq!(frames(&m, c2b, "ACK"), n * mm);
    assert_eq!(frames(&m, c2b, "NACK"), n * mm);
    assert_eq!(frames(&m, c2b, "BEGIN"), n * 2.0 * mm);
    assert_eq!(frames(&m, c2b, "COMMIT"), n * mm);
    assert_eq!(frames(&m, c2b, "ABORT"), n * mm);
    assert_eq!(frames(&m, c2b, "UNSUBSCRIBE"), n);
    assert_eq!(frames(&m, c2b, "DISCONNECT"), n - 1.0);
    assert_eq!(frames(&m, b2c, "CONNECTED"), n);
    assert_eq!(frames(&m, b2c, "MESSAGE"), n * 2.0 * mm);
    assert_eq!(frames(&m, b2c, "RECEIPT"), n + n - 1.0);
    assert_eq!(frames(&m, b2c, "ERROR"), 0.0);
    assert_eq!(
        m["stompgate_frame_bytes_total{command=SEND,direction=client_to_broker}"],
        send_bytes as f64
    );
    assert_eq!(
        m["stompgate_connections_opened_total{transport=websocket}"],
        n + 1.0
    );
    assert_eq!(
        m["stompgate_connections_closed_total{reason=kicked,transport=websocket}"],
        1.0
    );
    assert_eq!(
        m["stompgate_connections_closed_total{reason=disconnect,transport=websocket}"],
        n - 1.0
    );
    assert_eq!(
        m["stompgate_connections_closed_total{reason=protocol,transport=websocket}"],
        1.0
    );
    assert_eq!(m["stompgate_sessions_refused_total{reason=protocol}"], 1.0);
    assert_eq!(m["stompgate_sessions_refused_total{reason=auth}"], 0.0);
    assert_eq!(m["stompgate_queued_bytes{direction=client_to_broker}"], 0.0);
    assert!(connections(admin_addr).await.is_empty());
    promtool_check(admin_addr).await;
    stop.cancel();
}

/// `promtool check metrics` on the exposition, when promtool is installed (Debian's
/// `prometheus` package; `scripts/check-metrics.sh` installs it and sets
/// `STOMPGATE_REQUIRE_PROMTOOL=1`, which makes its absence a failure).
async fn promtool_check(admin_addr: SocketAddr) {
    let (_, text) = admin(admin_addr, "GET", "/metrics", "").await;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let required = std::env::var("STOMPGATE_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
            assert!(!required, "promtool required but not runnable: {e}");
            eprintln!("promtool not installed: skipping `promtool check metrics`");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The id of the one session in the table, once it is there.
async fn await_session(admin_addr: SocketAddr) -> u64 {
    for _ in 0..100 {
        if let Some(c) = connections(admin_addr).await.first() {
            return c["id"].as_u64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the session never showed in /connections");
}

#[tokio::test]
async fn frame_trace_logs_redacted_frames_until_stopped() {
    let gw = start().await;
    let (addr, admin_addr, stop) = (gw.client_addr(), gw.admin_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    let mut ws = open_ws(addr, "198.51.100.7").await;
    let id = await_session(admin_addr).await;
    let (status, body) = admin(
        admin_addr,
        "POST",
        "/trace",
        &format!(r#"{{"connection":{id},"max_body":8,"duration_secs":30}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let connect =
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:tracy\npasscode:client-pw\n\n\0".to_owned();
    send(&mut ws, connect).await;
    assert!(next_frame(&mut ws).await.starts_with("CONNECTED\n"));
    let q = unique("/queue/trace");
    send(&mut ws, format!("SUBSCRIBE\nid:s0\ndestination:{q}\n\n\0")).await;
    let traced =
        format!("SEND\ndestination:{q}\napi-token:s3cr3t-value\n\nTRACED-BODY-0123456789\0");
    send(&mut ws, traced).await;
    assert!(next_frame(&mut ws).await.starts_with("MESSAGE\n"));
    let (status, _) = admin(admin_addr, "DELETE", "/trace", "").await;
    assert_eq!(status, 200);
    send(&mut ws, format!("SEND\ndestination:{q}\n\nUNTRACED-BODY\0")).await;
    assert!(next_frame(&mut ws).await.starts_with("MESSAGE\n"));
    send(&mut ws, "DISCONNECT\nreceipt:bye\n\n\0".to_owned()).await;
    assert!(next_frame(&mut ws).await.contains("receipt-id:bye"));
    stop.cancel();

    let logs = captured();
    let trace: Vec<&str> = logs.lines().filter(|l| l.contains("frame_trace")).collect();
    let has = |needle: &str| trace.iter().any(|l| l.contains(needle));
    assert!(
        has("command=\"CONNECT\"") || has("command=CONNECT"),
        "{logs}"
    );
    assert!(has("SEND") && has("MESSAGE"), "{trace:?}");
    // Relayed MESSAGE frames are decoded without their header list; the trace shows them anyway.
    let message_headers = trace.iter().any(|l| {
        l.contains("MESSAGE") && l.contains("subscription:s0") && l.contains("api-token:***")
    });
    assert!(message_headers, "{trace:?}");
    assert!(has("api-token:***"), "{trace:?}");
    assert!(
        has("TRACED-B") && !has("TRACED-BODY-0"),
        "body cut to 8 bytes: {trace:?}"
    );
    assert!(
        !has("UNTRACED"),
        "trace went on after DELETE /trace: {trace:?}"
    );
    for secret in [BROKER_PASSCODE, "client-pw", "s3cr3t-value", TOKEN] {
        assert!(!logs.contains(secret), "secret {secret:?} in the logs");
    }
}
