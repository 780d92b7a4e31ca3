//! One framing, the broker's: random client byte streams (commands, headers with
//! `content-length` in odd case or repeated, escapes, NULs, CRs and EOLs anywhere, split at
//! random points) go through the gateway's client decoder and forwarding (what
//! `relay::pumps` does after CONNECT: a heart-beat becomes one LF, a frame its raw bytes or
//! a fresh encoding). Two models of the brokers' readers then decode the forwarded bytes, and
//! must find exactly the frames the gateway checked — same commands, same headers (first
//! occurrence wins, as in both brokers), same bodies — and nothing else; or the gateway
//! refused the input before forwarding it.
//!
//! The models are the brokers', not the gateway's: `rabbitmq` follows RabbitMQ 3.10's
//! `rabbit_stomp_frame` parser (byte grammar with noise skipping, escapes `\n \c \\ \r` in
//! every version, names and values; CR only before LF; `content-length` on SEND only) plus
//! the 1.0 left-trim of values seen on the wire; `activemq` follows ActiveMQ 5.17's
//! `StompWireFormat` (line reader; command lines trimmed, blank ones skipped; the trailing CR
//! of a line dropped in 1.0 and 1.2 only; a header line of one byte ends the headers; names
//! kept raw; values unescape `\n \c \\` and keep any other backslash; 1.0 values trimmed;
//! `content-length` on SEND and MESSAGE). Both behaviours were checked against the real
//! brokers on 61613/61623 with a raw TCP client (see docs/policy.md, "What the broker sees").

use bytes::BytesMut;
use proptest::prelude::*;
use stompgate::stomp::{encode, Command, Decoder, Item, Limits, Version};

/// A frame as a reader acts on it: command, headers (first occurrence of each name), body.
/// `content-length` is left out of the headers: it is framing, compared through the body (a
/// re-encoded frame gets a fresh one).
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    command: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &[u8]| b.escape_ascii().to_string();
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{}:{}", show(n), show(v)))
            .collect();
        write!(
            f,
            "{} {headers:?} {:?}",
            show(&self.command),
            show(&self.body)
        )
    }
}

fn first_wins(all: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in all {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value));
        }
    }
    out
}

/// The headers compared: all but `content-length`.
fn compared(mut headers: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers.retain(|(n, _)| n != b"content-length");
    headers
}

/// The gateway side: decode the chunks as the relay does after CONNECT and collect what it
/// checked and what it forwarded. Stops where the relay would end the session.
fn gateway(chunks: &[&[u8]], version: Version) -> (Vec<Seen>, Vec<u8>) {
    let mut dec = Decoder::for_client(Limits::default());
    dec.set_version(version);
    let (mut buf, mut checked, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Item::Heartbeat)) => {
                    out.extend_from_slice(b"\n");
                    continue;
                }
                Ok(Some(Item::Frame(f))) => f,
                Err(_) => return (checked, out.to_vec()),
            };
            // The relay refuses these in the Connected state.
            if frame.command.is_connect() || frame.command.is_server() {
                return (checked, out.to_vec());
            }
            checked.push(Seen {
                command: frame.command.as_str().as_bytes().to_vec(),
                headers: compared(first_wins(
                    frame
                        .headers()
                        .iter()
                        .map(|h| (h.name.to_vec(), h.value.to_vec())),
                )),
                body: frame.body().to_vec(),
            });
            // pumps::append_frame: the raw bytes when the frame has them, else a fresh encoding.
            encode(&frame, version, &mut out);
            if frame.command == Command::Disconnect {
                return (checked, out.to_vec());
            }
        }
    }
    (checked, out.to_vec())
}

/// Why a model reader stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// All bytes read; `true` when a frame was left unfinished.
    End(bool),
    /// The broker would close the connection with an ERROR.
    Error(&'static str),
}

