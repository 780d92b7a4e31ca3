//! The client's SockJS payloads: a JSON array of strings (or, on the WebSocket transport, a
//! single string) decoded into [`Messages`], the strings back to back in one buffer. Pure code,
//! no I/O.
//!
//! The decoder accepts exactly what `serde_json` accepts for a `Vec<String>` or a `String`
//! (the tests hold it to that), but writes every message straight into the one buffer: no
//! `String` per message, and a batch reaches the relay as that buffer, without a join.

use bytes::{Bytes, BytesMut};

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
    let mut reader = Reader {
        input: payload,
        pos: 0,
    };
    match reader.read_payload(out) {
        Some(()) => Ok(()),
        None => {
            out.truncate(mark);
            Err(PayloadError::BrokenJson)
        }
    }
}

/// A cursor over one payload; `None` from any method means broken JSON.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// A string or an array of strings, and nothing but JSON whitespace after it.
    fn read_payload(&mut self, out: &mut Messages) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? == b'[' {
            self.pos += 1;
            self.read_array_rest(out)?;
        } else {
            self.read_string(out)?;
        }
        self.skip_whitespace();
        (self.pos == self.input.len()).then_some(())
    }

    /// The strings of an array whose `[` was consumed, and its `]`.
    fn read_array_rest(&mut self, out: &mut Messages) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_whitespace();
            self.read_string(out)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// One string literal, decoded into `out` as one message.
    fn read_string(&mut self, out: &mut Messages) -> Option<()> {
        (self.next()? == b'"').then_some(())?;
        loop {
            let run_start = self.pos;
            let rest = &self.input[run_start..];
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            // Runs end only at ASCII bytes, so each run is valid UTF-8 iff the text is.
            let text = std::str::from_utf8(&rest[..run]).ok()?;
            out.bytes.extend_from_slice(text.as_bytes());
            self.pos = run_start + run + 1;
            match rest[run] {
                b'"' => {
                    out.end_message();
                    return Some(());
                }
                b'\\' => self.read_escape(&mut out.bytes)?,
                _ => return None,
            }
        }
    }

    /// The escape after a `\`, appended to `out` as UTF-8.
    fn read_escape(&mut self, out: &mut BytesMut) -> Option<()> {
        let byte = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.read_unicode_escape()?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        out.extend_from_slice(&[byte]);
        Some(())
    }

    /// The character of a `\uXXXX` escape whose `\u` was consumed; a surrogate must be a
    /// leading one followed at once by an escaped trailing one.
    fn read_unicode_escape(&mut self) -> Option<char> {
        let unit = self.read_hex4()?;
        if !(0xd800..0xe000).contains(&unit) {
            return char::from_u32(u32::from(unit));
        }
        if unit >= 0xdc00 || self.input.get(self.pos..self.pos + 2)? != b"\\u" {
            return None;
        }
        self.pos += 2;
        let low = self.read_hex4()?;
        if !(0xdc00..0xe000).contains(&low) {
            return None;
        }
        let high = u32::from(unit - 0xd800) << 10;
        char::from_u32(0x10000 + (high | u32::from(low - 0xdc00)))
    }

    fn read_hex4(&mut self) -> Option<u16> {
        let digits = self.input.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        digits.iter().try_fold(0u16, |acc, &d| {
            let v = char::from(d).to_digit(16)?;
            Some(acc << 4 | v as u16)
        })
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.input.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
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
