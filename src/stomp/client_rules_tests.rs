//! Every refusal of [`Decoder::for_client`], fed whole, byte by byte and split at every offset:
//! the same error, and no frame yielded before it (a refused frame never reaches the broker).

use bytes::BytesMut;

use super::*;
use crate::stomp::{encode, DecodeError, Decoder, Frame, Item, Limits};

const ALL_VERSIONS: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

/// Items, then the error that stopped the stream (if any).
fn feed<'a>(
    mut dec: Decoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
    version: Version,
) -> (Vec<Item>, Option<DecodeError>) {
    dec.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

/// Decodes `input` as client frames, whole, byte by byte and split at every offset.
fn client(input: &[u8], version: Version) -> (Vec<Item>, Option<DecodeError>) {
    let dec = || Decoder::for_client(Limits::default());
    let whole = feed(dec(), [input], version);
    assert_eq!(whole, feed(dec(), input.chunks(1), version), "byte by byte");
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(whole, feed(dec(), [a, b], version), "split at {at}");
    }
    whole
}

fn refused(input: &[u8], version: Version) -> DecodeError {
    let (items, error) = client(input, version);
    assert!(items.is_empty(), "a frame got through: {items:?}");
    error.unwrap_or_else(|| panic!("accepted: {}", input.escape_ascii()))
}

fn accepted(input: &[u8], version: Version) -> Frame {
    let (mut items, error) = client(input, version);
    assert_eq!(error, None, "{}", input.escape_ascii());
    items.retain(|i| *i != Item::Heartbeat);
    assert_eq!(items.len(), 1, "{items:?}");
    match items.pop() {
        Some(Item::Frame(f)) => f,
        other => panic!("{other:?}"),
    }
}

const CLIENT_COMMANDS: [Command; 11] = [
    Command::Connect,
    Command::Stomp,
    Command::Send,
    Command::Subscribe,
    Command::Unsubscribe,
    Command::Ack,
    Command::Nack,
    Command::Begin,
    Command::Commit,
    Command::Abort,
    Command::Disconnect,
];

#[test]
fn only_send_may_carry_a_body_or_content_length() {
    for c in CLIENT_COMMANDS.into_iter().filter(|c| *c != Command::Send) {
        let name = c.as_str();
        for v in ALL_VERSIONS {
            assert_eq!(
                refused(format!("{c}\nx:1\n\nbody\0").as_bytes(), v),
                DecodeError::BodyNotAllowed(name)
            );
            assert_eq!(
                refused(format!("{c}\nx:1\ncontent-length:0\n\n\0").as_bytes(), v),
                DecodeError::ContentLengthNotAllowed(name)
            );
            let f = accepted(format!("{c}\nx:1\n\n\0").as_bytes(), v);
            assert!(f.raw().is_some() && f.body().is_empty());
        }
    }
    let f = accepted(b"SEND\ncontent-length:3\n\na\0b\0", Version::V1_2);
    assert_eq!(f.body(), b"a\0b");
    assert_eq!(accepted(b"SEND\n\nbody\0", Version::V1_0).body(), b"body");
}

#[test]
fn a_frame_hidden_behind_content_length_on_a_carrier_is_refused() {
    let hidden = "\0SUBSCRIBE\nid:9\ndestination:/queue/secret\n\n";
    for carrier in [
        "SUBSCRIBE\nid:1\ndestination:/queue/ok",
        "BEGIN\ntransaction:t",
    ] {
        let input = format!("{carrier}\ncontent-length:{}\n\n{hidden}\0", hidden.len());
        let e = refused(input.as_bytes(), Version::V1_2);
        assert!(matches!(e, DecodeError::ContentLengthNotAllowed(_)), "{e}");
    }
    // Without content-length the brokers end the carrier at the first NUL: so does the
    // gateway, and the next frame is checked on its own.
    let input = format!("BEGIN\ntransaction:t\n\n{hidden}\0");
    let (items, error) = client(input.as_bytes(), Version::V1_2);
    assert_eq!(error, None);
    let frames: Vec<&Frame> = items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(f),
            Item::Heartbeat => None,
        })
        .collect();
    assert_eq!(frames.len(), 2, "{items:?}");
    assert_eq!(frames[1].header("destination"), Some("/queue/secret"));
    let e = refused(b"CONNECT\naccept-version:1.2\n\nSEND\0", Version::V1_0);
    assert_eq!(e, DecodeError::BodyNotAllowed("CONNECT"));
}

#[test]
fn nul_in_the_headers_is_refused() {
    for input in [
        &b"SEND\nx:a\0b\n\n\0"[..],
        b"SEND\nx\0:v\n\n\0",
        b"SUBSCRIBE\ndestination:/queue/ok\0\nid:1\n\n\0",
        b"CONNECT\nlogin:a\0\n\n\0",
    ] {
        for v in ALL_VERSIONS {
            assert_eq!(refused(input, v), DecodeError::NulInHeaders);
        }
    }
}

#[test]
fn nuls_and_eols_between_frames_are_skipped() {
    for dec in [
        Decoder::for_client(Limits::default()),
        Decoder::new(Limits::default()),
    ] {
        let input = b"\0\0\n\0SEND\n\n\0\0\r\n\0\0ACK\nid:1\n\n\0\0";
        let (items, error) = feed(dec, [&input[..]], Version::V1_2);
        assert_eq!(error, None);
        let kinds: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Heartbeat => "EOL".into(),
                Item::Frame(f) => f.command.to_string(),
            })
            .collect();
        assert_eq!(kinds, ["EOL", "SEND", "EOL", "ACK"]);
    }
    let (items, error) = client(b"\0\0\0SEND\n\n\0\0", Version::V1_1);
    assert_eq!((items.len(), error), (1, None));
}

