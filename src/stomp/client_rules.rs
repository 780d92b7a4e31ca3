//! The brokers' framing, applied to what a client sends: a frame the gateway forwards must be
//! split and read by the broker exactly as the gateway split and read it (invariant 1).
//!
//! RabbitMQ 3.10 (`rabbit_stomp_frame`) and ActiveMQ 5.17 (`StompWireFormat`) read client
//! frames alike in most things and differently in a few; checked against both on the wire:
//!
//! | construct | RabbitMQ | ActiveMQ | here |
//! |---|---|---|---|
//! | `content-length` | SEND only | SEND only | SEND only; refused elsewhere |
//! | body on another command | read to the first NUL, ignored | same | refused |
//! | NUL in a header line | part of the value | part of the value | refused |
//! | NUL / EOL between frames | skipped | skipped (blank and NUL-only lines) | skipped |
//! | CR LF as EOL | yes, any version | yes in 1.0 and 1.2; in 1.1 the CR stays in the value | re-encoded with LF |
//! | CR not before LF | error | part of the line | refused |
//! | `\n` `\c` `\\` in values | unescaped, every version and command | same | unescaped in 1.1+; refused in 1.0 |
//! | `\r` in values | unescaped | kept as two bytes | refused |
//! | escape in a name | unescaped | kept | refused |
//! | header line `:` (empty name) | a header | ends the header block | refused |
//! | 1.0 value with outer spaces | left-trimmed | trimmed | refused |
//! | `Content-Length` (other case) | ignored | ignored | refused |
//!
//! Where the brokers agree with each other, the gateway reads a frame their way; where they do
//! not (or would not agree with a plain STOMP reader), it refuses the frame rather than guess
//! which broker is behind it. The one normalisation is CR LF: a frame that used it is
//! re-encoded with LF, which every reader splits the same way. CONNECT headers are checked by
//! [`check_connect_header`] (the relay knows which of them reach the broker).

use super::frame::wire_lines;
use super::{Command, DecodeError, Version};

/// Why a header is refused as ambiguous (the `message` of [`DecodeError::AmbiguousHeader`]).
pub(super) mod why {
    pub const BARE_CR: &str = "CR not followed by LF";
    pub const EMPTY_NAME: &str = "header with an empty name";
    pub const ESCAPED_NAME: &str = "escape sequence in a header name";
    pub const CR_ESCAPE: &str = "`\\r` escape (brokers read it differently)";
    pub const ESCAPE_IN_1_0: &str = "backslash in a STOMP 1.0 or CONNECT header";
    pub const PADDED_VALUE: &str =
        "space or control byte around a STOMP 1.0 or CONNECT header value";
    pub const ODD_CASE_CONTENT_LENGTH: &str = "content-length in another letter case";
}

/// What [`check_head`] found in a head it accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Head {
    /// The frame used CR LF: it must be re-encoded (with LF) before it is forwarded.
    pub crlf: bool,
    /// Some header value has escapes (all checked): its lines must be unescaped when read.
    pub escaped: bool,
}

/// Checks the head of a client frame (`head`: command line through the blank line) for the
/// bytes that make brokers split or read it differently. `block` is the range of its header
/// lines within `head`. One search over the head finds none of them in nearly every frame.
pub(super) fn check_head(
    head: &[u8],
    block: (usize, usize),
    command: Command,
    version: Version,
) -> Result<Head, DecodeError> {
    let plain_1_0 = version == Version::V1_0 && command.escapes_headers();
    let lines = &head[block.0..block.1];
    let Some(first) = memchr::memchr3(b'\0', b'\r', b'\\', head) else {
        if plain_1_0 {
            check_1_0_values(lines)?;
        }
        return Ok(Head::default());
    };
    if memchr::memchr(b'\0', &head[first..]).is_some() {
        return Err(DecodeError::NulInHeaders);
    }
    let crlf = check_crs(&head[first..])?;
    let backslash = memchr::memchr(b'\\', lines).is_some();
    if plain_1_0 {
        if backslash {
            return Err(DecodeError::AmbiguousHeader(why::ESCAPE_IN_1_0));
        }
        check_1_0_values(lines)?;
    } else if backslash && command.escapes_headers() {
        check_escapes(lines, version)?;
    }
    Ok(Head {
        crlf,
        escaped: backslash && !plain_1_0 && command.escapes_headers(),
    })
}

