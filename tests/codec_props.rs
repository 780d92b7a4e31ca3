//! Property tests for the STOMP codec: encode→decode round trips in every version, decoding
//! does not depend on how the bytes are split, a decoded frame's header lookups (which scan its
//! raw bytes) agree with its header list, and arbitrary bytes never panic the decoder.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use stompgate::stomp::{
    encode, encode_heartbeat, Command, DecodeError, Decoder, Frame, Header, Item, Limits, Version,
};

/// Items decoded, the error that stopped decoding (if any) and the bytes left over.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<DecodeError>,
    leftover: usize,
}

fn feed(chunks: &[&[u8]], version: Version, limits: Limits) -> Outcome {
    let mut dec = Decoder::new(limits);
    dec.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    let leftover = buf.len();
                    return Outcome {
                        items,
                        error: Some(error),
                        leftover,
                    };
                }
            }
        }
    }
    Outcome {
        items,
        error: None,
        leftover: buf.len(),
    }
}

/// Splits `bytes` at the given offsets (taken modulo its length, in any order).
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[from..c]);
        from = c;
    }
    chunks
}

/// Whole, byte by byte and split at `cuts` must agree (leftover only matters without error:
/// an error may be found before all bytes arrived).
fn assert_split_independent(bytes: &[u8], cuts: &[usize], version: Version, limits: Limits) {
    let whole = feed(&[bytes], version, limits);
    let by_byte: Vec<&[u8]> = bytes.chunks(1).collect();
    for (how, other) in [
        ("byte by byte", feed(&by_byte, version, limits)),
        ("split", feed(&split_at(bytes, cuts), version, limits)),
    ] {
        assert_eq!(whole.items, other.items, "{how}");
        assert_eq!(whole.error, other.error, "{how}");
        if whole.error.is_none() {
            assert_eq!(whole.leftover, other.leftover, "{how}");
        }
    }
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::V1_0),
        Just(Version::V1_1),
        Just(Version::V1_2)
    ]
}

fn command() -> impl Strategy<Value = Command> {
    proptest::sample::select(Command::ALL.to_vec())
}

/// Header bytes the encoder can write faithfully for this version and command.
fn header_bytes(escaped: bool, version: Version, is_name: bool) -> BoxedStrategy<Vec<u8>> {
    let special = prop_oneof![
        Just(b'\n'),
        Just(b'\r'),
        Just(b':'),
        Just(b'\\'),
        Just(0u8),
        any::<u8>()
    ];
    let byte = prop_oneof![3 => b'a'..=b'z', 1 => special];
    proptest::collection::vec(byte, 0..12)
        .prop_filter("unrepresentable byte", move |v| {
            v.iter().all(|&b| match b {
                b'\r' => escaped && version == Version::V1_2,
                b'\n' => escaped,
                b':' => escaped || !is_name,
                _ => true,
            })
        })
        .prop_filter("the encoder owns content-length", |v| {
            v != b"content-length"
        })
        .boxed()
}

fn frame(version: Version) -> impl Strategy<Value = Frame> {
    command().prop_flat_map(move |command| {
        let escaped = version != Version::V1_0 && command.escapes_headers();
        let header = (
            header_bytes(escaped, version, true),
            header_bytes(escaped, version, false),
        );
        let headers = proptest::collection::vec(header, 0..6);
        let body = proptest::collection::vec(any::<u8>(), 0..64);
        (headers, body).prop_map(move |(headers, body)| {
            let headers = headers
                .into_iter()
                .map(|(n, v)| Header::new(n, v))
                .collect();
            Frame::from_parts(command, headers, Bytes::from(body), None)
        })
    })
}

/// `None` is a heart-beat.
fn sequence(version: Version) -> impl Strategy<Value = Vec<Option<Frame>>> {
    proptest::collection::vec(proptest::option::weighted(0.8, frame(version)), 0..6)
}