#[test]
fn crlf_frames_are_handed_over_for_re_encoding_with_lf() {
    for v in ALL_VERSIONS {
        let f = accepted(b"SEND\r\ndestination:/q\r\nx:a\r\n\r\nhi\0", v);
        assert!(f.raw().is_none(), "re-encoded, never forwarded with CR");
        assert_eq!(f.header("x"), Some("a"));
        let mut out = BytesMut::new();
        encode(&f, v, &mut out);
        assert_eq!(
            &out[..],
            b"SEND\ndestination:/q\nx:a\ncontent-length:2\n\nhi\0"
        );
    }
    let f = accepted(b"SEND\ndestination:/q\n\nhi\0", Version::V1_1);
    assert!(
        f.raw().is_some(),
        "LF-only frames are forwarded as they came"
    );
}

#[test]
fn ambiguous_headers_are_refused() {
    let amb = DecodeError::AmbiguousHeader;
    for v in ALL_VERSIONS {
        assert_eq!(refused(b"SEND\nx:a\rb\n\n\0", v), amb(why::BARE_CR));
        assert_eq!(refused(b"SEND\nx:1\r\r\n\n\0", v), amb(why::BARE_CR));
        assert!(matches!(
            refused(b"SEND\r\r\n\n\0", v),
            DecodeError::UnknownCommand(_)
        ));
        assert_eq!(refused(b"SEND\n:v\n\n\0", v), amb(why::EMPTY_NAME));
        assert_eq!(
            refused(b"SEND\nContent-Length:1\n\na\0", v),
            amb(why::ODD_CASE_CONTENT_LENGTH)
        );
    }
    for v in [Version::V1_1, Version::V1_2] {
        assert_eq!(refused(b"SEND\nx:a\\rb\n\n\0", v), amb(why::CR_ESCAPE));
        assert_eq!(refused(b"SEND\na\\cb:v\n\n\0", v), amb(why::ESCAPED_NAME));
        let bad = DecodeError::BadEscape {
            version: v.as_str(),
        };
        assert_eq!(refused(b"SEND\nx:a\\tb\n\n\0", v), bad);
        // What both brokers unescape alike passes, and is forwarded as it came.
        let f = accepted(b"SEND\nx:a\\cb\\\\c\\nd\n\n\0", v);
        assert_eq!(f.header_bytes("x"), Some(&b"a:b\\c\nd"[..]));
        assert!(f.raw().is_some());
        // 1.1+ values are not trimmed by either broker.
        assert_eq!(accepted(b"SEND\nx: a \n\n\0", v).header("x"), Some(" a "));
    }
    let v = Version::V1_0;
    assert_eq!(refused(b"SEND\nx:a\\cb\n\n\0", v), amb(why::ESCAPE_IN_1_0));
    assert_eq!(refused(b"SEND\nx\\n:b\n\n\0", v), amb(why::ESCAPE_IN_1_0));
    for padded in [
        &b"SEND\nx: a\n\n\0"[..],
        b"SEND\nx:a\t\n\n\0",
        b"SEND\nx:a\x01\n\n\0",
    ] {
        assert_eq!(refused(padded, v), amb(why::PADDED_VALUE));
    }
    assert_eq!(accepted(b"SEND\nx:\n\n\0", v).header("x"), Some(""));
}

#[test]
fn connect_headers_are_left_to_the_relay_and_checked_there() {
    // The decoder cannot know which CONNECT headers reach the broker (login, passcode and
    // host are usually replaced): it leaves escapes alone, the relay calls this per header.
    let f = accepted(b"CONNECT\nlogin:a\\cb\npasscode: x \n\n\0", Version::V1_0);
    assert_eq!(f.header("login"), Some("a\\cb"));
    let amb = |w| Err(DecodeError::AmbiguousHeader(w));
    assert_eq!(
        check_connect_header(b"client-id", b"a\\cb"),
        amb(why::ESCAPE_IN_1_0)
    );
    assert_eq!(check_connect_header(b"x\\c", b"v"), amb(why::ESCAPE_IN_1_0));
    assert_eq!(
        check_connect_header(b"client-id", b" a"),
        amb(why::PADDED_VALUE)
    );
    assert_eq!(check_connect_header(b"heart-beat", b"0,0"), Ok(()));
}

#[test]
fn broker_frames_keep_content_length_and_bodies_on_every_command() {
    for c in [
        Command::Message,
        Command::Error,
        Command::Receipt,
        Command::Connected,
    ] {
        let input = format!("{c}\ncontent-length:3\n\na\0b\0");
        let (items, error) = feed(
            Decoder::new(Limits::default()),
            [input.as_bytes()],
            Version::V1_2,
        );
        assert_eq!(error, None);
        let Some(Item::Frame(f)) = items.first() else {
            panic!("{items:?}")
        };
        assert_eq!(f.body(), b"a\0b");
    }
}

#[test]
fn refusals_are_single_line_messages() {
    for e in [
        DecodeError::BodyNotAllowed("BEGIN"),
        DecodeError::ContentLengthNotAllowed("ACK"),
        DecodeError::NulInHeaders,
        DecodeError::AmbiguousHeader(why::CR_ESCAPE),
    ] {
        let text = e.to_string();
        assert!(!text.contains('\n') && !e.is_too_large(), "{text}");
    }
}
