//! Incremental STOMP decoder with limits enforced while streaming. (STUB: codec helper owns it.)

use bytes::BytesMut;

use super::{Frame, Version};

/// Size limits enforced while a frame streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of command line + header block (up to the blank line).
    pub max_header_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Body bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A lone EOL between frames.
    Heartbeat,
    /// A whole frame.
    Frame(Frame),
}

/// Why a byte stream is not valid STOMP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Placeholder.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Incremental decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    version: Version,
}

impl Decoder {
    /// A decoder with these limits, starting with 1.0 escaping rules until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_0,
        }
    }

    /// Sets the negotiated version (decides header unescaping).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// Decodes the next item from `buf`; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let _ = (buf, self.limits, self.version);
        unimplemented!("codec")
    }
}
