//! Incremental STOMP decoder with limits enforced while streaming.
//!
//! The decoder is fed one growing `BytesMut` (as `tokio_util::codec::FramedRead` does): it
//! parses header lines as they arrive and remembers where it stopped, so a frame that trickles
//! in one byte at a time is scanned once, not once per byte. Nothing is consumed from the buffer
//! until a whole item is there; then the frame's bytes are split off and frozen: the decoded
//! [`Frame`] keeps them ([`Frame::raw`]), its body is a zero-copy slice of them, and its headers
//! stay in them until asked for (every line was checked on the way in).
//!
//! Callers must not change the buffer's existing bytes between calls (appending is the point),
//! and must treat any error as fatal for the stream: the decoder resets, but the stream is no
//! longer in sync.

use std::ops::Range;

use bytes::{Buf, BytesMut};

use super::escape::unescape;
use super::frame::wire_lines;
use super::{Command, Frame, Version};

/// Longest command line that can be valid: `UNSUBSCRIBE` / `DISCONNECT` plus a CR.
const MAX_COMMAND_LINE_BYTES: usize = 12;

/// Size limits enforced while a frame streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of command line + header block (up to and including the blank line).
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
    /// A lone EOL (LF or CRLF) between frames.
    Heartbeat,
    /// A whole frame.
    Frame(Frame),
}

/// Why a byte stream is not valid STOMP. `Display` is one line fit for the `message` header of
/// an `ERROR` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The command line is not a STOMP command (shown escaped and truncated).
    #[error("unknown command \"{0}\"")]
    UnknownCommand(String),
    /// A header line has no `:`.
    #[error("header line without ':'")]
    HeaderWithoutColon,
    /// A header uses an escape sequence its version does not define.
    #[error("undefined escape sequence in a {version} header")]
    BadEscape {
        /// The version whose escaping rules applied (`1.1` or `1.2`).
        version: &'static str,
    },
    /// More header lines than allowed.
    #[error("frame has more than {limit} headers")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The command line and headers are longer than allowed.
    #[error("frame headers exceed the {limit}-byte limit")]
    HeaderTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is (or is announced to be) longer than allowed.
    #[error("frame body exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// `content-length` is not a plain decimal number.
    #[error("content-length is not a decimal number")]
    BadContentLength,
    /// `content-length` appears more than once (ambiguous, so refused).
    #[error("content-length header appears more than once")]
    RepeatedContentLength,
    /// The byte after a `content-length` body is not NUL.
    #[error("frame body is longer than its content-length")]
    MissingNul,
}

impl DecodeError {
    /// Whether the frame was refused for its size (maps to WebSocket close 1009).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            DecodeError::TooManyHeaders { .. }
                | DecodeError::HeaderTooLarge { .. }
                | DecodeError::BodyTooLarge { .. }
        )
    }
}

/// Where the decoder is within the frame at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between frames: heart-beats or the start of a command line.
    Idle,
    /// Reading header lines; `line_start` is where the next unparsed line begins, `scanned`
    /// how far the search for its LF got (so a long line arriving slowly is scanned once).
    Headers { line_start: usize, scanned: usize },
    /// Reading the body, which starts at `start`; `scanned` is how far the NUL search got.
    Body { start: usize, scanned: usize },
}

/// Incremental decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    stage: Stage,
    command: Option<Command>,
    /// Header lines read so far in this frame.
    header_count: usize,
    /// Where the header lines start (after the command line) and end (before the blank line).
    block: (usize, usize),
    /// The version whose escapes a header line of this frame used, if any did.
    escapes: Option<Version>,
    content_length: Option<usize>,
}

