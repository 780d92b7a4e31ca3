//! The client's SockJS payloads: a JSON array of strings (or, on the WebSocket transport, a
//! single string) decoded into [`Messages`], the strings back to back in one buffer. Pure code,
//! no I/O.
//!
//! serde_json reads the payload; a `DeserializeSeed` writes every message straight into the one
//! buffer as it is read: no `String` per message, and a batch reaches the relay as that buffer,
//! without a join.

use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

/// Why a client payload was refused; the texts are the ones the protocol tests expect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// No body (or an empty `d=` form field).
    #[error("Payload expected.")]
    Empty,
    /// Not JSON, or not a string / array of strings.
    #[error("Broken JSON encoding.")]
    BrokenJson,
}

/// Client messages in order, back to back in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Messages {
    bytes: BytesMut,
    /// Where each message ends in `bytes`.
    ends: Vec<usize>,
}

impl Messages {
    /// How many messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no messages (there may still be empty ones otherwise).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of all messages together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one message as it is (the raw WebSocket endpoint).
    pub fn push(&mut self, message: &str) {
        self.bytes.extend_from_slice(message.as_bytes());
        self.end_message();
    }

    /// All messages joined into one chunk, without a copy.
    pub fn into_joined(self) -> Bytes {
        self.bytes.freeze()
    }

    /// Each message as its own chunk, in order, without copies.
    pub fn into_each(self) -> impl Iterator<Item = Bytes> {
        let Messages { mut bytes, ends } = self;
        let mut start = 0;
        ends.into_iter().map(move |end| {
            let message = bytes.split_to(end - start).freeze();
            start = end;
            message
        })
    }

    /// The messages as strings, for tests.
    #[cfg(test)]
    pub fn to_strings(&self) -> Vec<String> {
        let mut start = 0;
        let mut out = Vec::new();
        for &end in &self.ends {
            out.push(String::from_utf8(self.bytes[start..end].to_vec()).expect("UTF-8"));
            start = end;
        }
        out
    }

    fn end_message(&mut self) {
        self.ends.push(self.bytes.len());
    }

    /// Drops everything after the first `len` messages (and `bytes` bytes).
    fn truncate(&mut self, (len, bytes): (usize, usize)) {
        self.ends.truncate(len);
        self.bytes.truncate(bytes);
    }
}

#[cfg(test)]
impl<'a> FromIterator<&'a str> for Messages {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut messages = Messages::default();
        for m in iter {
            messages.push(m);
        }
        messages
    }
}

/// Appends the messages of one client payload to `out`; on an error, `out` is left as it was.
pub(crate) fn parse_messages(payload: &[u8], out: &mut Messages) -> Result<(), PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mark = (out.len(), out.byte_len());
    // The messages take at most the payload's length (JSON unescaping never lengthens), so
    // one reservation instead of the buffer doubling while a large batch is read.
    out.bytes.reserve(payload.len());
    let mut json = serde_json::Deserializer::from_slice(payload);
    let parsed = Strings::payload(&mut *out)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    parsed.map_err(|_| {
        out.truncate(mark);
        PayloadError::BrokenJson
    })
}

/// Strings appended to the messages as serde_json reads them: strings without escapes come
/// straight from the payload, escaped ones from serde_json's reused scratch buffer, so no
/// `String` is made per message. At the top (`array`) a payload is a string or an array of
/// these; inside the array, a string and nothing else.
struct Strings<'m> {
    out: &'m mut Messages,
    array: bool,
}

impl<'m> Strings<'m> {
    /// The whole payload.
    fn payload(out: &'m mut Messages) -> Self {
        Strings { out, array: true }
    }
}

impl<'de> DeserializeSeed<'de> for Strings<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.array {
            d.deserialize_any(self)
        } else {
            d.deserialize_str(self)
        }
    }
}

