//! Header escaping per version (STOMP 1.1 §"Value Encoding", 1.2 §"Value Encoding").
//!
//! | version | escapes                          |
//! |---------|----------------------------------|
//! | 1.0     | none                             |
//! | 1.1     | `\n` `\c` `\\`                   |
//! | 1.2     | `\n` `\c` `\\` `\r`              |
//!
//! Whether a frame's headers are escaped at all also depends on its command
//! ([`Command::escapes_headers`](super::Command::escapes_headers)); these functions only know
//! the version, the decoder and encoder decide when to call them.
//!
//! Some bytes cannot be written in some contexts (a CR in 1.1, any CR or LF when nothing is
//! escaped, a `:` in an unescaped header name). The encoder drops them rather than failing:
//! writing them would change the frame's meaning for the receiver (a header injection), and
//! an encoder that cannot fail keeps every caller simple.

use std::borrow::Cow;

use bytes::BytesMut;

use super::Version;

/// An undefined escape sequence (e.g. `\t`, `\r` in 1.1, or a trailing lone backslash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undefined escape sequence in header")]
pub struct EscapeError;

/// Unescapes a raw header name or value. Borrows when there is nothing to unescape (the
/// common case), so decoding stays zero-copy.
pub fn unescape(raw: &[u8], version: Version) -> Result<Cow<'_, [u8]>, EscapeError> {
    if version == Version::V1_0 {
        return Ok(Cow::Borrowed(raw));
    }
    let Some(first) = memchr::memchr(b'\\', raw) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut rest = &raw[first..];
    while let Some(pos) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..pos]);
        let code = rest.get(pos + 1).copied().ok_or(EscapeError)?;
        out.push(unescape_byte(code, version).ok_or(EscapeError)?);
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
    Ok(Cow::Owned(out))
}

/// The byte that `\<code>` stands for in `version`, if it is defined.
fn unescape_byte(code: u8, version: Version) -> Option<u8> {
    match code {
        b'n' => Some(b'\n'),
        b'c' => Some(b':'),
        b'\\' => Some(b'\\'),
        b'r' if version >= Version::V1_2 => Some(b'\r'),
        _ => None,
    }
}

/// Escapes a header name or value into `dst`.
///
/// In 1.0 nothing is escaped, so CR and LF are dropped (they would end the header line). In
/// 1.1 a CR cannot be escaped and is dropped too. A `:` in a value is always safe; a `:` in a
/// 1.0 header *name* is not, see [`write_verbatim`].
pub fn escape_into(value: &[u8], version: Version, dst: &mut BytesMut) {
    if version == Version::V1_0 {
        write_verbatim(value, false, dst);
        return;
    }
    let needs_escape = memchr::memchr3(b'\\', b'\n', b':', value).is_some()
        || memchr::memchr(b'\r', value).is_some();
    if !needs_escape {
        dst.extend_from_slice(value);
        return;
    }
    dst.reserve(value.len() + value.len() / 4);
    for &b in value {
        match b {
            b'\\' => dst.extend_from_slice(b"\\\\"),
            b'\n' => dst.extend_from_slice(b"\\n"),
            b':' => dst.extend_from_slice(b"\\c"),
            b'\r' if version >= Version::V1_2 => dst.extend_from_slice(b"\\r"),
            b'\r' => {} // CR has no escape in 1.1: dropped.
            _ => dst.extend_from_slice(&[b]),
        }
    }
}

/// Writes a header name or value without escaping (STOMP 1.0, or `CONNECT`/`STOMP`/`CONNECTED`
/// in any version): CR and LF are dropped, and so is `:` when `is_name` (the receiver splits
/// the line at the first colon).
pub fn write_verbatim(value: &[u8], is_name: bool, dst: &mut BytesMut) {
    let unsafe_byte = |b: &u8| *b == b'\r' || *b == b'\n' || (is_name && *b == b':');
    if !value.iter().any(unsafe_byte) {
        dst.extend_from_slice(value);
        return;
    }
    for b in value.iter().filter(|b| !unsafe_byte(b)) {
        dst.extend_from_slice(std::slice::from_ref(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(v: &[u8], version: Version) -> Vec<u8> {
        let mut dst = BytesMut::new();
        escape_into(v, version, &mut dst);
        dst.to_vec()
    }

    #[test]
    fn every_escape_in_each_version() {
        let cases: [(&[u8], &[u8]); 3] = [(b"\\n", b"\n"), (b"\\c", b":"), (b"\\\\", b"\\")];
        for v in [Version::V1_1, Version::V1_2] {
            for (raw, want) in cases {
                assert_eq!(unescape(raw, v).unwrap().as_ref(), want, "{v:?}");
            }
        }
        assert_eq!(unescape(b"a\\rb", Version::V1_2).unwrap().as_ref(), b"a\rb");
        assert_eq!(unescape(b"a\\rb", Version::V1_1), Err(EscapeError));
        // 1.0 has no escapes: backslashes are plain bytes.
        assert_eq!(
            unescape(b"a\\tb\\", Version::V1_0).unwrap().as_ref(),
            b"a\\tb\\"
        );
    }

    #[test]
    fn undefined_escapes_are_errors() {
        for v in [Version::V1_1, Version::V1_2] {
            assert_eq!(unescape(b"\\t", v), Err(EscapeError));
            assert_eq!(unescape(b"abc\\", v), Err(EscapeError));
            assert_eq!(unescape(b"\\\\\\", v), Err(EscapeError));
        }
    }

    #[test]
    fn unescape_borrows_when_nothing_changes() {
        assert!(matches!(
            unescape(b"plain", Version::V1_2),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(
            unescape(b"a\\c\\\\b\\n", Version::V1_1).unwrap().as_ref(),
            b"a:\\b\n"
        );
    }

    #[test]
    fn escape_round_trips_and_drops_what_cannot_be_written() {
        let v = b"a:b\\c\nd\re";
        assert_eq!(esc(v, Version::V1_2), b"a\\cb\\\\c\\nd\\re");
        assert_eq!(
            unescape(&esc(v, Version::V1_2), Version::V1_2)
                .unwrap()
                .as_ref(),
            v
        );
        assert_eq!(esc(v, Version::V1_1), b"a\\cb\\\\c\\nde");
        assert_eq!(esc(v, Version::V1_0), b"a:b\\cde");
        let mut dst = BytesMut::new();
        write_verbatim(b"x:y\r\nz", true, &mut dst);
        assert_eq!(&dst[..], b"xyz");
    }
}
