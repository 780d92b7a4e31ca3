//! STOMP encoder. (STUB: codec helper owns it.)

use bytes::BytesMut;

use super::{Frame, Version};

/// Writes `frame` to `dst` with the escaping rules of `version`.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    let _ = (frame, version, dst);
    unimplemented!("codec")
}

/// Writes a heart-beat (one EOL).
pub fn encode_heartbeat(dst: &mut BytesMut) {
    dst.extend_from_slice(b"\n");
}