impl<'de> Visitor<'de> for Strings<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.array {
            "a string or an array of strings"
        } else {
            "a string"
        })
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.out.push(s);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.array {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        loop {
            let element = Strings {
                out: &mut *self.out,
                array: false,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::transport::sockjs::frames::{messages_frame, quote};

    fn parse(payload: &[u8]) -> Result<Vec<String>, PayloadError> {
        let mut out = Messages::default();
        parse_messages(payload, &mut out).map(|()| out.to_strings())
    }

    /// What `serde_json` makes of a payload: the decoder must agree with it on every input.
    fn parse_with_serde(payload: &[u8]) -> Result<Vec<String>, PayloadError> {
        if payload.is_empty() {
            return Err(PayloadError::Empty);
        }
        serde_json::from_slice::<Vec<String>>(payload)
            .or_else(|_| serde_json::from_slice::<String>(payload).map(|s| vec![s]))
            .map_err(|_| PayloadError::BrokenJson)
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse(br#"["a","b"]"#), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(parse(br#""a""#), Ok(vec!["a".into()]));
        assert_eq!(parse(br#"[]"#), Ok(vec![]));
        assert_eq!(parse(br#"[""]"#), Ok(vec![String::new()]));
        assert_eq!(parse(br#"["\ud83d\ude00"]"#), Ok(vec!["\u{1f600}".into()]));
        assert_eq!(
            parse(br#"["\"\\\/\b\f\n\r\t\u0000\u00e9\u2028"]"#),
            Ok(vec!["\"\\/\u{8}\u{c}\n\r\t\0é\u{2028}".into()])
        );
        assert_eq!(
            parse(b" [ \"a\" ,\"b\" ] \n"),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse(b""), Err(PayloadError::Empty));
        assert_eq!(parse(br#"["x"#), Err(PayloadError::BrokenJson));
        assert_eq!(parse(br#"[1]"#), Err(PayloadError::BrokenJson));
        assert_eq!(parse(br#"{"a":1}"#), Err(PayloadError::BrokenJson));
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for broken in [
            &br#"["a"] x"#[..],
            br#"["a",]"#,
            br#"[,"a"]"#,
            br#"[["a"]]"#,
            br#"["a",null]"#,
            br#"null"#,
            br#"1"#,
            br#"["\ud83d"]"#,
            br#"["\ude00"]"#,
            br#"["\ud83d\u0041"]"#,
            br#"["\ude00\udc00"]"#,
            br#"["\ud83d\ud83d"]"#,
            br#"["\x"]"#,
            br#"["\u12g4"]"#,
            br#"["\u+123"]"#,
            b"[\"\xff\"]",
            b"[\"a\nb\"]",
            b"[\"a\"]\x0c",
            b" ",
        ] {
            assert_eq!(parse_with_serde(broken), Err(PayloadError::BrokenJson));
            assert_eq!(parse(broken), Err(PayloadError::BrokenJson), "{broken:?}");
        }
    }

    #[test]
    fn a_broken_payload_leaves_earlier_messages_alone() {
        let mut out = Messages::default();
        parse_messages(br#"["a","b"]"#, &mut out).unwrap();
        let err = parse_messages(br#"["c","d"#, &mut out);
        assert_eq!(err, Err(PayloadError::BrokenJson));
        parse_messages(br#""e""#, &mut out).unwrap();
        assert_eq!(out.to_strings(), ["a", "b", "e"]);
    }

    #[test]
    fn splits_and_joins_without_losing_empty_messages() {
        let m: Messages = ["ab", "", "c"].into_iter().collect();
        assert_eq!(m.len(), 3);
        assert_eq!(m.into_each().collect::<Vec<_>>(), ["ab", "", "c"]);
        let m: Messages = ["ab", "", "c"].into_iter().collect();
        assert_eq!(m.into_joined(), "abc");
    }

    /// JSON-ish payloads: arrays and strings built from pieces that hit every branch.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            "[ -~]{0,8}",
            prop::sample::select(vec![
                "\"",
                "\\",
                "[",
                "]",
                ",",
                " ",
                "\n",
                "\t",
                "\r",
                "\u{c}",
                "\\u",
                "\\ud83d",
                "\\ude00",
                "\\u00e9",
                "\\u0000",
                "\\n",
                "\\/",
                "null",
                "é",
                "\u{1f600}",
            ])
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        let text = prop::collection::vec(piece, 0..12).prop_map(|v| v.concat());
        let ws = "[ \n\t\r\u{c}\u{b}]{0,2}";
        // Arrays of those strings with (mostly JSON) whitespace around every token.
        let spaced = prop::collection::vec((text.clone(), ws, ws), 0..4).prop_map(|v| {
            let items: Vec<String> = v.iter().map(|(t, a, b)| format!("{a}\"{t}\"{b}")).collect();
            format!(" [{}]\r\n", items.join(",")).into_bytes()
        });
        prop_oneof![
            spaced,
            text.clone().prop_map(|t| format!("[\"{t}\"]").into_bytes()),
            text.clone().prop_map(|t| format!("\"{t}\"").into_bytes()),
            text.clone().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..24).prop_map(|mut v| {
                v.insert(0, b'"');
                v
            }),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(p in payload()) {
            prop_assert_eq!(parse(&p), parse_with_serde(&p));
        }

        #[test]
        fn agrees_with_serde_json_on_mutated_frames(
            v in prop::collection::vec("\\PC{0,10}", 0..4),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut p = messages_frame(&v).into_bytes().split_off(1);
            let i = at.index(p.len());
            p[i] = byte;
            prop_assert_eq!(parse(&p), parse_with_serde(&p));
        }

        #[test]
        fn parses_what_the_server_quotes(v in prop::collection::vec(any::<String>(), 0..6)) {
            let frame = messages_frame(&v);
            prop_assert_eq!(parse(&frame.as_bytes()[1..]), Ok(v.clone()));
            if let [one] = &v[..] {
                prop_assert_eq!(parse(quote(one).as_bytes()), Ok(v.clone()));
            }
        }
    }
}
