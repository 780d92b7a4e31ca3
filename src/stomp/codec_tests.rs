//! Fixture tests for the decoder and encoder. Every fixture is fed whole, byte by byte, and
//! split at every offset (linkerd's `many_reads`), and all must agree.

use bytes::BytesMut;

use super::*;
use crate::stomp::{encode, encode_heartbeat};

/// What decoding a stream produced: the items, then the error if one stopped it, and the
/// bytes left over.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<DecodeError>,
    leftover: usize,
}

impl Outcome {
    fn frames(&self) -> Vec<&Frame> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Frame(f) => Some(f),
                Item::Heartbeat => None,
            })
            .collect()
    }

    fn frame(&self) -> &Frame {
        let frames = self.frames();
        assert_eq!(frames.len(), 1, "{self:?}");
        frames[0]
    }
}

fn feed<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    version: Version,
    limits: Limits,
) -> Outcome {
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
                Err(e) => {
                    return Outcome {
                        items,
                        error: Some(e),
                        leftover: buf.len(),
                    }
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

/// Decodes `input` whole, byte by byte and split at every offset; asserts all agree (the
/// leftover may differ only after an error, which can be detected before all bytes arrived).
fn decode_with(input: &[u8], version: Version, limits: Limits) -> Outcome {
    let whole = feed([input], version, limits);
    let by_byte = feed(input.chunks(1), version, limits);
    assert_same(&whole, &by_byte, "byte by byte");
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_same(
            &whole,
            &feed([a, b], version, limits),
            &format!("split at {at}"),
        );
    }
    whole
}

fn assert_same(whole: &Outcome, other: &Outcome, how: &str) {
    assert_eq!(whole.items, other.items, "{how}");
    assert_eq!(whole.error, other.error, "{how}");
    if whole.error.is_none() {
        assert_eq!(whole.leftover, other.leftover, "{how}");
    }
}

fn decode(input: &[u8], version: Version) -> Outcome {
    decode_with(input, version, Limits::default())
}

fn error(input: &[u8], version: Version) -> DecodeError {
    let out = decode(input, version);
    out.error
        .clone()
        .unwrap_or_else(|| panic!("no error: {out:?}"))
}

fn limits(header: usize, headers: usize, body: usize) -> Limits {
    Limits {
        max_header_bytes: header,
        max_headers: headers,
        max_body_bytes: body,
    }
}

const ALL_VERSIONS: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

#[test]
fn every_command_decodes_with_raw_bytes() {
    for c in Command::ALL {
        let input = format!("{c}\nk:v\n\nbody\0");
        let out = decode(input.as_bytes(), Version::V1_2);
        let f = out.frame();
        assert_eq!(f.command, c);
        assert_eq!(f.header("k"), Some("v"));
        assert_eq!(f.body(), b"body");
        assert_eq!(f.raw().map(|r| &r[..]), Some(input.as_bytes()));
        assert_eq!(out.leftover, 0);
    }
}

#[test]
fn crlf_lines_are_accepted() {
    let out = decode(b"SEND\r\ndestination:/q\r\nx:\r\n\r\nhi\0", Version::V1_2);
    let f = out.frame();
    assert_eq!(f.header("destination"), Some("/q"));
    assert_eq!(f.header("x"), Some(""));
    assert_eq!(f.body(), b"hi");
}

#[test]
fn heartbeats_between_frames_each_yield_an_item() {
    let out = decode(b"\n\r\nSEND\n\n\0\n\nMESSAGE\n\n\0\r\n", Version::V1_1);
    let hb = Item::Heartbeat;
    assert_eq!(out.items.len(), 7);
    assert_eq!(out.items[..2], [hb.clone(), hb.clone()]);
    assert_eq!(out.items[3..5], [hb.clone(), hb.clone()]);
    assert_eq!(out.items[6], hb);
    let frames = out.frames();
    assert_eq!(frames[0].raw().unwrap(), &b"SEND\n\n\0"[..]);
    assert_eq!(frames[1].command, Command::Message);
    assert_eq!(out.leftover, 0);
}

#[test]
fn partial_input_waits_and_keeps_bytes() {
    let out = decode(b"SEND\ndestination:/q\n\nhal", Version::V1_2);
    assert!(out.items.is_empty() && out.error.is_none());
    assert_eq!(out.leftover, 24);
    assert_eq!(decode(b"\r", Version::V1_2).leftover, 1);
}

#[test]
fn content_length_body_may_hold_nuls() {
    let out = decode(b"SEND\ncontent-length:5\n\na\0b\0c\0\n", Version::V1_2);
    assert_eq!(out.frame().body(), &b"a\0b\0c"[..]);
    assert_eq!(out.items.last(), Some(&Item::Heartbeat));
    let out = decode(b"SEND\ncontent-length:0\n\n\0", Version::V1_2);
    assert!(out.frame().body().is_empty());
}

#[test]
fn content_length_body_must_end_in_nul() {
    let err = error(b"SEND\ncontent-length:2\n\nabc\0", Version::V1_2);
    assert_eq!(err, DecodeError::MissingNul);
}

#[test]
fn bad_content_length_values_are_refused() {
    for v in [
        "abc",
        "-1",
        "+1",
        " 5",
        "5 ",
        "",
        "1.0",
        "99999999999999999999999",
    ] {
        let input = format!("SEND\ncontent-length:{v}\n\n\0");
        assert_eq!(
            error(input.as_bytes(), Version::V1_2),
            DecodeError::BadContentLength,
            "{v:?}"
        );
    }
}

#[test]
fn repeated_content_length_is_refused_even_when_equal() {
    let err = error(
        b"SEND\ncontent-length:1\ncontent-length:1\n\na\0",
        Version::V1_2,
    );
    assert_eq!(err, DecodeError::RepeatedContentLength);
}

#[test]
fn repeated_headers_are_kept_in_order() {
    let out = decode(b"MESSAGE\nfoo:1\nbar:x\nfoo:2\n\n\0", Version::V1_2);
    let names: Vec<_> = out
        .frame()
        .headers()
        .iter()
        .map(|h| h.name.clone())
        .collect();
    assert_eq!(names, ["foo", "bar", "foo"]);
    assert_eq!(out.frame().header("foo"), Some("1"));
    assert_eq!(out.frame().headers()[2].value, "2");
}

#[test]
fn value_splits_at_first_colon() {
    let out = decode(b"SEND\nurl:http://x:1\n\n\0", Version::V1_0);
    assert_eq!(out.frame().header("url"), Some("http://x:1"));
}

#[test]
fn escapes_per_version() {
    let input = b"SEND\nk\\c1:a\\nb\\cc\\\\d\n\n\0";
    let v10 = decode(input, Version::V1_0);
    assert_eq!(v10.frame().header("k\\c1"), Some("a\\nb\\cc\\\\d"));
    for v in [Version::V1_1, Version::V1_2] {
        assert_eq!(
            decode(input, v).frame().header("k:1"),
            Some("a\nb:c\\d"),
            "{v:?}"
        );
    }
    let cr = b"SEND\nk:a\\rb\n\n\0";
    assert_eq!(decode(cr, Version::V1_2).frame().header("k"), Some("a\rb"));
    assert!(matches!(
        error(cr, Version::V1_1),
        DecodeError::BadEscape { .. }
    ));
    assert_eq!(decode(cr, Version::V1_0).frame().header("k"), Some("a\\rb"));
}

#[test]
fn connect_family_is_never_unescaped() {
    for c in ["CONNECT", "STOMP", "CONNECTED"] {
        let input = format!("{c}\npasscode:a\\tb\\\n\n\0");
        let out = decode(input.as_bytes(), Version::V1_2);
        assert_eq!(out.frame().header("passcode"), Some("a\\tb\\"), "{c}");
    }
}

#[test]
fn undefined_escapes_are_errors() {
    for v in [Version::V1_1, Version::V1_2] {
        for input in [
            &b"SEND\nk:a\\tb\n\n\0"[..],
            b"SEND\nk:ab\\\n\n\0",
            b"SEND\nk\\x:v\n\n\0",
        ] {
            let err = error(input, v);
            assert_eq!(
                err,
                DecodeError::BadEscape {
                    version: v.as_str()
                }
            );
            assert!(!err.is_too_large());
        }
    }
}

#[test]
fn header_line_without_colon_is_an_error() {
    assert_eq!(
        error(b"SEND\nnocolon\n\n\0", Version::V1_2),
        DecodeError::HeaderWithoutColon
    );
}

#[test]
fn unknown_commands_are_errors() {
    for input in [
        &b"send\n\n\0"[..],
        b"FOO\n\n\0",
        b"SENDX\n\n\0",
        b"\rSEND\n\n\0",
    ] {
        assert!(matches!(
            error(input, Version::V1_2),
            DecodeError::UnknownCommand(_)
        ));
    }
    // Refused before the line ends once it is longer than any command.
    let out = feed([&b"GET / HTTP/1.1"[..]], Version::V1_2, Limits::default());
    assert_eq!(
        out.error,
        Some(DecodeError::UnknownCommand("GET / HTTP/1".into()))
    );
}

#[test]
fn header_block_limit_is_exact() {
    let input = b"SEND\na:b\r\n\n\0"; // header block = 11 bytes
    assert_eq!(
        decode_with(input, Version::V1_2, limits(11, 8, 8))
            .frames()
            .len(),
        1
    );
    let out = decode_with(input, Version::V1_2, limits(10, 8, 8));
    assert_eq!(out.error, Some(DecodeError::HeaderTooLarge { limit: 10 }));
    assert!(out.error.unwrap().is_too_large());
}

#[test]
fn header_block_limit_hits_while_streaming() {
    // No blank line ever comes: refused as soon as limit + 1 bytes are buffered.
    let lim = limits(64, 100, 8);
    let stream = b"SEND\nk:vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv";
    let out = feed([&stream[..64]], Version::V1_2, lim);
    assert_eq!(out.error, None);
    let out = feed([&stream[..65]], Version::V1_2, lim);
    assert_eq!(out.error, Some(DecodeError::HeaderTooLarge { limit: 64 }));
}

#[test]
fn header_count_limit_is_exact() {
    let input = b"SEND\na:1\nb:2\n\n\0";
    assert_eq!(
        decode_with(input, Version::V1_2, limits(100, 2, 8))
            .frames()
            .len(),
        1
    );
    let out = decode_with(input, Version::V1_2, limits(100, 1, 8));
    assert_eq!(out.error, Some(DecodeError::TooManyHeaders { limit: 1 }));
}

#[test]
fn content_length_limit_is_exact_and_checked_before_the_body() {
    let input = b"SEND\ncontent-length:3\n\nabc\0";
    assert_eq!(
        decode_with(input, Version::V1_2, limits(100, 8, 3))
            .frame()
            .body(),
        b"abc"
    );
    let out = decode_with(input, Version::V1_2, limits(100, 8, 2));
    assert_eq!(out.error, Some(DecodeError::BodyTooLarge { limit: 2 }));
    // Known as soon as the header line is in, with no body byte yet.
    let out = feed(
        [&b"SEND\ncontent-length:3\n"[..]],
        Version::V1_2,
        limits(100, 8, 2),
    );
    assert_eq!(out.error, Some(DecodeError::BodyTooLarge { limit: 2 }));
}

#[test]
fn nul_terminated_body_limit_is_exact_and_streams() {
    let input = b"SEND\n\nabc\0";
    assert_eq!(
        decode_with(input, Version::V1_2, limits(100, 8, 3))
            .frame()
            .body(),
        b"abc"
    );
    let out = decode_with(input, Version::V1_2, limits(100, 8, 2));
    assert_eq!(out.error, Some(DecodeError::BodyTooLarge { limit: 2 }));
    let out = feed([&b"SEND\n\nab"[..]], Version::V1_2, limits(100, 8, 2));
    assert_eq!(out.error, None);
    let out = feed([&b"SEND\n\nabc"[..]], Version::V1_2, limits(100, 8, 2));
    assert_eq!(out.error, Some(DecodeError::BodyTooLarge { limit: 2 }));
}

#[test]
fn partial_frames_are_not_rescanned() {
    let mut dec = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\nx:"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    let partial_line = Stage::Headers {
        line_start: 20,
        scanned: 22,
    };
    assert_eq!(dec.stage, partial_line);
    assert_eq!(dec.header_count, 1);
    buf.extend_from_slice(b"1\n\nbody");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(
        dec.stage,
        Stage::Body {
            start: 25,
            scanned: 29
        }
    );
    buf.extend_from_slice(b"\0");
    assert!(matches!(dec.decode(&mut buf), Ok(Some(Item::Frame(_)))));
    assert_eq!(dec.stage, Stage::Idle);
}

