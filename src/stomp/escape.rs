//! Header escaping per version. (STUB: codec helper owns it.)

use std::borrow::Cow;

use bytes::BytesMut;

use super::Version;

/// An undefined escape sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undefined escape sequence in header")]
pub struct EscapeError;

/// Unescapes a raw header name or value.
pub fn unescape(raw: &[u8], version: Version) -> Result<Cow<'_, [u8]>, EscapeError> {
    let _ = version;
    Ok(Cow::Borrowed(raw))
}

/// Escapes a header name or value into `dst`.
pub fn escape_into(value: &[u8], version: Version, dst: &mut BytesMut) {
    let _ = version;
    dst.extend_from_slice(value);
}
