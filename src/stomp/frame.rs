//! A STOMP frame: command, ordered headers (repeats kept, first wins), body.
//!
//! A decoded frame keeps its headers where they arrived, in its raw bytes: looking one up scans
//! the header lines, and a header list ([`Header`]s) is only built when something asks for all
//! of them. The relay forwards most frames after reading one header or none, so most frames
//! never get a list.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;

use super::escape::unescape;
use super::{Command, Version};

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

/// Where a frame's headers are.
#[derive(Clone)]
enum Headers {
    /// A list: the frame was built or changed, or decoded before lists became lazy.
    List(Vec<Header>),
    /// Still in the raw bytes.
    Wire(WireHeaders),
}

/// The header lines of a decoded frame, as a range of its raw bytes.
#[derive(Clone)]
struct WireHeaders {
    /// From the first header line through the EOL of the last one (empty: no headers).
    start: usize,
    end: usize,
    /// The version whose escapes some header line uses; `None` when no line needs unescaping
    /// (then names and values are exactly the raw bytes).
    escapes: Option<Version>,
    /// The list, once built.
    list: OnceLock<Vec<Header>>,
}

/// A STOMP frame. Headers keep their wire order; lookups return the first occurrence, as
/// STOMP 1.1+ requires for repeated headers.
///
/// A decoded frame remembers its original bytes ([`Frame::raw`]); any mutation forgets them,
/// so the encoder can forward an untouched frame without re-encoding it.
#[derive(Clone)]
pub struct Frame {
    /// The command.
    pub command: Command,
    headers: Headers,
    body: Body,
    raw: Option<Bytes>,
}

/// Where a frame's body is.
#[derive(Clone)]
enum Body {
    /// Its own bytes: the frame was built or changed.
    Own(Bytes),
    /// `raw[start..end]` of a decoded frame (no `Bytes` of its own until asked for one).
    Wire { start: usize, end: usize },
}

impl Frame {
    /// An empty frame with this command.
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Headers::List(Vec::new()),
            body: Body::Own(Bytes::new()),
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

    /// Assembles a frame from a header list, with its original encoding if it has one.
    pub fn from_parts(
        command: Command,
        headers: Vec<Header>,
        body: Bytes,
        raw: Option<Bytes>,
    ) -> Self {
        Frame {
            command,
            headers: Headers::List(headers),
            body: Body::Own(body),
            raw,
        }
    }

    /// A decoded frame whose header lines are `raw[start..end]` (each `name:value` plus its
    /// EOL, already checked), unescaped with `escapes` where a line has a backslash, and whose
    /// body is `raw[body.0..body.1]`.
    pub(super) fn from_wire(
        command: Command,
        raw: Bytes,
        (start, end): (usize, usize),
        escapes: Option<Version>,
        body: (usize, usize),
    ) -> Self {
        Frame {
            command,
            headers: Headers::Wire(WireHeaders {
                start,
                end,
                escapes,
                list: OnceLock::new(),
            }),
            body: Body::Wire {
                start: body.0,
                end: body.1,
            },
            raw: Some(raw),
        }
    }

    /// All headers in wire order, repeats included. For a decoded frame the list is built on
    /// first use.
    pub fn headers(&self) -> &[Header] {
        match &self.headers {
            Headers::List(list) => list,
            Headers::Wire(w) => w.list.get_or_init(|| build_list(self.raw_bytes(), w)),
        }
    }