mod rabbitmq {
    //! RabbitMQ 3.10's `rabbit_stomp_frame:parser/3` and `parse_body/2`, byte by byte.
    use super::{compared, first_wins, Seen, Stop};

    fn unescape(code: u8) -> Option<u8> {
        match code {
            b'n' => Some(b'\n'),
            b'\\' => Some(b'\\'),
            b'c' => Some(b':'),
            b'r' => Some(b'\r'),
            _ => None,
        }
    }

    /// Reads an element up to LF (CR LF counts as LF; any other CR is an error). With
    /// `escapes`, backslash sequences are resolved; with `colon`, a `:` also ends it.
    /// Returns the bytes and the terminator, or None at the end of input.
    fn element(
        b: &[u8],
        at: &mut usize,
        escapes: bool,
        colon: bool,
    ) -> Result<Option<(Vec<u8>, u8)>, &'static str> {
        let mut acc = Vec::new();
        loop {
            let Some(&ch) = b.get(*at) else {
                return Ok(None);
            };
            *at += 1;
            match ch {
                b'\r' => match b.get(*at) {
                    None => return Ok(None),
                    Some(b'\n') => {}
                    Some(_) => return Err("unexpected chars"),
                },
                b'\\' if escapes => {
                    let Some(&code) = b.get(*at) else {
                        return Ok(None);
                    };
                    *at += 1;
                    acc.push(unescape(code).ok_or("bad escape")?);
                }
                b'\n' => return Ok(Some((acc, b'\n'))),
                b':' if colon => return Ok(Some((acc, b':'))),
                _ => acc.push(ch),
            }
        }
    }

    pub fn read(b: &[u8], v1_0: bool) -> (Vec<Seen>, Stop) {
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            // Inter-frame noise: NUL, LF, CR LF.
            loop {
                match (b.get(at), b.get(at + 1)) {
                    (Some(0 | b'\n'), _) => at += 1,
                    (Some(b'\r'), Some(b'\n')) => at += 2,
                    (Some(b'\r'), None) => return (frames, Stop::End(true)),
                    (Some(b'\r'), Some(_)) => return (frames, Stop::Error("chars between frames")),
                    (None, _) => return (frames, Stop::End(false)),
                    _ => break,
                }
            }
            match frame(b, &mut at, v1_0) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, Stop::End(true)),
                Err(e) => return (frames, Stop::Error(e)),
            }
        }
    }

    fn frame(b: &[u8], at: &mut usize, v1_0: bool) -> Result<Option<Seen>, &'static str> {
        let Some((command, _)) = element(b, at, false, false)? else {
            return Ok(None);
        };
        let mut headers = Vec::new();
        loop {
            match (b.get(*at), b.get(*at + 1)) {
                (Some(b'\n'), _) => {
                    *at += 1;
                    break;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    *at += 2;
                    break;
                }
                (None, _) | (Some(b'\r'), None) => return Ok(None),
                _ => {}
            }
            let Some((name, end)) = element(b, at, true, true)? else {
                return Ok(None);
            };
            if end == b'\n' {
                return Err("header without value");
            }
            let Some((mut value, _)) = element(b, at, true, false)? else {
                return Ok(None);
            };
            if v1_0 {
                // Seen on the wire: RabbitMQ drops the spaces a 1.0 value starts with.
                let lead = value.iter().take_while(|&&c| c == b' ').count();
                value.drain(..lead);
            }
            headers.push((name, value));
        }
        let headers = first_wins(headers);
        let length = match headers.iter().find(|(n, _)| n == b"content-length") {
            Some((_, v)) if command == b"SEND" => Some(integer(v)?),
            _ => None,
        };
        let rest = &b[*at..];
        let body_end = match length {
            Some(n) if rest.len() <= n => return Ok(None),
            Some(n) if rest[n] != 0 => return Err("no NUL after content-length"),
            Some(n) => n,
            None => match rest.iter().position(|&c| c == 0) {
                Some(i) => i,
                None => return Ok(None),
            },
        };
        let body = rest[..body_end].to_vec();
        *at += body_end + 1;
        Ok(Some(Seen {
            command,
            headers: compared(headers),
            body,
        }))
    }

    /// `list_to_integer(string:strip(V))`: optional sign, digits; anything else crashes the
    /// connection.
    fn integer(v: &[u8]) -> Result<usize, &'static str> {
        let s = std::str::from_utf8(v).map_err(|_| "bad content-length")?;
        let n: i64 = s
            .trim_matches(' ')
            .parse()
            .map_err(|_| "bad content-length")?;
        usize::try_from(n).map_err(|_| "negative content-length")
    }
}

