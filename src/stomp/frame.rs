//! A decoded STOMP frame: command, ordered headers (repeats kept, first wins), body.

use bytes::Bytes;

use super::Command;

/// One header, with its name and value already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name (case-sensitive, as STOMP says).
    pub name: Bytes,
    /// Header value.
    pub value: Bytes,
}

impl Header {
    /// A header from anything byte-like.
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A STOMP frame. Headers keep their wire order; lookups return the first occurrence, as
/// STOMP 1.1+ requires for repeated headers.
///
/// A decoded frame remembers its original bytes ([`Frame::raw`]); any mutation forgets them,
/// so the encoder can forward an untouched frame without re-encoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    headers: Vec<Header>,
    /// The body (may contain NUL bytes when `content-length` was given).
    pub body: Bytes,
    raw: Option<Bytes>,
}

impl Frame {
    /// An empty frame with this command.
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
            raw: None,
        }
    }

    /// Builder: append a header.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.push_header(name, value);
        self
    }

    /// Builder: set the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.set_body(body);
        self
    }

    /// Assembles a decoded frame together with its original encoding.
    pub fn from_parts(
        command: Command,
        headers: Vec<Header>,
        body: Bytes,
        raw: Option<Bytes>,
    ) -> Self {
        Frame {
            command,
            headers,
            body,
            raw,
        }
    }

    /// All headers in wire order, repeats included.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of `name` as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name == name.as_bytes())
            .map(|h| &h.value)
    }

    /// The first value of `name`, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// How many times `name` appears (exact case).
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|h| h.name == name.as_bytes())
            .count()
    }

    /// Appends a header (after any existing copies, so it loses to them).
    pub fn push_header(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.raw = None;
        self.headers.push(Header::new(name, value));
    }

    /// Removes every header for which `pred` is true; returns how many went.
    pub fn remove_headers_where(&mut self, mut pred: impl FnMut(&Header) -> bool) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| !pred(h));
        let removed = before - self.headers.len();
        if removed > 0 {
            self.raw = None;
        }
        removed
    }

    /// Removes every copy of `name` (exact case) and puts one copy first.
    pub fn set_header_first(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        self.remove_headers_where(|h| h.name == name);
        self.raw = None;
        self.headers.insert(0, Header::new(name, value));
    }

    /// Replaces the body (the encoder writes a fresh `content-length`).
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.raw = None;
        self.body = body.into();
    }

    /// The original bytes of a decoded frame that has not been changed since.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// Forgets the original encoding (e.g. when re-encoding for another version).
    pub fn clear_raw(&mut self) {
        self.raw = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_header_wins_and_set_first_replaces_all() {
        let mut f = Frame::new(Command::Connect)
            .with_header("login", "a")
            .with_header("login", "b");
        assert_eq!(f.header("login"), Some("a"));
        assert_eq!(f.header_count("login"), 2);
        f.set_header_first("login", "svc");
        assert_eq!(f.header_count("login"), 1);
        assert_eq!(f.headers()[0].value, "svc");
    }

    #[test]
    fn mutation_forgets_raw() {
        let mut f = Frame::from_parts(
            Command::Send,
            vec![],
            Bytes::new(),
            Some(Bytes::from_static(b"SEND\n\n\0")),
        );
        assert!(f.raw().is_some());
        f.push_header("x", "y");
        assert!(f.raw().is_none());
    }
}
