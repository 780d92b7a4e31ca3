//! The relay's hot path, frame in → frame out: one `stompgate::relay::run_session` on a
//! current-thread runtime, with an in-memory client link and an in-process fake broker on
//! loopback TCP. Client → broker: the client sends one frame per message (as stomp.js does),
//! the link joins the messages already received (as the WebSocket transport does, so the relay
//! writes them to the broker in one system call), and the broker counts the bytes that arrive.
//! Broker → client: the broker writes MESSAGE frames as fast as the socket takes them and the
//! client counts the frames the relay `send`s. Run:
//! `cargo bench --bench relay -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/PERFORMANCE.md, section "Relay hot path").
//!
//! Before the criterion groups it prints the size of the session's future (the per-session
//! state every idle connection keeps) and of the WebSocket stream state.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stompgate::config::Config;
use stompgate::relay::{run_session, RelayContext};
use stompgate::stomp::{Decoder, Item, Limits};
use stompgate::transport::{ws::WsStream, TransportKind};
use stompgate::transport::{ClientLink, ClientMeta, ClientRx, ClientTx, CloseCode, LinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Frames the client queues towards the relay before it has to wait.
const CLIENT_QUEUE: usize = 256;
/// How long one setup or one measured batch may take before the bench gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A counter some task waits on until it reaches a target.
#[derive(Default)]
struct Progress {
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Progress {
    fn add(&self, n: u64) {
        let now = self.count.fetch_add(n, Ordering::Relaxed) + n;
        if now >= self.target.load(Ordering::Relaxed) {
            self.reached.notify_one();
        }
    }

    /// Waits until `count` has grown by `n` from where it is now.
    async fn wait_for(&self, n: u64) {
        let target = self.count.load(Ordering::Relaxed) + n;
        self.target.store(target, Ordering::Relaxed);
        while self.count.load(Ordering::Relaxed) < target {
            self.reached.notified().await;
        }
    }
}

/// The relay's view of the client: frames from a channel, one per message, joined like the
/// WebSocket transport joins the messages it has already received (up to 64 KiB per `recv`).
struct BenchRx(mpsc::Receiver<Bytes>);

/// Most bytes one `recv` joins (as `transport::ws` does).
const RECV_BATCH_BYTES: usize = 64 * 1024;

impl ClientRx for BenchRx {
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        let Some(first) = self.0.recv().await else {
            return Ok(None);
        };
        let mut batch: Option<BytesMut> = None;
        while batch.as_ref().map_or(first.len(), BytesMut::len) < RECV_BATCH_BYTES {
            let Ok(more) = self.0.try_recv() else { break };
            batch
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more);
        }
        Ok(Some(batch.map_or(first, BytesMut::freeze)))
    }
}

/// The client's receiving end: counts frames and bytes.
struct BenchTx {
    frames: Arc<Progress>,
    bytes: Arc<AtomicU64>,
}

impl ClientTx for BenchTx {
    async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.frames.add(1);
        Ok(())
    }

    async fn close(&mut self, _code: CloseCode, _reason: &str) -> Result<(), LinkError> {
        Ok(())
    }
}

/// What the fake broker does after CONNECTED.
#[derive(Clone)]
enum BrokerMode {
    /// Reads and counts bytes.
    Swallow(Arc<Progress>),
    /// Writes `frames` (one chunk of MESSAGE frames) each time asked, while reading nothing.
    Push(Arc<tokio::sync::Mutex<mpsc::Receiver<u64>>>, Bytes),
}

/// Accepts one connection, answers CONNECT, then acts as `mode` says.
async fn fake_broker(listener: TcpListener, mode: BrokerMode) {
    let Ok((mut sock, _)) = listener.accept().await else {
        return;
    };
    let _ = sock.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut dec = Decoder::new(Limits::default());
    loop {
        if let Ok(Some(Item::Frame(f))) = dec.decode(&mut buf) {
            if f.command.is_connect() {
                break;
            }
        }
        if matches!(sock.read_buf(&mut buf).await, Ok(0) | Err(_)) {
            return;
        }
    }
    let connected = b"CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:bench\n\n\0";
    if sock.write_all(connected).await.is_err() {
        return;
    }
    match mode {
        BrokerMode::Swallow(progress) => swallow(sock, buf, progress).await,
        BrokerMode::Push(asks, chunk) => push(sock, asks, chunk).await,
    }
}

async fn swallow(mut sock: TcpStream, mut buf: BytesMut, progress: Arc<Progress>) {
    progress.add(buf.len() as u64);
    loop {
        buf.clear();
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => progress.add(n as u64),
        }
    }
}

async fn push(
    mut sock: TcpStream,
    asks: Arc<tokio::sync::Mutex<mpsc::Receiver<u64>>>,
    chunk: Bytes,
) {
    let mut asks = asks.lock().await;
    while let Some(times) = asks.recv().await {
        for _ in 0..times {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
        }
    }
}

fn meta() -> ClientMeta {
    ClientMeta {
        peer: "127.0.0.1:1".parse().expect("literal"),
        transport: TransportKind::WebSocket,
        tls: false,
        headers: Default::default(),
        query: None,
        client_cert: None,
    }
}

/// One connected session: the client's sender, and its received-frame counter.
struct Session {
    to_relay: mpsc::Sender<Bytes>,
    received: Arc<Progress>,
    _ctx: CancellationToken,
}

