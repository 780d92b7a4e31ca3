//! STOMP codec throughput: decode (whole buffer and 4 KiB chunks, as a socket delivers them)
//! and encode, for 100 B and 16 KiB bodies. Run:
//! `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/PERFORMANCE.md, section "Codec").

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use stompgate::stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};

/// Socket-sized read, as a transport would append to the decoder's buffer.
const CHUNK_BYTES: usize = 4096;

/// A broker-style MESSAGE with `body_len` body bytes (no raw bytes: the encoder does work).
fn message(body_len: usize, seq: usize) -> Frame {
    Frame::new(Command::Message)
        .with_header("subscription", "sub-0")
        .with_header("message-id", format!("T_sub-0@@session-Hk2pZ@@{seq}"))
        .with_header("destination", "/queue/bench")
        .with_header("content-type", "text/plain")
        .with_body(Bytes::from(vec![b'x'; body_len]))
}

fn frames(body_len: usize, count: usize) -> Vec<Frame> {
    (0..count).map(|i| message(body_len, i)).collect()
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut dst = BytesMut::new();
    for f in frames {
        encode(f, Version::V1_2, &mut dst);
    }
    dst
}

/// Decodes every frame of `buf`; returns how many (so nothing is optimised away).
fn decode_all(dec: &mut Decoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(item)) = dec.decode(buf) {
        n += usize::from(matches!(item, Item::Frame(_)));
        black_box(item);
    }
    n
}

fn decode_chunked(input: &[u8]) -> usize {
    let mut dec = Decoder::new(Limits::default());
    dec.set_version(Version::V1_2);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut n = 0;
    for chunk in input.chunks(CHUNK_BYTES) {
        buf.extend_from_slice(chunk);
        n += decode_all(&mut dec, &mut buf);
    }
    n
}

/// The same stream with every `content-length` header line removed.
fn strip_content_length(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = find(rest, b"\ncontent-length:") {
        out.extend_from_slice(&rest[..=at]);
        let line = &rest[at + 1..];
        let eol = line
            .iter()
            .position(|&b| b == b'\n')
            .map_or(line.len(), |i| i + 1);
        rest = &line[eol..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bench_body(c: &mut Criterion, name: &str, body_len: usize, count: usize, per_frame: bool) {
    let frames = frames(body_len, count);
    let input = encode_all(&frames).freeze();
    let mut group = c.benchmark_group(name);
    group.throughput(if per_frame {
        Throughput::Elements(count as u64)
    } else {
        Throughput::Bytes(input.len() as u64)
    });
    group.bench_function("decode_whole", |b| {
        b.iter_batched(
            || BytesMut::from(&input[..]),
            |mut buf| {
                let mut dec = Decoder::new(Limits::default());
                dec.set_version(Version::V1_2);
                assert_eq!(decode_all(&mut dec, &mut buf), count);
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_4k_chunks", |b| {
        b.iter(|| assert_eq!(decode_chunked(&input), count))
    });
    // Bodies without content-length end at the first NUL, so the decoder must scan them.
    let nul_terminated = strip_content_length(&input);
    group.bench_function("decode_4k_chunks_no_content_length", |b| {
        b.iter(|| assert_eq!(decode_chunked(&nul_terminated), count))
    });
    group.bench_function("encode", |b| {
        let mut dst = BytesMut::with_capacity(input.len());
        b.iter(|| {
            dst.clear();
            for f in &frames {
                encode(f, Version::V1_2, &mut dst);
            }
            black_box(dst.len())
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    // Criterion reports one throughput per group, so each size runs twice: frames/s and MB/s.
    bench_body(c, "codec_100B_frames", 100, 1000, true);
    bench_body(c, "codec_100B_bytes", 100, 1000, false);
    bench_body(c, "codec_16KiB_bytes", 16 * 1024, 100, false);
    bench_body(c, "codec_16KiB_frames", 16 * 1024, 100, true);
}

criterion_group!(benches, codec);
criterion_main!(benches);