/// Every CR must end a line; true when there is at least one.
fn check_crs(bytes: &[u8]) -> Result<bool, DecodeError> {
    let mut any = false;
    for cr in memchr::memchr_iter(b'\r', bytes) {
        if bytes.get(cr + 1) != Some(&b'\n') {
            return Err(DecodeError::AmbiguousHeader(why::BARE_CR));
        }
        any = true;
    }
    Ok(any)
}

/// STOMP 1.1+ header lines: no escape in a name, only `\n` `\c` `\\` in a value.
fn check_escapes(lines: &[u8], version: Version) -> Result<(), DecodeError> {
    for (name, value) in wire_lines(lines) {
        if memchr::memchr(b'\\', name).is_some() {
            return Err(DecodeError::AmbiguousHeader(why::ESCAPED_NAME));
        }
        check_value_escapes(value, version)?;
    }
    Ok(())
}

fn check_value_escapes(value: &[u8], version: Version) -> Result<(), DecodeError> {
    let mut rest = value;
    while let Some(pos) = memchr::memchr(b'\\', rest) {
        match rest.get(pos + 1) {
            Some(b'n' | b'c' | b'\\') => rest = &rest[pos + 2..],
            Some(b'r') => return Err(DecodeError::AmbiguousHeader(why::CR_ESCAPE)),
            _ => {
                return Err(DecodeError::BadEscape {
                    version: version.as_str(),
                })
            }
        }
    }
    Ok(())
}

/// Both brokers trim STOMP 1.0 values (RabbitMQ on the left, ActiveMQ both ends: Java's
/// `trim`, every byte up to a space): a value they would shorten is refused.
fn check_1_0_values(lines: &[u8]) -> Result<(), DecodeError> {
    for (_, value) in wire_lines(lines) {
        check_unpadded(value)?;
    }
    Ok(())
}

fn check_unpadded(value: &[u8]) -> Result<(), DecodeError> {
    let padded = |b: Option<&u8>| b.is_some_and(|&b| b <= b' ');
    if padded(value.first()) || padded(value.last()) {
        return Err(DecodeError::AmbiguousHeader(why::PADDED_VALUE));
    }
    Ok(())
}

/// A header of a client's CONNECT that will reach the broker. CONNECT headers are not escaped
/// (STOMP 1.1+), yet both brokers unescape them, and ActiveMQ reads CONNECT as 1.0 (trimming
/// values): a backslash or a padded value would be read differently, so it is refused.
pub fn check_connect_header(name: &[u8], value: &[u8]) -> Result<(), DecodeError> {
    if memchr::memchr(b'\\', name).is_some() || memchr::memchr(b'\\', value).is_some() {
        return Err(DecodeError::AmbiguousHeader(why::ESCAPE_IN_1_0));
    }
    check_unpadded(value)
}

/// Per header line of a client frame, as it arrives: a name, and `content-length` only as
/// SEND's and only in lower case.
pub(super) fn check_header_name(name: &[u8], command: Command) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::AmbiguousHeader(why::EMPTY_NAME));
    }
    if name.len() == CONTENT_LENGTH.len() && name.eq_ignore_ascii_case(CONTENT_LENGTH) {
        if name != CONTENT_LENGTH {
            return Err(DecodeError::AmbiguousHeader(why::ODD_CASE_CONTENT_LENGTH));
        }
        if command != Command::Send {
            return Err(DecodeError::ContentLengthNotAllowed(command.as_str()));
        }
    }
    Ok(())
}

const CONTENT_LENGTH: &[u8] = b"content-length";

#[cfg(test)]
#[path = "client_rules_tests.rs"]
mod tests;