    /// The first value of `name` as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                wire_values(&self.raw_bytes()[w.start..w.end], name).next()
            }
            _ => self
                .headers()
                .iter()
                .find(|h| h.name == name)
                .map(|h| &h.value[..]),
        }
    }

    /// The first value of `name` as `Bytes` (sharing the frame's memory, no copy).
    pub fn header_value(&self, name: &str) -> Option<Bytes> {
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                let value = self.header_bytes(name)?;
                Some(self.raw_bytes().slice_ref(value))
            }
            _ => self
                .headers()
                .iter()
                .find(|h| h.name == name.as_bytes())
                .map(|h| h.value.clone()),
        }
    }

    /// The first value of `name`, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` (exact case), and whether another line names it too: one
    /// pass over the header lines where [`Self::header_bytes`] and [`Self::header_count`] would
    /// take two.
    pub fn first_header(&self, name: &str) -> (Option<&[u8]>, bool) {
        let name_bytes = name.as_bytes();
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                let mut values = wire_values(&self.raw_bytes()[w.start..w.end], name_bytes);
                let first = values.next();
                (first, first.is_some() && values.next().is_some())
            }
            _ => {
                let mut values = self.headers().iter().filter(|h| h.name == name_bytes);
                let first = values.next().map(|h| &h.value[..]);
                (first, first.is_some() && values.next().is_some())
            }
        }
    }

    /// [`Frame::first_header`], and whether any header starts as `flagged` accepts (it sees
    /// what [`Frame::try_for_each_header_where`]'s `wanted` sees): the relay's one pass over the
    /// header lines for the `destination` and for a hint of headers to look at more closely.
    pub fn first_header_flagging(
        &self,
        name: &str,
        flagged: impl Fn(&[u8]) -> bool,
    ) -> (Option<&[u8]>, bool, bool) {
        let name_bytes = name.as_bytes();
        let mut values: Vec<&[u8]> = Vec::new();
        let (mut first, mut repeated, mut flag) = (None, false, false);
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                let block = &self.raw_bytes()[w.start..w.end];
                let mut start = 0;
                for lf in memchr::memchr_iter(b'\n', block) {
                    let line = &block[start..lf];
                    start = lf + 1;
                    flag |= flagged(line);
                    // As in `wire_values`: the colon right after the name's length decides.
                    if line.get(name_bytes.len()) == Some(&b':') && line.starts_with(name_bytes) {
                        let value = &line[name_bytes.len() + 1..];
                        repeated |= first.is_some();
                        first = first.or(Some(value.strip_suffix(b"\r").unwrap_or(value)));
                    }
                }
            }
            _ => {
                for h in self.headers() {
                    flag |= flagged(&h.name);
                    if h.name == name_bytes {
                        values.push(&h.value);
                    }
                }
                first = values.first().copied();
                repeated = values.len() > 1;
            }
        }
        (first, repeated, flag)
    }

    /// How many times `name` appears (exact case).
    pub fn header_count(&self, name: &str) -> usize {
        let name = name.as_bytes();
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                wire_values(&self.raw_bytes()[w.start..w.end], name).count()
            }
            _ => self.headers().iter().filter(|h| h.name == name).count(),
        }
    }

    /// Appends a header (after any existing copies, so it loses to them).
    pub fn push_header(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.list_mut().push(Header::new(name, value));
    }

    /// Removes every header for which `pred` is true; returns how many went.
    pub fn remove_headers_where(&mut self, mut pred: impl FnMut(&Header) -> bool) -> usize {
        if !self.headers().iter().any(&mut pred) {
            return 0;
        }
        let list = self.list_mut();
        let before = list.len();
        list.retain(|h| !pred(h));
        before - list.len()
    }

    /// Removes every copy of `name` (exact case) and puts one copy first.
    pub fn set_header_first(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let list = self.list_mut();
        list.retain(|h| h.name != name);
        list.insert(0, Header::new(name, value));
    }

    /// The body (may contain NUL bytes when `content-length` was given).
    pub fn body(&self) -> &[u8] {
        match self.body {
            Body::Own(ref body) => body,
            Body::Wire { start, end } => &self.raw_bytes()[start..end],
        }
    }

    /// The body as `Bytes` (sharing the frame's memory, no copy).
    pub fn body_bytes(&self) -> Bytes {
        match self.body {
            Body::Own(ref body) => body.clone(),
            Body::Wire { start, end } => self.raw_bytes().slice(start..end),
        }
    }

    /// Replaces the body (the encoder writes a fresh `content-length`).
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.clear_raw();
        self.body = Body::Own(body.into());
    }

    /// The original bytes of a decoded frame that has not been changed since.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The original bytes, taken out of the frame (for a relay that forwards it as it came).
    pub fn into_raw(self) -> Option<Bytes> {
        self.raw
    }

    /// Forgets the original encoding (e.g. when re-encoding for another version).
    pub fn clear_raw(&mut self) {
        self.list_mut();
    }

    /// Calls `f` with every header's `(name, value)`, in wire order, repeats included, values
    /// unescaped; stops at the first error. A decoded frame that needed no unescaping is read
    /// in place, without building a header list (the relay's per-frame header checks).
    pub fn try_for_each_header<'a, E>(
        &'a self,
        f: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.try_for_each_header_where(|_| true, f)
    }

    /// [`Frame::try_for_each_header`] for the headers `wanted` lets through. `wanted` sees the
    /// start of each header: its name, possibly followed by the rest of its line (`:` and the
    /// value), so it can only test a prefix of the name; lines it refuses are not split.
    pub fn try_for_each_header_where<'a, E>(
        &'a self,
        wanted: impl Fn(&[u8]) -> bool,
        mut f: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.headers {
            Headers::Wire(w) if w.escapes.is_none() => {
                let block = &self.raw_bytes()[w.start..w.end];
                let mut start = 0;
                for lf in memchr::memchr_iter(b'\n', block) {
                    let line = &block[start..lf];
                    start = lf + 1;
                    if line.is_empty() || !wanted(line) {
                        continue;
                    }
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let colon = memchr::memchr(b':', line).unwrap_or(line.len());
                    f(&line[..colon], line.get(colon + 1..).unwrap_or_default())?;
                }
                Ok(())
            }
            _ => self
                .headers()
                .iter()
                .filter(|h| wanted(&h.name))
                .try_for_each(|h| f(&h.name, &h.value)),
        }
    }

    /// The header list, built if need be, to be changed: the raw bytes no longer match.
    fn list_mut(&mut self) -> &mut Vec<Header> {
        if let Headers::Wire(w) = &mut self.headers {
            let list = match w.list.take() {
                Some(list) => list,
                None => build_list(self.raw.as_ref().unwrap_or(&Bytes::new()), w),
            };
            self.headers = Headers::List(list);
        }
        // The body gets bytes of its own before the raw bytes it pointed into go.
        if let Body::Wire { .. } = self.body {
            self.body = Body::Own(self.body_bytes());
        }
        self.raw = None;
        match &mut self.headers {
            Headers::List(list) => list,
            Headers::Wire(_) => unreachable!("converted above"),
        }
    }

    /// The raw bytes a `Wire` header range points into.
    fn raw_bytes(&self) -> &Bytes {
        static EMPTY: Bytes = Bytes::from_static(b"");
        self.raw.as_ref().unwrap_or(&EMPTY)
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
            && self.body() == other.body()
            && self.raw == other.raw
            && self.headers() == other.headers()
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("command", &self.command)
            .field("headers", &self.headers())
            .field("body", &self.body_bytes())
            .field("raw", &self.raw)
            .finish()
    }
}