#[test]
fn a_swapped_buffer_restarts_instead_of_panicking() {
    let mut dec = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\n\nbody"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(dec.in_frame());
    let mut other = BytesMut::from(&b"ACK\n\n\0"[..]);
    let item = dec.decode(&mut other).unwrap();
    assert!(matches!(item, Some(Item::Frame(f)) if f.command == Command::Ack));
    assert!(!dec.in_frame());
}

#[test]
fn decoded_parts_are_slices_of_raw_unless_unescaped() {
    let out = decode(b"SEND\nplain:value\nesc:a\\cb\n\nbody\0", Version::V1_2);
    let f = out.frame();
    let raw = f.raw().unwrap().as_ptr_range();
    let inside = |b: &[u8]| raw.contains(&b.as_ptr());
    assert!(inside(&f.headers()[0].name) && inside(&f.headers()[0].value));
    assert!(inside(f.body()) && inside(&f.body_bytes()));
    assert!(!inside(&f.headers()[1].value));
    assert_eq!(f.headers()[1].value, "a:b");
}

#[test]
fn error_messages_are_single_lines() {
    let errs = [
        error(b"B\nAD\n\n\0", Version::V1_2),
        DecodeError::BodyTooLarge { limit: 4194304 },
        error(b"SEND\nk:\\t\n\n\0", Version::V1_2),
    ];
    for e in errs {
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
    }
    assert_eq!(
        DecodeError::BodyTooLarge { limit: 4194304 }.to_string(),
        "frame body exceeds the 4194304-byte limit"
    );
}