mod activemq {
    //! ActiveMQ 5.17's `StompWireFormat.unmarshal`, line by line.
    use super::{compared, first_wins, Seen, Stop};

    /// Java's `String.trim`: every char up to U+0020 at either end.
    fn trim(v: &[u8]) -> &[u8] {
        let start = v.iter().position(|&c| c > b' ').unwrap_or(v.len());
        let end = v.iter().rposition(|&c| c > b' ').map_or(start, |i| i + 1);
        &v[start..end]
    }

    /// `readHeaderLine`: up to LF; one trailing CR dropped in 1.0 and 1.2, kept in 1.1.
    fn line<'a>(b: &'a [u8], at: &mut usize, strip_cr: bool) -> Option<&'a [u8]> {
        let lf = b[*at..].iter().position(|&c| c == b'\n')?;
        let mut l = &b[*at..*at + lf];
        *at += lf + 1;
        if strip_cr {
            l = l.strip_suffix(b"\r").unwrap_or(l);
        }
        Some(l)
    }

    /// `decodeHeader`: `\n`, `\c`, `\\` resolved; any other backslash kept as it is.
    fn decode(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < v.len() {
            match (v[i], v.get(i + 1)) {
                (b'\\', Some(b'n')) => out.push(b'\n'),
                (b'\\', Some(b'c')) => out.push(b':'),
                (b'\\', Some(b'\\')) => out.push(b'\\'),
                (c, _) => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        out
    }

    pub fn read(b: &[u8], version: &str) -> (Vec<Seen>, Stop) {
        let strip_cr = version != "1.1";
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            // parseAction: skip lines that trim to nothing.
            let command = loop {
                let Some(l) = line(b, &mut at, strip_cr) else {
                    let partial = !trim(&b[at..]).is_empty();
                    return (frames, Stop::End(partial));
                };
                let t = trim(l);
                if !t.is_empty() {
                    break t.to_vec();
                }
            };
            let mut headers = Vec::new();
            loop {
                let Some(l) = line(b, &mut at, strip_cr) else {
                    return (frames, Stop::End(true));
                };
                if l.len() <= 1 {
                    break;
                }
                let colon = l.iter().position(|&c| c == b':').unwrap_or(l.len());
                let name = l[..colon].to_vec();
                let mut value = decode(l.get(colon + 1..).unwrap_or_default());
                if version == "1.0" {
                    value = trim(&value).to_vec();
                }
                headers.push((name, value));
            }
            let headers = first_wins(headers);
            let length = headers
                .iter()
                .find(|(n, _)| n == b"content-length")
                .filter(|_| command == b"SEND" || command == b"MESSAGE")
                .map(|(_, v)| {
                    std::str::from_utf8(trim(v))
                        .ok()
                        .and_then(|s| s.parse::<i32>().ok())
                        .and_then(|n| usize::try_from(n).ok())
                });
            let rest = &b[at..];
            let body_end = match length {
                Some(None) => return (frames, Stop::Error("bad content-length")),
                Some(Some(n)) if rest.len() <= n => return (frames, Stop::End(true)),
                Some(Some(n)) if rest[n] != 0 => return (frames, Stop::Error("no NUL")),
                Some(Some(n)) => n,
                None => match rest.iter().position(|&c| c == 0) {
                    Some(i) => i,
                    None => return (frames, Stop::End(true)),
                },
            };
            frames.push(Seen {
                command,
                headers: compared(headers),
                body: rest[..body_end].to_vec(),
            });
            at += body_end + 1;
        }
    }
}

