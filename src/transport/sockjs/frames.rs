//! SockJS framing: the `o`, `h`, `a[...]` and `c[code,"reason"]` frames, the protocol's JSON
//! string escaping, and parsing of the client's JSON message arrays. Pure code, no I/O.
//!
//! SockJS escapes more than JSON requires: characters that browsers or proxies mangle on some
//! transports (the Unicode "format" ranges, U+2028/U+2029, the specials block) and every UTF-16
//! surrogate, so a character outside the BMP travels as an escaped surrogate pair.

use std::fmt::Write as _;

/// The open frame, sent once when a session starts.
pub const OPEN: &str = "o";
/// The heartbeat frame.
pub const HEARTBEAT: &str = "h";

/// Close code and reason when the application closes a session the usual way.
pub const GO_AWAY: (u16, &str) = (3000, "Go away!");
/// Sent to a second receiving request while one is still attached.
pub const ANOTHER_CONNECTION: (u16, &str) = (2010, "Another connection still open");
/// A receiving request was cut off by the network: messages may have been lost.
pub const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

/// Whether SockJS requires `c` to be sent as a `\uXXXX` escape (besides `"`, `\` and the
/// short escapes handled separately).
fn must_escape(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{001f}'
        | '\u{007f}'..='\u{009f}'
        | '\u{00ad}'
        | '\u{0600}'..='\u{0604}'
        | '\u{070f}'
        | '\u{17b4}'..='\u{17b5}'
        | '\u{200c}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff0}'..='\u{ffff}'
        | '\u{10000}'..)
}

/// Appends `s` to `out` as a JSON string literal with SockJS escaping (lower-case hex, as the
/// reference server writes it).
pub fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0008}' => out.push_str("\\b"),
            '\u{000c}' => out.push_str("\\f"),
            c if must_escape(c) => push_utf16_escapes(out, c),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `c` as one `\uXXXX` escape, or two (a surrogate pair) outside the BMP.
fn push_utf16_escapes(out: &mut String, c: char) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\u{unit:04x}");
    }
}

/// `s` as a SockJS-escaped JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    push_quoted(&mut out, s);
    out
}

/// An `a[...]` frame carrying `messages` in order.
pub fn messages_frame<S: AsRef<str>>(messages: &[S]) -> String {
    let len: usize = messages.iter().map(|m| m.as_ref().len() + 3).sum();
    let mut out = String::with_capacity(len + 3);
    out.push_str("a[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted(&mut out, m.as_ref());
    }
    out.push(']');
    out
}

/// A `c[code,"reason"]` frame.
pub fn close_frame(code: u16, reason: &str) -> String {
    format!("c[{code},{}]", quote(reason))
}

/// A frame as a JavaScript string literal for `htmlfile` and `jsonp`: JSON escaping plus `<`,
/// `>` and `&` escaped, so a message holding `</script>` cannot end the page's script element.
pub fn js_string(frame: &str) -> String {
    let quoted = quote(frame);
    let mut out = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

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

/// The client's messages: a JSON array of strings, or (WebSocket transport) a single string.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Inbound {
    Many(Vec<String>),
    One(String),
}

/// Parses a client payload into its messages.
pub fn parse_messages(payload: &[u8]) -> Result<Vec<String>, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    match serde_json::from_slice::<Inbound>(payload) {
        Ok(Inbound::Many(v)) => Ok(v),
        Ok(Inbound::One(s)) => Ok(vec![s]),
        Err(_) => Err(PayloadError::BrokenJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_plain_and_json_specials() {
        assert_eq!(quote("abc"), r#""abc""#);
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("  \u{0}\n\r "), r#""  \u0000\n\r ""#);
        assert_eq!(quote("\u{8}\u{c}\t\u{1f}"), r#""\b\f\t\u001f""#);
    }

    #[test]
    fn escapes_sockjs_ranges_in_lower_case_hex() {
        for (c, esc) in [
            ('\u{200c}', "\\u200c"),
            ('\u{200f}', "\\u200f"),
            ('\u{2028}', "\\u2028"),
            ('\u{202f}', "\\u202f"),
            ('\u{2060}', "\\u2060"),
            ('\u{206f}', "\\u206f"),
            ('\u{fff0}', "\\ufff0"),
            ('\u{ffff}', "\\uffff"),
            ('\u{feff}', "\\ufeff"),
            ('\u{7f}', "\\u007f"),
        ] {
            assert_eq!(quote(&c.to_string()), format!("\"{esc}\""), "{c:?}");
        }
    }

    #[test]
    fn escapes_astral_chars_as_surrogate_pairs() {
        assert_eq!(quote("\u{1f600}"), r#""\ud83d\ude00""#);
    }

    #[test]
    fn leaves_ordinary_unicode_raw() {
        assert_eq!(
            quote("héllo 日本 \u{2027} \u{2030}"),
            "\"héllo 日本 \u{2027} \u{2030}\""
        );
    }

    #[test]
    fn escaped_output_round_trips_through_json() {
        let all: String = (0u32..0x11000)
            .step_by(7)
            .filter_map(char::from_u32)
            .collect();
        let back: String = serde_json::from_str(&quote(&all)).expect("valid JSON");
        assert_eq!(back, all);
    }

    #[test]
    fn server_killer_string_matches_the_protocol_suite() {
        let ranges = [
            0x200cu32..=0x200f,
            0x2028..=0x202f,
            0x2060..=0x206f,
            0xfff0..=0xffff,
        ];
        let chars: String = ranges
            .clone()
            .into_iter()
            .flatten()
            .filter_map(char::from_u32)
            .collect();
        let expected: String = ranges
            .into_iter()
            .flatten()
            .map(|u| format!("\\u{u:04x}"))
            .collect();
        assert_eq!(quote(&chars), format!("\"{expected}\""));
    }

    #[test]
    fn builds_frames() {
        assert_eq!(messages_frame(&["a"]), r#"a["a"]"#);
        assert_eq!(messages_frame(&["a", "b\u{0}"]), r#"a["a","b\u0000"]"#);
        assert_eq!(close_frame(3000, "Go away!"), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            close_frame(ANOTHER_CONNECTION.0, ANOTHER_CONNECTION.1),
            r#"c[2010,"Another connection still open"]"#
        );
    }

    #[test]
    fn js_string_cannot_close_a_script_element() {
        let s = js_string(r#"a["</script>"]"#);
        assert!(!s.contains('<') && !s.contains('>'));
        assert_eq!(s, r#""a[\"\u003c/script\u003e\"]""#);
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(
            parse_messages(br#"["a","b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_messages(br#""a""#), Ok(vec!["a".into()]));
        assert_eq!(parse_messages(br#"[]"#), Ok(vec![]));
        assert_eq!(
            parse_messages(br#"["\ud83d\ude00"]"#),
            Ok(vec!["\u{1f600}".into()])
        );
        assert_eq!(parse_messages(b""), Err(PayloadError::Empty));
        assert_eq!(parse_messages(br#"["x"#), Err(PayloadError::BrokenJson));
        assert_eq!(parse_messages(br#"[1]"#), Err(PayloadError::BrokenJson));
        assert_eq!(parse_messages(br#"{"a":1}"#), Err(PayloadError::BrokenJson));
    }
}