// ---- encoder ----

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut dst = BytesMut::new();
    encode(frame, version, &mut dst);
    dst.to_vec()
}

#[test]
fn raw_frames_are_forwarded_unchanged() {
    let input = b"SEND\r\ncontent-length:1\r\nk:a\\cb\r\n\r\nx\0";
    let out = decode(input, Version::V1_2);
    assert_eq!(encoded(out.frame(), Version::V1_0), input);
}

#[test]
fn encoder_writes_fresh_content_length_and_escapes() {
    let f = Frame::new(Command::Send)
        .with_header("content-length", "999")
        .with_header("k:1", "a\nb\\c\rd")
        .with_body(&b"a\0b"[..]);
    assert_eq!(
        encoded(&f, Version::V1_2),
        b"SEND\nk\\c1:a\\nb\\\\c\\rd\ncontent-length:3\n\na\0b\0"
    );
    assert_eq!(
        encoded(&f, Version::V1_1),
        b"SEND\nk\\c1:a\\nb\\\\cd\ncontent-length:3\n\na\0b\0"
    );
    // 1.0 cannot escape: CR/LF dropped everywhere, ':' dropped from names.
    assert_eq!(
        encoded(&f, Version::V1_0),
        b"SEND\nk1:ab\\cd\ncontent-length:3\n\na\0b\0"
    );
    let empty = Frame::new(Command::Disconnect).with_header("content-length", "5");
    assert_eq!(encoded(&empty, Version::V1_2), b"DISCONNECT\n\n\0");
}