/// `(name, value)` of each header line in `block` (lines end in LF or CRLF; each has a colon,
/// the decoder checked). Nothing is unescaped.
pub(super) fn wire_lines(block: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    block
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            (&line[..colon], line.get(colon + 1..).unwrap_or_default())
        })
}

/// The values of the header lines in `block` named `name` (nothing unescaped). A name with a
/// colon matches nothing: in a line without escapes the first colon ends the name.
fn wire_values<'a, 'n>(
    block: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    // (`[u8]::contains` goes through core's generic memchr, several times the cost here.)
    let searchable = memchr::memchr(b':', name).is_none();
    let mut start = 0;
    memchr::memchr_iter(b'\n', block).filter_map(move |lf| {
        let line = &block[start..lf];
        start = lf + 1;
        // The colon right after the name's length rules out most lines before comparing names.
        if !searchable || line.get(name.len()) != Some(&b':') || !line.starts_with(name) {
            return None;
        }
        let value = &line[name.len() + 1..];
        Some(value.strip_suffix(b"\r").unwrap_or(value))
    })
}

/// The header list of a decoded frame, as zero-copy slices of `raw` where nothing needed
/// unescaping.
fn build_list(raw: &Bytes, w: &WireHeaders) -> Vec<Header> {
    let part = |bytes: &[u8]| -> Bytes {
        let Some(version) = w.escapes else {
            return raw.slice_ref(bytes);
        };
        match unescape(bytes, version) {
            Ok(std::borrow::Cow::Owned(v)) => Bytes::from(v),
            // Unchanged, or (not expected: the decoder checked every escape) undefined.
            Ok(std::borrow::Cow::Borrowed(_)) | Err(_) => raw.slice_ref(bytes),
        }
    };
    wire_lines(&raw[w.start..w.end])
        .map(|(name, value)| Header {
            name: match well_known_name(name) {
                Some(known) => Bytes::from_static(known),
                None => part(name),
            },
            value: part(value),
        })
        .collect()
}

