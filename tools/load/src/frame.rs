//! A minimal STOMP frame encoder and stream parser, enough for load: it finds frame boundaries
//! (`content-length` or the NUL), exposes the command, headers and body, and counts heart-beat
//! EOLs. Independent of the gateway's codec on purpose, so the tool does not measure the code
//! under test with itself.

use bytes::{Buf, Bytes, BytesMut};

/// Largest header block accepted (command line + headers).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A frame the parser could not make sense of.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// No blank line within [`MAX_HEADER_BYTES`].
    #[error("header block longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong,
    /// A body longer than the configured limit.
    #[error("frame body of {0} bytes is over the limit")]
    BodyTooLong(usize),
    /// `content-length` is not a number, or the byte after the body is not NUL.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// One parsed frame: the header block (command line included) and the body.
#[derive(Debug, Clone)]
pub struct Frame {
    head: Bytes,
    /// The frame body.
    pub body: Bytes,
}

impl Frame {
    /// The command line.
    pub fn command(&self) -> &[u8] {
        let end = memchr::memchr(b'\n', &self.head).unwrap_or(self.head.len());
        trim_cr(&self.head[..end])
    }

    /// The first value of header `name` (no unescaping: load never needs it).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head
            .split(|b| *b == b'\n')
            .skip(1)
            .map(trim_cr)
            .find_map(|line| {
                let colon = memchr::memchr(b':', line)?;
                (&line[..colon] == name.as_bytes()).then(|| &line[colon + 1..])
            })
    }

    /// The first value of `name` as text (lossy).
    pub fn header_str(&self, name: &str) -> String {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// What the parser yields.
#[derive(Debug)]
pub enum Item {
    /// A heart-beat EOL between frames.
    Heartbeat,
    /// A whole frame.
    Frame(Frame),
}

/// Incremental parser over a byte stream (chunks in any split).
#[derive(Debug)]
pub struct Parser {
    buf: BytesMut,
    max_body: usize,
    /// Where the scan for the header end or the NUL stopped, so big frames are not rescanned.
    scanned: usize,
}

impl Parser {
    /// A parser refusing bodies over `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            max_body,
            scanned: 0,
        }
    }

    /// Appends bytes read from the link.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next heart-beat or whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<Item>, FrameError> {
        match self.buf.first() {
            None => return Ok(None),
            Some(b'\n') => {
                self.buf.advance(1);
                return Ok(Some(Item::Heartbeat));
            }
            Some(b'\r') if self.buf.get(1) == Some(&b'\n') => {
                self.buf.advance(2);
                return Ok(Some(Item::Heartbeat));
            }
            Some(_) => {}
        }
        let Some((head_len, body_at)) = self.find_head_end()? else {
            return Ok(None);
        };
        let head = &self.buf[..head_len];
        let body_len = match content_length(head)? {
            Some(n) if n > self.max_body => return Err(FrameError::BodyTooLong(n)),
            Some(n) if self.buf.len() < body_at + n + 1 => return Ok(None),
            Some(n) => n,
            None => match self.find_nul(body_at)? {
                Some(n) => n,
                None => return Ok(None),
            },
        };
        if self.buf[body_at + body_len] != 0 {
            return Err(FrameError::Malformed("no NUL after the body"));
        }
        let mut whole = self.buf.split_to(body_at + body_len + 1).freeze();
        self.scanned = 0;
        let head = whole.split_to(head_len);
        whole.advance(body_at - head_len);
        whole.truncate(body_len);
        Ok(Some(Item::Frame(Frame { head, body: whole })))
    }

    /// `(header block length, body offset)` once the blank line is in the buffer.
    fn find_head_end(&mut self) -> Result<Option<(usize, usize)>, FrameError> {
        let from = self.scanned.saturating_sub(3);
        let window = &self.buf[from..self.buf.len().min(MAX_HEADER_BYTES + 4)];
        for i in memchr::memchr_iter(b'\n', window).map(|i| i + from) {
            if i >= 1 && self.buf[i - 1] == b'\n' {
                return Ok(Some((i - 1, i + 1)));
            }
            if i >= 2 && &self.buf[i - 2..i] == b"\n\r" {
                return Ok(Some((i - 2, i + 1)));
            }
        }
        if self.buf.len() > MAX_HEADER_BYTES {
            return Err(FrameError::HeaderTooLong);
        }
        self.scanned = self.buf.len();
        Ok(None)
    }

    /// The body length of a frame without `content-length`: bytes up to the first NUL.
    fn find_nul(&mut self, body_at: usize) -> Result<Option<usize>, FrameError> {
        let from = self.scanned.max(body_at);
        match memchr::memchr(0, &self.buf[from..]) {
            Some(i) => Ok(Some(from + i - body_at)),
            None if self.buf.len() - body_at > self.max_body => {
                Err(FrameError::BodyTooLong(self.buf.len() - body_at))
            }
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }
}

fn content_length(head: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(line) = head
        .split(|b| *b == b'\n')
        .skip(1)
        .map(trim_cr)
        .find(|l| l.starts_with(b"content-length:"))
    else {
        return Ok(None);
    };
    std::str::from_utf8(&line[b"content-length:".len()..])
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or(FrameError::Malformed("bad content-length"))
}

/// Encodes a frame; adds `content-length` when `body` is not empty.
pub fn encode(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + body.len() + headers.len() * 32);
    out.extend_from_slice(command.as_bytes());
    out.extend_from_slice(b"\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b":");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\0");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parser: &mut Parser) -> Vec<Item> {
        std::iter::from_fn(|| parser.next_item().unwrap()).collect()
    }

    #[test]
    fn parses_any_split() {
        let mut wire = b"\n".to_vec();
        wire.extend_from_slice(&encode("MESSAGE", &[("destination", "/q/a")], b"a\0b"));
        wire.extend_from_slice(b"RECEIPT\r\nreceipt-id:7\r\n\r\n\0");
        for step in 1..wire.len() {
            let mut p = Parser::new(1024);
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                p.push(chunk);
                got.extend(frames(&mut p));
            }
            assert_eq!(got.len(), 3, "split {step}");
            let Item::Frame(m) = &got[1] else {
                panic!("not a frame")
            };
            assert_eq!(m.command(), b"MESSAGE");
            assert_eq!(m.header("destination"), Some(&b"/q/a"[..]));
            assert_eq!(&m.body[..], b"a\0b");
            let Item::Frame(r) = &got[2] else {
                panic!("not a frame")
            };
            assert_eq!(r.command(), b"RECEIPT");
            assert_eq!(r.header_str("receipt-id"), "7");
            assert!(r.body.is_empty());
        }
    }

    #[test]
    fn refuses_oversized_bodies() {
        let mut p = Parser::new(4);
        p.push(&encode("SEND", &[], b"12345"));
        assert!(matches!(p.next_item(), Err(FrameError::BodyTooLong(5))));
        let mut p = Parser::new(4);
        p.push(b"SEND\n\n123456");
        assert!(matches!(p.next_item(), Err(FrameError::BodyTooLong(_))));
    }
}