const COMMANDS: [&str; 11] = [
    "SEND",
    "SEND",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
];
/// Header names a client sends.
const NAMES: [&str; 5] = ["destination", "id", "x", "receipt", "transaction"];
/// Names that are refused (`content-length` anywhere but SEND, or with any value but the
/// body's length: the frame's own comes from the `length` choice below).
const ODD_NAMES: [&str; 5] = [
    "Content-Length",
    "a\\cb",
    "",
    "CONTENT-LENGTH",
    "content-length",
];

fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        12 => prop::sample::select(&NAMES[..]),
        1 => prop::sample::select(&ODD_NAMES[..]),
    ]
}

/// Bytes values and bodies are made of: escapes, separators, NUL, CR, LF, spaces, letters.
const VALUE_BYTES: &[u8] = b"aq/:\\ncrt \r\n\0\t";

fn bytes_from(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max)
}

/// A value: usually letters, separators and the escapes every reader shares; sometimes any
/// of the bytes above.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        8 => prop::sample::select(&["a", "q", "/", ":", "."][..]),
        1 => prop::sample::select(&["\\n", "\\c", "\\\\"][..]),
    ];
    let clean = prop::collection::vec(token, 0..5).prop_map(|t| t.concat().into_bytes());
    prop_oneof![4 => clean, 1 => bytes_from(VALUE_BYTES, 6)]
}

/// One frame as a client might write it, well-formed or not.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let header = (name(), value());
    (
        prop::sample::select(&COMMANDS[..]),
        prop::collection::vec(header, 0..4),
        prop_oneof![bytes_from(b"ab:\n", 6), bytes_from(b"ab\0\n:", 6)],
        0..4u8,
        prop::bool::weighted(0.25),
        prop::collection::vec(prop::sample::select(&["\0", "\n", "\r\n"][..]), 0..3),
        // Whether a command other than SEND gets the body and content-length drawn for it.
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(command, headers, mut body, mut length, crlf, noise, stray)| {
                if command != "SEND" && !stray {
                    body.clear();
                    length = 0;
                }
                let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                let mut f: Vec<u8> = noise.concat().into_bytes();
                f.extend_from_slice(command.as_bytes());
                f.extend_from_slice(eol);
                for (name, value) in headers {
                    f.extend_from_slice(name.as_bytes());
                    f.push(b':');
                    f.extend_from_slice(&value);
                    f.extend_from_slice(eol);
                }
                // 0: none; 1: right; 2: one short; 3: one long.
                let announced = match length {
                    1 => Some(body.len()),
                    2 => Some(body.len().saturating_sub(1)),
                    3 => Some(body.len() + 1),
                    _ => None,
                };
                if let Some(n) = announced {
                    f.extend_from_slice(format!("content-length:{n}").as_bytes());
                    f.extend_from_slice(eol);
                }
                f.extend_from_slice(eol);
                f.extend_from_slice(&body);
                f.push(0);
                f
            },
        )
}

/// A stream of frames, perhaps with one byte inserted anywhere, and where to split it.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        prop::collection::vec(frame(), 1..5),
        prop::option::weighted(
            0.3,
            (
                any::<prop::sample::Index>(),
                prop::sample::select(VALUE_BYTES),
            ),
        ),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    )
        .prop_map(|(frames, insert, splits)| {
            let mut bytes = frames.concat();
            if let Some((at, byte)) = insert {
                bytes.insert(at.index(bytes.len() + 1), byte);
            }
            let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            (bytes, cuts)
        })
}

fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        out.push(bytes[from..cut].to_vec());
        from = cut;
    }
    out
}

