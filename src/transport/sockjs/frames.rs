//! SockJS framing: the `o`, `h`, `a[...]` and `c[code,"reason"]` frames and the protocol's
//! JSON string escaping. Pure code, no I/O. Client payloads are decoded in `payload.rs`.
//!
//! SockJS escapes more than JSON requires: characters that browsers or proxies mangle on some
//! transports (the Unicode "format" ranges, U+2028/U+2029, the specials block) and every UTF-16
//! surrogate, so a character outside the BMP travels as an escaped surrogate pair.

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

/// How each ASCII byte is written inside a string literal: `0` as itself, `b'u'` as a
/// `\u00XX` escape, anything else as a backslash and that letter (`\n`, `\"`, ...).
const ASCII_ESCAPES: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x7f] = b'u';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table
};

/// Whether a UTF-8 lead byte can start a character [`must_escape`] holds for: U+0080..U+00BF
/// (C2), U+0600.. (D8), U+070F (DC), U+17B4.. (E1), U+200C.. (E2), U+FEFF and U+FFF0.. (EF),
/// and everything outside the BMP (F0..F4). Other characters are copied without decoding.
fn may_need_escape(lead: u8) -> bool {
    matches!(lead, 0xc2 | 0xd8 | 0xdc | 0xe1 | 0xe2 | 0xef | 0xf0..)
}

/// The length of the UTF-8 sequence a non-ASCII lead byte starts.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xf0.. => 4,
        0xe0.. => 3,
        _ => 2,
    }
}

/// For eight bytes read little-endian: a non-zero mask whose lowest set bit is the high bit of
/// the first byte that [`push_quoted`] must look at (below 0x20, `"`, `\`, 0x7f, or not ASCII),
/// zero when there is none. Bytes after the first flagged one may be flagged falsely (a borrow
/// runs upwards), never the ones before it.
fn attention(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (word & HIGH)
        | below_space
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | zero_byte(word ^ (ONES * 0x7f))
}

/// Appends `s` to `out` as a JSON string literal with SockJS escaping (lower-case hex, as the
/// reference server writes it). Runs of bytes that need no escape are copied whole.
pub fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let (mut copied, mut i) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        // Eight bytes at a time over runs that need nothing (a STOMP frame is mostly such runs
        // between its newlines), then byte by byte from the first one that may.
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            let flagged = attention(u64::from_le_bytes(word));
            if flagged == 0 {
                i += 8;
                continue;
            }
            let clean = (flagged.trailing_zeros() / 8) as usize;
            if clean > 0 {
                i += clean;
                continue;
            }
        }
        if b < 0x80 {
            let escape = ASCII_ESCAPES[usize::from(b)];
            if escape != 0 {
                out.push_str(&s[copied..i]);
                match escape {
                    b'u' => push_unit_escape(out, u16::from(b)),
                    letter => {
                        out.push('\\');
                        out.push(char::from(letter));
                    }
                }
                copied = i + 1;
            }
            i += 1;
            continue;
        }
        let len = utf8_len(b);
        if may_need_escape(b) {
            // `i` is always on a character boundary: it only ever moves by whole characters.
            if let Some(c) = s[i..].chars().next().filter(|&c| must_escape(c)) {
                out.push_str(&s[copied..i]);
                push_utf16_escapes(out, c);
                copied = i + len;
            }
        }
        i += len;
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

/// Writes `c` as one `\uXXXX` escape, or two (a surrogate pair) outside the BMP.
fn push_utf16_escapes(out: &mut String, c: char) {
    let mut units = [0u16; 2];
    for &mut unit in c.encode_utf16(&mut units) {
        push_unit_escape(out, unit);
    }
}

/// Writes one UTF-16 code unit as `\uxxxx` (lower-case hex).
fn push_unit_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
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
    // Room for escapes too (a STOMP frame's newlines and NUL take 2 and 6 bytes each), so the
    // frame is written without growing; an eighth more covers a frame of short header lines
    // (+ 4: the frame's `a[` and `]`, and the newline `receive::Framer::wrap` ends it with).
    let mut out = String::with_capacity(len + len / 8 + 4);
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
    fn word_test_flags_exactly_the_first_byte_that_needs_a_look() {
        let needs_look = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f;
        for b in 0..=u8::MAX {
            for at in 0..8 {
                // A word of plain bytes with `b` at `at`, and a flagged byte after it that
                // must not hide it.
                let mut word = *b"abcdefgh";
                word[at] = b;
                let flagged = attention(u64::from_le_bytes(word));
                if needs_look(b) {
                    assert_eq!(
                        flagged.trailing_zeros() / 8,
                        at as u32,
                        "byte {b:#x} at {at}"
                    );
                } else {
                    assert_eq!(flagged, 0, "byte {b:#x} at {at}");
                }
                if at < 7 {
                    word[7] = b'\n';
                    let flagged = attention(u64::from_le_bytes(word));
                    let first = if needs_look(b) { at } else { 7 };
                    assert_eq!(
                        flagged.trailing_zeros() / 8,
                        first as u32,
                        "byte {b:#x} at {at}"
                    );
                }
            }
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

    /// The escaper as first written, one `char` at a time: the table the fast one must match.
    fn quote_char_by_char(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{0008}' => out.push_str("\\b"),
                '\u{000c}' => out.push_str("\\f"),
                c if must_escape(c) => {
                    for unit in c.encode_utf16(&mut [0u16; 2]) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn fast_escaper_matches_char_by_char_on_every_char() {
        let all: String = (0u32..=0x10ffff).filter_map(char::from_u32).collect();
        assert_eq!(quote(&all), quote_char_by_char(&all));
        for c in (0u32..=0x10ffff).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(quote(&s), quote_char_by_char(&s), "{c:?}");
        }
    }

    /// Strings mixing plain ASCII runs, JSON specials, SockJS ranges and astral characters.
    fn tricky_string() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            "[ -~]{0,40}",
            prop::sample::select(vec![
                "\"",
                "\\",
                "\n",
                "\r",
                "\t",
                "\u{8}",
                "\u{c}",
                "\0",
                "\u{1f}",
                "\u{7f}",
                "\u{9f}",
                "\u{ad}",
                "\u{a0}",
                "\u{603}",
                "\u{70f}",
                "\u{17b5}",
                "\u{200d}",
                "\u{2029}",
                "\u{2061}",
                "\u{feff}",
                "\u{fff5}",
                "\u{1f600}",
                "é",
                "日",
            ])
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn fast_escaper_matches_char_by_char(s in tricky_string()) {
            proptest::prop_assert_eq!(quote(&s), quote_char_by_char(&s));
        }
    }
}
