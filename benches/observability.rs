//! The cost of observability on the relay's hot path: decoding a socket-sized chunk of client
//! frames and appending them to the broker write buffer (what `client_to_broker` does between
//! reads), without and with the metrics hooks the relay calls (per-frame counters, the frame
//! size histogram, per-session atomics, one batch latency sample, queued-bytes updates, the
//! trace switch). Run:
//! `cargo bench --bench observability -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/PERFORMANCE.md, section "Observability cost").
//!
//! On a shared, busy machine criterion's means drift with the neighbours' load; the bench
//! therefore first prints an interleaved A/B figure: the three cases run in turn, round after
//! round, and the fastest round of each is kept (interference only ever adds time).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use stompgate::metrics::{Direction, FrameTally, Metrics, SessionRecorder, TraceRequest};
use stompgate::stomp::{Decoder, Item, Limits};
use stompgate::transport::{ClientMeta, TransportKind};

/// Bytes a socket read typically hands the decoder.
const CHUNK_BYTES: usize = 16 * 1024;

/// Client SEND frames of `body_len` body bytes, as many as fill about one chunk.
fn chunk(body_len: usize) -> (BytesMut, u64) {
    let mut buf = BytesMut::new();
    let mut n = 0;
    while buf.len() < CHUNK_BYTES.max(body_len) {
        let body = "x".repeat(body_len);
        buf.extend_from_slice(
            format!(
                "SEND\ndestination:/queue/bench\ncontent-type:text/plain\nreceipt:r{n}\n\n{body}\0"
            )
            .as_bytes(),
        );
        n += 1;
    }
    (buf, n)
}

/// A session's hooks as the pumps hold them: the recorder and one direction's tally.
type Hooks = (Arc<SessionRecorder>, FrameTally);

fn hooks(rec: &Arc<SessionRecorder>) -> Hooks {
    (rec.clone(), rec.tally(Direction::ClientToBroker))
}

/// The relay's per-batch work; `hooks` adds the metrics calls exactly where `pumps.rs` has them.
fn relay_batch(
    dec: &mut Decoder,
    buf: &mut BytesMut,
    out: &mut BytesMut,
    mut hooks: Option<&mut Hooks>,
) -> usize {
    let mut n = 0;
    while let Ok(Some(item)) = dec.decode(buf) {
        let Item::Frame(frame) = item else { continue };
        let before = out.len();
        if let Some(raw) = frame.raw() {
            out.extend_from_slice(raw);
        }
        if let Some((_, tally)) = hooks.as_deref_mut() {
            tally.frame(&frame, out.len() - before);
        }
        n += 1;
    }
    if let Some((rec, tally)) = hooks {
        let dir = Direction::ClientToBroker;
        rec.set_queued(dir, out.len() + buf.len());
        rec.set_queued(dir, buf.len());
        tally.flush();
    }
    out.clear();
    n
}

fn meta() -> ClientMeta {
    ClientMeta {
        peer: "127.0.0.1:1".parse().unwrap(),
        transport: TransportKind::WebSocket,
        tls: false,
        headers: Default::default(),
        query: None,
        client_cert: None,
    }
}

fn bench(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let rec = metrics.open_session(&meta());
    let traced = Arc::new(Metrics::default());
    traced
        .tracer()
        .start(&TraceRequest {
            connection: Some(u64::MAX),
            ..Default::default()
        })
        .unwrap();
    let rec_other_traced = traced.open_session(&meta());
    for body in [16usize, 100, 4096] {
        let (input, frames) = chunk(body);
        let mut g = c.benchmark_group(format!("relay_batch/{body}B"));
        g.throughput(Throughput::Elements(frames));
        let cases: [(&str, Option<&Arc<SessionRecorder>>); 3] = [
            ("no_hooks", None),
            ("hooks", Some(&rec)),
            ("hooks_trace_on_other_conn", Some(&rec_other_traced)),
        ];
        for (name, r) in cases {
            let mut h = r.map(hooks);
            let mut dec = Decoder::new(Limits::default());
            let mut out = BytesMut::with_capacity(CHUNK_BYTES * 2);
            g.bench_function(name, |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |buf| black_box(relay_batch(&mut dec, buf, &mut out, h.as_mut())),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

/// Rounds of the interleaved A/B measurement, and batches per round.
const AB_ROUNDS: usize = 300;
const AB_BATCHES: usize = 20;

/// Fastest round's time per frame, in ns, for each case, the cases interleaved.
fn ab_min(input: &BytesMut, frames: u64, cases: &[Option<&Arc<SessionRecorder>>]) -> Vec<f64> {
    let mut best = vec![f64::MAX; cases.len()];
    let mut decs: Vec<Decoder> = cases
        .iter()
        .map(|_| Decoder::new(Limits::default()))
        .collect();
    let mut out = BytesMut::with_capacity(CHUNK_BYTES * 2);
    let mut hs: Vec<Option<Hooks>> = cases.iter().map(|r| r.map(hooks)).collect();
    for _ in 0..AB_ROUNDS {
        for i in 0..cases.len() {
            let mut inputs: Vec<BytesMut> = (0..AB_BATCHES).map(|_| input.clone()).collect();
            let t = Instant::now();
            for buf in &mut inputs {
                black_box(relay_batch(&mut decs[i], buf, &mut out, hs[i].as_mut()));
            }
            let ns = t.elapsed().as_nanos() as f64 / (AB_BATCHES as f64 * frames as f64);
            best[i] = best[i].min(ns);
        }
    }
    best
}

fn ab_report(c: &mut Criterion) {
    let _ = c;
    let metrics = Arc::new(Metrics::default());
    let rec = metrics.open_session(&meta());
    let traced = Arc::new(Metrics::default());
    traced
        .tracer()
        .start(&TraceRequest {
            connection: Some(u64::MAX),
            ..Default::default()
        })
        .unwrap();
    let other = traced.open_session(&meta());
    println!("interleaved A/B, fastest of {AB_ROUNDS} rounds, ns per frame:");
    println!("body_bytes  no_hooks  hooks  (+%)  hooks+trace_other  (+%)");
    for body in [16usize, 100, 1024, 4096] {
        let (input, frames) = chunk(body);
        let t = ab_min(&input, frames, &[None, Some(&rec), Some(&other)]);
        let pct = |x: f64| (x / t[0] - 1.0) * 100.0;
        println!(
            "{body:>10}  {:>8.1}  {:>5.1}  ({:+.1}%)  {:>8.1}  ({:+.1}%)",
            t[0],
            t[1],
            pct(t[1]),
            t[2],
            pct(t[2])
        );
    }
}

criterion_group!(benches, ab_report, bench);
criterion_main!(benches);