/// Starts a fake broker in `mode` and a session to it, and completes CONNECT/CONNECTED.
async fn session(mode: BrokerMode) -> Session {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(fake_broker(listener, mode));
    let token = CancellationToken::new();
    let config = Config::for_tests(&addr, "bench", "bench");
    let ctx = RelayContext::new(Arc::new(config), token.clone()).expect("relay context");
    let (to_relay, rx) = mpsc::channel(CLIENT_QUEUE);
    let received = Arc::new(Progress::default());
    let tx = BenchTx {
        frames: received.clone(),
        bytes: Arc::new(AtomicU64::new(0)),
    };
    let link = ClientLink {
        rx: BenchRx(rx),
        tx,
        meta: meta(),
    };
    tokio::spawn(run_session(ctx, link));
    let connect = "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0";
    to_relay
        .send(Bytes::from_static(connect.as_bytes()))
        .await
        .expect("relay gone");
    tokio::time::timeout(STEP_TIMEOUT, received.wait_for(1))
        .await
        .expect("no CONNECTED");
    Session {
        to_relay,
        received,
        _ctx: token,
    }
}

fn send_frame(body_len: usize) -> Bytes {
    let body = "x".repeat(body_len);
    Bytes::from(format!(
        "SEND\ndestination:/queue/bench\ncontent-type:text/plain\ncontent-length:{body_len}\n\n{body}\0"
    ))
}

fn message_frame(n: usize, body_len: usize) -> Vec<u8> {
    let body = "x".repeat(body_len);
    format!(
        "MESSAGE\nsubscription:0\nmessage-id:T_0@@session-bench@@{n}\ndestination:/queue/bench\ncontent-type:text/plain\ncontent-length:{body_len}\n\n{body}\0"
    )
    .into_bytes()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Client → broker: `iters` SEND frames, one per `recv`, until the broker has all their bytes.
fn client_to_broker(c: &mut Criterion, body_len: usize) {
    let rt = runtime();
    let swallowed = Arc::new(Progress::default());
    let s = rt.block_on(session(BrokerMode::Swallow(swallowed.clone())));
    let frame = send_frame(body_len);
    let mut group = c.benchmark_group(format!("relay_c2b/{body_len}B"));
    for (name, tp) in [
        ("frames", Throughput::Elements(1)),
        ("bytes", Throughput::Bytes(frame.len() as u64)),
    ] {
        group.throughput(tp);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(timed(async {
                    let done = swallowed.wait_for(iters * frame.len() as u64);
                    let feed = async {
                        for _ in 0..iters {
                            s.to_relay.send(frame.clone()).await.expect("relay gone");
                        }
                    };
                    tokio::join!(done, feed);
                }))
            })
        });
    }
    group.finish();
}

/// Broker → client: the broker writes chunks of MESSAGE frames; done when the relay has sent
/// that many frames to the client.
fn broker_to_client(c: &mut Criterion, body_len: usize) {
    let rt = runtime();
    let per_chunk = (64 * 1024 / (body_len + 120)).max(1);
    let mut chunk = Vec::new();
    for n in 0..per_chunk {
        chunk.extend_from_slice(&message_frame(n, body_len));
    }
    let frame_len = chunk.len() / per_chunk;
    let (ask, asks) = mpsc::channel(4);
    let mode = BrokerMode::Push(Arc::new(tokio::sync::Mutex::new(asks)), Bytes::from(chunk));
    let s = rt.block_on(session(mode));
    let mut group = c.benchmark_group(format!("relay_b2c/{body_len}B"));
    for (name, tp) in [
        ("frames", Throughput::Elements(1)),
        ("bytes", Throughput::Bytes(frame_len as u64)),
    ] {
        group.throughput(tp);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let chunks = iters.div_ceil(per_chunk as u64);
                rt.block_on(timed(async {
                    let done = s.received.wait_for(chunks * per_chunk as u64);
                    ask.send(chunks).await.expect("broker gone");
                    done.await;
                }))
                .mul_f64(iters as f64 / (chunks * per_chunk as u64) as f64)
            })
        });
    }
    group.finish();
}

/// Runs `f` under the step timeout; returns how long it took.
async fn timed(f: impl Future<Output = ()>) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .expect("bench step timed out");
    start.elapsed()
}

/// Prints the per-session state sizes an idle connection keeps.
fn print_sizes() {
    let token = CancellationToken::new();
    let config = Config::for_tests("127.0.0.1:9", "bench", "bench");
    let ctx = RelayContext::new(Arc::new(config), token).expect("relay context");
    let (_to_relay, rx) = mpsc::channel(1);
    let tx = BenchTx {
        frames: Arc::default(),
        bytes: Arc::default(),
    };
    let link = ClientLink {
        rx: BenchRx(rx),
        tx,
        meta: meta(),
    };
    let fut = run_session(ctx, link);
    println!(
        "sizes: run_session future {} B (in-memory link); WsStream {} B; ClientMeta {} B",
        std::mem::size_of_val(&fut),
        std::mem::size_of::<WsStream>(),
        std::mem::size_of::<ClientMeta>(),
    );
}

fn benches(c: &mut Criterion) {
    print_sizes();
    for body in [100, 16 * 1024] {
        client_to_broker(c, body);
        broker_to_client(c, body);
    }
}

criterion_group!(relay, benches);
criterion_main!(relay);