#[test]
fn connect_family_is_written_verbatim() {
    let f = Frame::new(Command::Connect).with_header("passcode", "a:b\\c\nd");
    assert_eq!(
        encoded(&f, Version::V1_2),
        b"CONNECT\npasscode:a:b\\cd\n\n\0"
    );
}

#[test]
fn encode_then_decode_round_trips_in_every_version() {
    for v in ALL_VERSIONS {
        let f = Frame::new(Command::Message)
            .with_header("destination", "/queue/a")
            .with_header("x", "1")
            .with_header("x", "2")
            .with_body(&b"hello\0world"[..]);
        let mut bytes = encoded(&f, v);
        encode_heartbeat(&mut BytesMut::new());
        bytes.push(b'\n');
        let out = decode(&bytes, v);
        let got = out.frame();
        assert_eq!(got.command, f.command);
        assert_eq!(got.body(), f.body());
        assert_eq!(&got.headers()[..3], f.headers());
        assert_eq!(got.header("content-length"), Some("11"));
        assert_eq!(out.items.last(), Some(&Item::Heartbeat));
    }
}

#[test]
fn large_frames_arrive_one_byte_at_a_time() {
    // With and without content-length: each byte is one decode call, and each call resumes
    // where the previous one stopped (a rescan would make this quadratic).
    let body = vec![b'x'; 256 * 1024];
    let with_len = Frame::new(Command::Send).with_body(body.clone());
    let mut bytes = BytesMut::new();
    encode(&with_len, Version::V1_2, &mut bytes);
    bytes.extend_from_slice(b"SEND\n\n");
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(b"\0");
    let out = feed(bytes.chunks(1), Version::V1_2, Limits::default());
    assert_eq!(out.error, None);
    let frames = out.frames();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.body() == body));
}