/// A static copy of `name` when it is common enough to be worth it: a static `Bytes` costs no
/// reference count on clone or drop.
fn well_known_name(name: &[u8]) -> Option<&'static [u8]> {
    let known: &'static [u8] = match name {
        b"content-length" => b"content-length",
        b"content-type" => b"content-type",
        b"destination" => b"destination",
        b"subscription" => b"subscription",
        b"message-id" => b"message-id",
        b"receipt" => b"receipt",
        b"receipt-id" => b"receipt-id",
        b"id" => b"id",
        b"ack" => b"ack",
        b"transaction" => b"transaction",
        b"message" => b"message",
        b"version" => b"version",
        b"heart-beat" => b"heart-beat",
        b"server" => b"server",
        b"session" => b"session",
        b"host" => b"host",
        b"login" => b"login",
        b"passcode" => b"passcode",
        b"accept-version" => b"accept-version",
        b"persistent" => b"persistent",
        b"reply-to" => b"reply-to",
        b"redelivered" => b"redelivered",
        _ => return None,
    };
    Some(known)
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

    #[test]
    fn a_decoded_body_outlives_the_raw_bytes_it_was_read_from() {
        let raw = Bytes::from_static(b"SEND\na:1\n\nhello\0");
        let mut f = Frame::from_wire(Command::Send, raw.clone(), (5, 9), None, (10, 15));
        assert_eq!(f.body(), b"hello");
        assert_eq!(f.body_bytes(), "hello");
        assert_eq!(f.body().as_ptr(), raw[10..].as_ptr(), "read in place");
        let copy = f.clone();
        f.push_header("b", "2");
        assert!(f.raw().is_none());
        assert_eq!(f.body(), b"hello", "kept when the raw bytes went");
        assert_eq!(f.header("a"), Some("1"));
        assert_ne!(f, copy);
        f.set_body("bye");
        assert_eq!(f.body(), b"bye");
        assert_eq!(copy.body(), b"hello");
    }

    /// `SEND` with these header lines (LF or CRLF), as the decoder would hand it over.
    fn wire(lines: &[u8], escapes: Option<Version>) -> Frame {
        let mut raw = b"SEND\n".to_vec();
        raw.extend_from_slice(lines);
        let end = raw.len();
        raw.extend_from_slice(b"\n\0");
        Frame::from_wire(
            Command::Send,
            Bytes::from(raw),
            (5, end),
            escapes,
            (end + 1, end + 1),
        )
    }

    #[test]
    fn wire_headers_are_looked_up_without_a_list_and_listed_on_demand() {
        let f = wire(
            b"destination:/q/a\r\nx-empty:\nreceipt:r:1\ndestination-x:/q/c\ndestination:/q/b\n",
            None,
        );
        assert_eq!(f.header("destination-x"), Some("/q/c"));
        assert_eq!(f.header("receipt:r"), None, "the first colon ends a name");
        assert_eq!(f.header("destination"), Some("/q/a"));
        assert_eq!(f.header_count("destination"), 2);
        assert_eq!(f.header("receipt"), Some("r:1"), "value keeps later colons");
        assert_eq!(f.header("x-empty"), Some(""));
        assert_eq!(f.header("missing"), None);
        let value = f.header_value("receipt").unwrap();
        assert_eq!(value, "r:1");
        let raw = f.raw().unwrap();
        assert!(
            raw.as_ptr() <= value.as_ptr() && value.as_ptr() < raw[raw.len()..].as_ptr(),
            "header_value shares the frame's bytes"
        );
        let names: Vec<&[u8]> = f.headers().iter().map(|h| &h.name[..]).collect();
        assert_eq!(
            names,
            [
                &b"destination"[..],
                b"x-empty",
                b"receipt",
                b"destination-x",
                b"destination"
            ]
        );
        assert_eq!(f.headers()[0].value, "/q/a", "CR is not part of the value");
    }

    #[test]
    fn escaped_wire_headers_are_unescaped_for_their_version() {
        let f = wire(b"a\\cb:x\\ny\nplain:v\n", Some(Version::V1_2));
        assert_eq!(f.header("a:b"), Some("x\ny"));
        assert_eq!(f.header("plain"), Some("v"));
        assert_eq!(f.header_value("a:b").unwrap(), "x\ny");
        assert_eq!(f.header_count("a\\cb"), 0, "raw names are not names");
    }

    #[test]
    fn changing_a_decoded_frame_keeps_its_headers_and_drops_raw() {
        let mut f = wire(b"destination:/q/a\nx:1\n", None);
        f.push_header("y", "2");
        assert!(f.raw().is_none());
        let pairs: Vec<(&[u8], &[u8])> = f
            .headers()
            .iter()
            .map(|h| (&h.name[..], &h.value[..]))
            .collect();
        assert_eq!(
            pairs,
            [
                (&b"destination"[..], &b"/q/a"[..]),
                (b"x", b"1"),
                (b"y", b"2")
            ]
        );
        let mut g = wire(b"x:1\n", None);
        g.clear_raw();
        assert!(g.raw().is_none());
        assert_eq!(g.header("x"), Some("1"));
        let mut h = wire(b"x:1\n", None);
        assert_eq!(h.remove_headers_where(|h| h.name == "nope"), 0);
        assert!(h.raw().is_some(), "removing nothing changes nothing");
        assert_eq!(h.remove_headers_where(|h| h.name == "x"), 1);
        assert!(h.raw().is_none() && h.headers().is_empty());
    }

    #[test]
    fn a_wire_frame_equals_the_same_frame_with_a_list() {
        let f = wire(b"x:1\n", None);
        let raw = f.raw().cloned();
        let g = Frame::from_parts(
            Command::Send,
            vec![Header::new("x", "1")],
            Bytes::new(),
            raw,
        );
        assert_eq!(f, g);
    }
}