fn check_models(bytes: &[u8], cuts: &[usize], version: Version) -> Result<(), TestCaseError> {
    let parts = chunks(bytes, cuts);
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let (checked, forwarded) = gateway(&parts, version);
    let whole = gateway(&[bytes], version);
    prop_assert_eq!(&whole.1, &forwarded, "the split changed what was forwarded");
    let shown = String::from_utf8_lossy(&forwarded)
        .escape_debug()
        .to_string();
    let (rabbit, stop) = rabbitmq::read(&forwarded, version == Version::V1_0);
    prop_assert_eq!(stop, Stop::End(false), "RabbitMQ: {}", shown);
    prop_assert_eq!(
        &rabbit,
        &checked,
        "RabbitMQ split it differently: {}",
        shown
    );
    let (amq, stop) = activemq::read(&forwarded, version.as_str());
    prop_assert_eq!(stop, Stop::End(false), "ActiveMQ: {}", shown);
    prop_assert_eq!(&amq, &checked, "ActiveMQ split it differently: {}", shown);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn brokers_read_exactly_the_frames_the_gateway_checked(
        (bytes, cuts) in stream(),
        version in prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2]),
    ) {
        check_models(&bytes, &cuts, version)?;
    }
}

proptest! {
    /// Arbitrary bytes: no panic, and the split never changes what is checked or forwarded.
    #[test]
    fn arbitrary_client_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        cut in any::<prop::sample::Index>(),
        version in prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2]),
    ) {
        let (a, b) = bytes.split_at(cut.index(bytes.len() + 1));
        prop_assert_eq!(gateway(&[a, b], version), gateway(&[&bytes], version));
    }
}

/// The models themselves: they must see the attacks the gateway refuses (else the property
/// above would prove nothing).
#[test]
fn the_models_see_the_smuggled_frames() {
    let hidden = "\0SUBSCRIBE\nid:9\ndestination:/queue/secret\n\n";
    let smuggle = format!(
        "SUBSCRIBE\nid:1\ndestination:/queue/ok\ncontent-length:{}\n\n{hidden}\0",
        hidden.len()
    );
    let (frames, _) = rabbitmq::read(smuggle.as_bytes(), false);
    assert_eq!(
        frames.len(),
        2,
        "RabbitMQ ends a SUBSCRIBE at its first NUL"
    );
    assert_eq!(frames[1].headers[1].1, b"/queue/secret");
    let (frames, _) = activemq::read(smuggle.as_bytes(), "1.2");
    assert_eq!(frames.len(), 2, "so does ActiveMQ");
    // The gateway refuses it, and forwards nothing.
    let (checked, forwarded) = gateway(&[smuggle.as_bytes()], Version::V1_2);
    assert!(checked.is_empty() && forwarded.is_empty());
    // ActiveMQ ends the headers at a one-byte line; RabbitMQ reads `:` as a header.
    let colon = b"SEND\ndestination:/queue/ok\n:\ndestination:/queue/x\n\n\0";
    assert_eq!(
        activemq::read(colon, "1.2").0[0].body,
        b"destination:/queue/x\n\n"
    );
    assert_eq!(rabbitmq::read(colon, false).0[0].headers.len(), 2);
    // 1.1: ActiveMQ keeps the CR of a CR LF in the value.
    let crlf = b"SEND\r\nx:v\r\n\r\n\0";
    assert_eq!(activemq::read(crlf, "1.1").0[0].headers[0].1, b"v\r");
    assert_eq!(rabbitmq::read(crlf, false).0[0].headers[0].1, b"v");
    // `\r`: RabbitMQ unescapes it, ActiveMQ keeps it.
    let r = b"SEND\nx:a\\rb\n\n\0";
    assert_eq!(rabbitmq::read(r, false).0[0].headers[0].1, b"a\rb");
    assert_eq!(activemq::read(r, "1.2").0[0].headers[0].1, b"a\\rb");
}
