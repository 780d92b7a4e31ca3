//! STOMP encoder.
//!
//! A frame that still has its original bytes ([`Frame::raw`]) is written as it came: the
//! gateway forwards untouched frames without re-encoding them. (Whoever changes the version a
//! frame is written in must [`Frame::clear_raw`] first.) Any other frame is written with LF
//! line endings, headers escaped per version and command, and a freshly computed
//! `content-length` whenever the body is not empty, so NULs in a body are always safe.
//!
//! Encoding cannot fail: bytes that cannot be represented in a header (see
//! [`escape`](super::escape)) are dropped rather than written.

use bytes::BytesMut;

use super::escape::{escape_into, write_verbatim};
use super::{Frame, Version};

/// Room for `content-length:` + 20 digits + EOLs + NUL, so one `reserve` covers the frame.
const FRAME_OVERHEAD_BYTES: usize = 48;

/// Writes `frame` to `dst` with the escaping rules of `version`.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    if let Some(raw) = frame.raw() {
        dst.extend_from_slice(raw);
        return;
    }
    dst.reserve(encoded_len_hint(frame));
    dst.extend_from_slice(frame.command.as_str().as_bytes());
    dst.extend_from_slice(b"\n");
    let escapes = version != Version::V1_0 && frame.command.escapes_headers();
    for h in frame.headers() {
        if h.name == "content-length" {
            continue;
        }
        if escapes {
            escape_into(&h.name, version, dst);
            dst.extend_from_slice(b":");
            escape_into(&h.value, version, dst);
        } else {
            write_verbatim(&h.name, true, dst);
            dst.extend_from_slice(b":");
            write_verbatim(&h.value, false, dst);
        }
        dst.extend_from_slice(b"\n");
    }
    if !frame.body().is_empty() {
        dst.extend_from_slice(b"content-length:");
        write_decimal(frame.body().len(), dst);
        dst.extend_from_slice(b"\n");
    }
    dst.extend_from_slice(b"\n");
    dst.extend_from_slice(frame.body());
    dst.extend_from_slice(b"\0");
}

/// Writes a heart-beat (one EOL).
pub fn encode_heartbeat(dst: &mut BytesMut) {
    dst.extend_from_slice(b"\n");
}

/// Writes `n` in decimal without allocating.
fn write_decimal(mut n: usize, dst: &mut BytesMut) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
}

/// The encoded size of `frame` before escaping (escapes may add a little).
fn encoded_len_hint(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers()
        .iter()
        .map(|h| h.name.len() + h.value.len() + 2)
        .sum();
    frame.command.as_str().len() + headers + frame.body().len() + FRAME_OVERHEAD_BYTES
}
