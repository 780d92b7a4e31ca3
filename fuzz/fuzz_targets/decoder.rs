//! Feeds arbitrary bytes to the STOMP decoder, split at arbitrary points, and checks that it
//! never panics and that the split does not change what it decodes (items and error).
//!
//! Input layout: byte 0 picks the version and limits, byte 1 seeds the chunk sizes (its top
//! bit picks the client decoder, [`Decoder::for_client`], over the broker one), the rest is
//! the stream. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run decoder -- -max_total_time=60`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stompgate::stomp::{DecodeError, Decoder, Item, Limits, Version};

/// Decodes `stream` delivered in chunks of the given sizes (cycled).
fn decode(
    stream: &[u8],
    chunk_sizes: &[usize],
    version: Version,
    limits: Limits,
    client: bool,
) -> (Vec<Item>, Option<DecodeError>) {
    let mut dec = if client {
        Decoder::for_client(limits)
    } else {
        Decoder::new(limits)
    };
    dec.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    for size in chunk_sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().contains('\n'));
                    return (items, Some(e));
                }
            }
        }
    }
    (items, None)
}

fuzz_target!(|data: &[u8]| {
    let [config, seed, stream @ ..] = data else {
        return;
    };
    let version = [Version::V1_0, Version::V1_1, Version::V1_2][usize::from(config % 3)];
    let limits = if config & 0x80 != 0 {
        Limits::default()
    } else {
        let small = usize::from(config >> 2);
        Limits {
            max_header_bytes: small * 4,
            max_headers: small % 8,
            max_body_bytes: small,
        }
    };
    // A tiny LCG turns the seed into chunk sizes between 1 and 64.
    let mut state = u32::from(*seed) | 1;
    let sizes: Vec<usize> = (0..16)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as usize % 64 + 1
        })
        .collect();
    let client = seed & 0x80 != 0;
    let whole = decode(stream, &[stream.len()], version, limits, client);
    let split = decode(stream, &sizes, version, limits, client);
    assert_eq!(whole, split);
});