#[test]
fn decoded_headers_stay_in_the_raw_bytes_and_read_the_same_as_a_list() {
    let wire = b"MESSAGE\r\nsubscription:0\r\nmessage-id:m\\c1\ndestination:/queue/a\ndestination:/queue/b\n\
content-length:3\n\nb\0c\0";
    let out = decode(wire, Version::V1_2);
    let f = out.frame();
    assert_eq!(f.raw().map(|r| &r[..]), Some(&wire[..]));
    assert_eq!(f.body(), b"b\0c");
    // Lookups before any list exists: first copy wins, CR is not part of a value, and a line
    // with an escape reads unescaped.
    assert_eq!(f.header("destination"), Some("/queue/a"));
    assert_eq!(f.header_count("destination"), 2);
    assert_eq!(f.header("subscription"), Some("0"));
    assert_eq!(f.header("message-id"), Some("m:1"));
    assert_eq!(f.header_value("content-length").unwrap(), "3");
    let listed: Vec<(&[u8], &[u8])> = f
        .headers()
        .iter()
        .map(|h| (&h.name[..], &h.value[..]))
        .collect();
    assert_eq!(
        listed,
        [
            (&b"subscription"[..], &b"0"[..]),
            (b"message-id", b"m:1"),
            (b"destination", b"/queue/a"),
            (b"destination", b"/queue/b"),
            (b"content-length", b"3"),
        ]
    );
    // The same frame under 1.0 rules keeps the backslash: escapes follow the version the
    // headers were read with.
    let old = decode(wire, Version::V1_0);
    assert_eq!(old.frame().header("message-id"), Some("m\\c1"));
}

#[test]
fn headers_are_checked_while_streaming_though_no_list_is_built() {
    let too_many = b"MESSAGE\na:1\nb:2\nc:3\n\n\0";
    assert!(matches!(
        decode_with(too_many, Version::V1_2, limits(1024, 2, 1024)).error,
        Some(DecodeError::TooManyHeaders { limit: 2 })
    ));
    assert_eq!(
        error(b"MESSAGE\nbroken\n\n\0", Version::V1_2),
        DecodeError::HeaderWithoutColon
    );
    assert!(matches!(
        error(b"MESSAGE\na:\\x\n\n\0", Version::V1_2),
        DecodeError::BadEscape { .. }
    ));
    assert!(matches!(
        decode_with(
            b"MESSAGE\ncontent-length:5000\n\n",
            Version::V1_2,
            limits(1024, 8, 1024)
        )
        .error,
        Some(DecodeError::BodyTooLarge { limit: 1024 })
    ));
    // A `content-length` line with an escape is read unescaped (`1:` is no number).
    assert_eq!(
        error(b"SEND\ncontent-length:1\\c\n\nx\0", Version::V1_2),
        DecodeError::BadContentLength
    );
    // Escapes are checked when the header block is complete, before any of the body is read.
    assert!(matches!(
        error(b"MESSAGE\na:1\r\nb:\\x\r\nc:3\r\n\r\n", Version::V1_2),
        DecodeError::BadEscape { .. }
    ));
    assert!(matches!(
        error(b"MESSAGE\nok:\\c\r\nname\\q:1\n\n", Version::V1_1),
        DecodeError::BadEscape { .. }
    ));
}