impl Decoder {
    /// A decoder with these limits, starting with 1.0 escaping rules until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_0,
            stage: Stage::Idle,
            command: None,
            header_count: 0,
            block: (0, 0),
            escapes: None,
            content_length: None,
        }
    }

    /// Sets the negotiated version (decides header unescaping). Takes effect for frames whose
    /// header lines have not been parsed yet.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version whose escaping rules apply.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the limits (the relay widens them once a client has authenticated). Takes
    /// effect from the next frame: call it between frames.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Decodes the next item from `buf`; `Ok(None)` when more bytes are needed.
    ///
    /// Each call yields at most one item, so a flood of heart-beat EOLs costs O(1) per call and
    /// the caller's loop sees every one. After an error the stream is out of sync: close it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let result = self.decode_inner(buf);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Whether part of a frame has been read and the rest is awaited.
    pub fn in_frame(&self) -> bool {
        self.stage != Stage::Idle
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        if self.scanned() > buf.len() {
            // The caller swapped or consumed the buffer mid-frame: start over rather than trust
            // stale offsets.
            self.reset();
        }
        if self.stage == Stage::Idle {
            match buf.first() {
                None => return Ok(None),
                Some(b'\n') => return Ok(Some(take_heartbeat(buf, 1))),
                Some(b'\r') => match buf.get(1) {
                    None => return Ok(None),
                    Some(b'\n') => return Ok(Some(take_heartbeat(buf, 2))),
                    Some(_) => {}
                },
                Some(_) => {}
            }
            self.stage = Stage::Headers {
                line_start: 0,
                scanned: 0,
            };
        }
        if let Stage::Headers { .. } = self.stage {
            if !self.read_headers(buf)? {
                return Ok(None);
            }
        }
        let Stage::Body { start, scanned } = self.stage else {
            return Ok(None);
        };
        let Some(nul) = self.find_body_end(buf, start, scanned)? else {
            return Ok(None);
        };
        Ok(Some(Item::Frame(self.take_frame(buf, start, nul))))
    }

    /// How many bytes of the buffer the current frame has been scanned through.
    fn scanned(&self) -> usize {
        match self.stage {
            Stage::Idle => 0,
            Stage::Headers { scanned, .. } | Stage::Body { scanned, .. } => scanned,
        }
    }

    fn reset(&mut self) {
        self.stage = Stage::Idle;
        self.command = None;
        self.header_count = 0;
        self.block = (0, 0);
        self.escapes = None;
        self.content_length = None;
    }

    /// Parses every complete header line in the buffer; true once the blank line was read.
    fn read_headers(&mut self, buf: &mut BytesMut) -> Result<bool, DecodeError> {
        let window = &buf[..buf.len().min(self.limits.max_header_bytes)];
        let Stage::Headers {
            mut line_start,
            scanned,
        } = self.stage
        else {
            return Ok(true);
        };
        let from = scanned.max(line_start);
        for lf in memchr::memchr_iter(b'\n', &window[from..]).map(|i| from + i) {
            let end = if lf > line_start && window[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            self.read_line(window, line_start..end, lf + 1)?;
            if !matches!(self.stage, Stage::Headers { .. }) {
                return Ok(true);
            }
            line_start = lf + 1;
        }
        self.stage = Stage::Headers {
            line_start,
            scanned: window.len(),
        };
        self.incomplete_header_line(buf, line_start).map(|()| false)
    }

    /// No LF yet: decide between "wait" and an early refusal.
    fn incomplete_header_line(&self, buf: &BytesMut, line_start: usize) -> Result<(), DecodeError> {
        let limit = self.limits.max_header_bytes;
        let seen = buf.len().min(limit);
        if self.command.is_none() && seen - line_start > MAX_COMMAND_LINE_BYTES {
            return Err(unknown_command(&buf[line_start..seen]));
        }
        if buf.len() > limit {
            return Err(DecodeError::HeaderTooLarge { limit });
        }
        Ok(())
    }

    /// Handles one line of the header block (without its EOL); `next` is where the next starts.
    fn read_line(
        &mut self,
        window: &[u8],
        line: Range<usize>,
        next: usize,
    ) -> Result<(), DecodeError> {
        let Some(command) = self.command else {
            let bytes = &window[line];
            self.command = Some(Command::parse(bytes).ok_or_else(|| unknown_command(bytes))?);
            self.block = (next, next);
            return Ok(());
        };
        if line.is_empty() {
            self.block.1 = line.start;
            self.check_escapes(window, command)?;
            let start = next;
            self.stage = Stage::Body {
                start,
                scanned: start,
            };
            return Ok(());
        }
        self.read_header(window, line, command)
    }

    /// Checks one `name:value` line as it arrives: a colon, and a valid `content-length`. The
    /// line stays where it is; [`Frame`] reads its headers from the frame's bytes. Escapes are
    /// checked once per frame, when the header block is complete ([`Self::check_escapes`]).
    fn read_header(
        &mut self,
        window: &[u8],
        line: Range<usize>,
        command: Command,
    ) -> Result<(), DecodeError> {
        if self.header_count == self.limits.max_headers {
            return Err(DecodeError::TooManyHeaders {
                limit: self.limits.max_headers,
            });
        }
        self.header_count += 1;
        let bytes = &window[line];
        // Names are short: a plain loop beats memchr's setup here.
        let colon = bytes
            .iter()
            .position(|&b| b == b':')
            .ok_or(DecodeError::HeaderWithoutColon)?;
        let (name, value) = (&bytes[..colon], &bytes[colon + 1..]);
        // No escape sequence unescapes to a letter or a dash, so only a name that is exactly
        // `content-length` on the wire can be one; its value is read unescaped when it has an
        // escape (then `1:` from `1\c`, say, is no number).
        if name != b"content-length" {
            return Ok(());
        }
        if self.escape_rules(command) && memchr::memchr(b'\\', value).is_some() {
            let value = unescape(value, self.version).map_err(|_| self.bad_escape())?;
            return self.set_content_length(&value);
        }
        self.set_content_length(value)
    }

    /// Whether this frame's header lines are unescaped (STOMP 1.1+, except CONNECT/CONNECTED).
    fn escape_rules(&self, command: Command) -> bool {
        self.version != Version::V1_0 && command.escapes_headers()
    }

    fn bad_escape(&self) -> DecodeError {
        DecodeError::BadEscape {
            version: self.version.as_str(),
        }
    }

    /// Once the header block is complete: every escape in it must be one the version defines.
    /// One search over the block finds none in nearly every frame; otherwise every line is
    /// unescaped to check it, and the frame remembers that its lines need unescaping.
    fn check_escapes(&mut self, window: &[u8], command: Command) -> Result<(), DecodeError> {
        let block = &window[self.block.0..self.block.1];
        if !self.escape_rules(command) || memchr::memchr(b'\\', block).is_none() {
            return Ok(());
        }
        for (name, value) in wire_lines(block) {
            if unescape(name, self.version).is_err() || unescape(value, self.version).is_err() {
                return Err(self.bad_escape());
            }
        }
        self.escapes = Some(self.version);
        Ok(())
    }

    fn set_content_length(&mut self, value: &[u8]) -> Result<(), DecodeError> {
        if self.content_length.is_some() {
            return Err(DecodeError::RepeatedContentLength);
        }
        let len = parse_decimal(value).ok_or(DecodeError::BadContentLength)?;
        if len > self.limits.max_body_bytes {
            return Err(DecodeError::BodyTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        self.content_length = Some(len);
        Ok(())
    }

    /// The index of the NUL ending the body starting at `start`, once it is in the buffer.
    fn find_body_end(
        &mut self,
        buf: &mut BytesMut,
        start: usize,
        scanned: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let limit = self.limits.max_body_bytes;
        if let Some(len) = self.content_length {
            let nul = start + len;
            return match buf.get(nul) {
                Some(0) => Ok(Some(nul)),
                Some(_) => Err(DecodeError::MissingNul),
                None => {
                    buf.reserve(nul + 1 - buf.len());
                    Ok(None)
                }
            };
        }
        // Without content-length the body ends at the first NUL, at most `limit` bytes in.
        let window_end = buf.len().min(start + limit + 1);
        if let Some(i) = memchr::memchr(0, &buf[scanned..window_end]) {
            return Ok(Some(scanned + i));
        }
        if buf.len() > start + limit {
            return Err(DecodeError::BodyTooLarge { limit });
        }
        self.stage = Stage::Body {
            start,
            scanned: window_end,
        };
        Ok(None)
    }

    /// Splits the whole frame (through its NUL) off the buffer and assembles it.
    fn take_frame(&mut self, buf: &mut BytesMut, body_start: usize, nul: usize) -> Frame {
        let raw = buf.split_to(nul + 1).freeze();
        let command = self.command.take().unwrap_or(Command::Send);
        let (block, escapes) = (self.block, self.escapes);
        self.reset();
        Frame::from_wire(command, raw, block, escapes, (body_start, nul))
    }
}

fn take_heartbeat(buf: &mut BytesMut, eol_len: usize) -> Item {
    buf.advance(eol_len);
    Item::Heartbeat
}

/// A plain non-negative decimal (digits only, no sign, no spaces), without overflow.
fn parse_decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |acc, &b| {
        let digit = b.is_ascii_digit().then(|| usize::from(b - b'0'))?;
        acc.checked_mul(10)?.checked_add(digit)
    })
}

fn unknown_command(line: &[u8]) -> DecodeError {
    let shown = &line[..line.len().min(MAX_COMMAND_LINE_BYTES)];
    DecodeError::UnknownCommand(shown.escape_ascii().to_string())
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