fn versioned_sequence() -> impl Strategy<Value = (Version, Vec<Option<Frame>>)> {
    version().prop_flat_map(|v| (Just(v), sequence(v)))
}

fn encode_all(seq: &[Option<Frame>], version: Version) -> Vec<u8> {
    let mut dst = BytesMut::new();
    for item in seq {
        match item {
            Some(f) => encode(f, version, &mut dst),
            None => encode_heartbeat(&mut dst),
        }
    }
    dst.to_vec()
}

/// Limits that every generated sequence fits in.
fn roomy() -> Limits {
    Limits {
        max_header_bytes: 4096,
        max_headers: 16,
        max_body_bytes: 4096,
    }
}

/// Bytes that look like STOMP often enough to reach deep decoder states.
fn stompish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tokens: Vec<&'static [u8]> = vec![
        b"SEND",
        b"MESSAGE",
        b"CONNECT",
        b"\n",
        b"\r\n",
        b"\r",
        b":",
        b"content-length:",
        b"content-length:3",
        b"3",
        b"0",
        b"\\n",
        b"\\c",
        b"\\r",
        b"\\t",
        b"\\",
        b"\0",
        b"abc",
        b"destination:/q",
    ];
    proptest::collection::vec(proptest::sample::select(tokens), 0..40).prop_map(|ts| ts.concat())
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..64, 0usize..6, 0usize..16).prop_map(|(h, n, b)| Limits {
        max_header_bytes: h,
        max_headers: n,
        max_body_bytes: b,
    })
}

/// A SEND frame written by hand: header lines from a small set of names (repeats, prefixes of
/// each other, a colon in the value), values with valid escapes, each line ending in LF or CRLF.
fn hand_written_frame() -> impl Strategy<Value = Vec<u8>> {
    let line = (
        proptest::sample::select(vec![
            "destination",
            "destination-x",
            "dest",
            "receipt",
            "x",
            "",
        ]),
        proptest::collection::vec(
            proptest::sample::select(vec!["a", "/", ":", "\\c", "\\n", "\\\\", " "]),
            0..5,
        ),
        proptest::sample::select(vec!["\n", "\r\n"]),
    );
    (
        proptest::collection::vec(line, 0..8),
        proptest::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(lines, blank)| {
            let mut frame = b"SEND\n".to_vec();
            for (name, value, eol) in lines {
                frame.extend_from_slice(name.as_bytes());
                frame.push(b':');
                frame.extend_from_slice(value.concat().as_bytes());
                frame.extend_from_slice(eol.as_bytes());
            }
            frame.extend_from_slice(blank.as_bytes());
            frame.extend_from_slice(b"body\0");
            frame
        })
}

