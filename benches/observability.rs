//! The cost of observability on the relay's hot path: decoding a socket-sized chunk of client
//! frames and appending them to the broker write buffer (what `client_to_broker` does between
//! reads), without and with the metrics hooks the relay calls (per-frame counters, the frame
//! size histogram, per-session atomics, one batch latency sample, queued-bytes updates, the
//! trace switch). Run:
//! `cargo bench --bench observability -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/PERFORMANCE.md, section "Observability cost").

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use stompgate::metrics::{Direction, Metrics, SessionRecorder, TraceRequest};
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

/// The relay's per-batch work; `rec` adds the hooks exactly where `pumps.rs` calls them.
fn relay_batch(
    dec: &mut Decoder,
    buf: &mut BytesMut,
    out: &mut BytesMut,
    rec: Option<&SessionRecorder>,
) -> usize {
    let dir = Direction::ClientToBroker;
    let mut first = None;
    let mut n = 0;
    while let Ok(Some(item)) = dec.decode(buf) {
        let Item::Frame(frame) = item else { continue };
        if rec.is_some() {
            first.get_or_insert_with(Instant::now);
        }
        let before = out.len();
        if let Some(raw) = frame.raw() {
            out.extend_from_slice(raw);
        }
        if let Some(r) = rec {
            r.frame(dir, &frame, out.len() - before);
        }
        n += 1;
    }
    if let Some(r) = rec {
        r.set_queued(dir, out.len() + buf.len());
        r.set_queued(dir, buf.len());
        if let Some(t) = first {
            r.batch_forwarded(dir, t);
        }
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
        let cases: [(&str, Option<&SessionRecorder>); 3] = [
            ("no_hooks", None),
            ("hooks", Some(&rec)),
            ("hooks_trace_on_other_conn", Some(&rec_other_traced)),
        ];
        for (name, r) in cases {
            let mut dec = Decoder::new(Limits::default());
            let mut out = BytesMut::with_capacity(CHUNK_BYTES * 2);
            g.bench_function(name, |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |buf| black_box(relay_batch(&mut dec, buf, &mut out, r)),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