/// Decodes `bytes` twice; in the first copy of each frame looks every header name up through
/// the frame's lazy lookups (before any list exists), in the second builds the list; the two
/// must agree: first value wins, counts match, `header_value` equals `header_bytes`.
fn assert_lookups_match_list(
    bytes: &[u8],
    version: Version,
    limits: Limits,
) -> Result<(), TestCaseError> {
    let lazy = feed(&[bytes], version, limits);
    let listed = feed(&[bytes], version, limits);
    for (a, b) in lazy.items.iter().zip(&listed.items) {
        let (Item::Frame(a), Item::Frame(b)) = (a, b) else {
            continue;
        };
        let list = b.headers();
        for h in list {
            let Ok(name) = std::str::from_utf8(&h.name) else {
                continue;
            };
            let first = list.iter().find(|x| x.name == h.name).map(|x| &x.value[..]);
            let count = list.iter().filter(|x| x.name == h.name).count();
            prop_assert_eq!(a.header_bytes(name), first, "{:?} in {:?}", name, b);
            prop_assert_eq!(a.header_count(name), count, "{:?} in {:?}", name, b);
            prop_assert_eq!(
                a.first_header(name),
                (first, count > 1),
                "{:?} in {:?}",
                name,
                b
            );
            prop_assert_eq!(
                b.first_header(name),
                (first, count > 1),
                "{:?} (listed)",
                name
            );
            let value = a.header_value(name);
            prop_assert_eq!(value.as_deref(), first);
        }
        prop_assert_eq!(a.header_bytes("no-such-header"), None);
        prop_assert_eq!(a.first_header("no-such-header"), (None, false));
        prop_assert_eq!(a.headers(), list);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_gives_the_same_frames((v, seq) in versioned_sequence()) {
        let bytes = encode_all(&seq, v);
        let out = feed(&[&bytes], v, roomy());
        prop_assert_eq!(&out.error, &None);
        prop_assert_eq!(out.leftover, 0);
        prop_assert_eq!(out.items.len(), seq.len());
        for (got, want) in out.items.iter().zip(&seq) {
            match (got, want) {
                (Item::Heartbeat, None) => {}
                (Item::Frame(got), Some(want)) => {
                    prop_assert_eq!(got.command, want.command);
                    prop_assert_eq!(got.body(), want.body());
                    let n = want.headers().len();
                    prop_assert_eq!(&got.headers()[..n], want.headers());
                    let extra = &got.headers()[n..];
                    if want.body().is_empty() {
                        prop_assert!(extra.is_empty());
                    } else {
                        prop_assert_eq!(extra.len(), 1);
                        prop_assert_eq!(&extra[0].name[..], b"content-length");
                        let len = want.body().len().to_string();
                        prop_assert_eq!(&extra[0].value[..], len.as_bytes());
                    }
                }
                _ => prop_assert!(false, "got {:?}, want {:?}", got, want),
            }
        }
    }

    #[test]
    fn decoded_frames_re_encode_to_their_raw_bytes((v, seq) in versioned_sequence()) {
        let bytes = encode_all(&seq, v);
        let out = feed(&[&bytes], v, roomy());
        let mut again = BytesMut::new();
        for item in &out.items {
            match item {
                Item::Frame(f) => {
                    encode(f, v, &mut again);
                    // Without raw, re-encoding still reproduces the same bytes.
                    let mut fresh = f.clone();
                    fresh.clear_raw();
                    let mut dst = BytesMut::new();
                    encode(&fresh, v, &mut dst);
                    prop_assert_eq!(&dst[..], &f.raw().unwrap()[..]);
                }
                Item::Heartbeat => encode_heartbeat(&mut again),
            }
        }
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn valid_streams_decode_the_same_however_split(
        (v, seq) in versioned_sequence(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        assert_split_independent(&encode_all(&seq, v), &cuts, v, roomy());
    }

    #[test]
    fn stompish_bytes_decode_the_same_however_split(
        bytes in stompish_bytes(),
        v in version(),
        limits in small_limits(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        assert_split_independent(&bytes, &cuts, v, limits);
    }

    #[test]
    fn header_lookups_agree_with_the_header_list((v, seq) in versioned_sequence()) {
        assert_lookups_match_list(&encode_all(&seq, v), v, roomy())?;
    }

    #[test]
    fn header_lookups_agree_with_the_header_list_on_stompish_bytes(
        bytes in stompish_bytes(),
        v in version(),
    ) {
        assert_lookups_match_list(&bytes, v, roomy())?;
    }

    #[test]
    fn header_lookups_agree_with_the_header_list_on_hand_written_frames(
        bytes in hand_written_frame(),
        v in version(),
    ) {
        let decoded = feed(&[&bytes], v, roomy());
        prop_assert_eq!(decoded.items.len(), 1, "{:?}", decoded);
        assert_lookups_match_list(&bytes, v, roomy())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        v in version(),
        limits in small_limits(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let out = feed(&split_at(&bytes, &cuts), v, limits);
        if let Some(e) = out.error {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n') && !msg.contains('\r'));
        }
    }
}
