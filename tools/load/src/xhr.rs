//! SockJS's `xhr_streaming` transport, as `sockjs-client` uses it when WebSocket is blocked:
//! one long POST `{prefix}/000/{session}/xhr_streaming` whose response carries the frames
//! (a 2 KiB `h` prelude, `o`, then `a[...]`, `h` and `c[...]` lines), and POSTs to
//! `.../xhr_send` with a JSON array of strings for the other way, answered with 204.
//!
//! Each link keeps two HTTP/1.1 keep-alive connections, one per direction. Sends are queued and
//! go out one request at a time, in order, everything queued while the previous request was
//! out joined into one array (as `sockjs-client` does). When the server ends a stream at its
//! response limit, the receiving side opens the next one on the same connection.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::link::{unwrap_sockjs, Dialer, LinkError};
use crate::tls::Stream;

/// Frames a link may queue before its sender waits for the send requests to catch up.
const SEND_QUEUE_FRAMES: usize = 1024;
/// A send request stops taking queued frames once its body holds this many bytes.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Longest SockJS frame (one stream line) accepted.
const MAX_LINE_BYTES: usize = 64 << 20;
/// The content type `sockjs-client` sends.
const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

/// One SockJS frame of a receiving stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SockjsFrame {
    /// `o`: the session opened.
    Open,
    /// `h`, or the prelude (a line of `h`).
    Heartbeat,
    /// `a[...]`: the messages, joined.
    Messages(Bytes),
    /// `c[code,"reason"]`: the session closed.
    Close(u32, String),
}

/// Splits a receiving stream into SockJS frames (`\n`-terminated lines), whatever the chunks.
#[derive(Debug, Default)]
pub struct StreamParser {
    buf: BytesMut,
    /// Bytes of `buf` already searched for `\n`.
    scanned: usize,
}

impl StreamParser {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether no partial frame is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole frame; `Ok(None)` until one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<SockjsFrame>, LinkError> {
        let Some(at) = memchr::memchr(b'\n', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            if self.scanned > MAX_LINE_BYTES {
                return Err(LinkError::Sockjs(format!(
                    "frame over {MAX_LINE_BYTES} bytes"
                )));
            }
            return Ok(None);
        };
        let line = self.buf.split_to(self.scanned + at + 1);
        self.scanned = 0;
        parse_frame(&line[..line.len() - 1]).map(Some)
    }
}

/// One frame without its `\n`.
fn parse_frame(line: &[u8]) -> Result<SockjsFrame, LinkError> {
    let bad = |why: String| LinkError::Sockjs(why);
    match line.first() {
        Some(b'o') if line.len() == 1 => Ok(SockjsFrame::Open),
        Some(b'h') if line.iter().all(|&b| b == b'h') => Ok(SockjsFrame::Heartbeat),
        Some(b'a') => Ok(SockjsFrame::Messages(
            unwrap_sockjs(line)?.unwrap_or_default(),
        )),
        Some(b'c') => {
            let (code, reason): (u32, String) =
                serde_json::from_slice(&line[1..]).map_err(|e| bad(format!("close frame: {e}")))?;
            Ok(SockjsFrame::Close(code, reason))
        }
        _ => Err(bad(format!(
            "unexpected frame {:?}",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        ))),
    }
}

/// Appends `frames` to `body` as a JSON array of strings.
fn push_json_array(body: &mut Vec<u8>, frames: &[Bytes]) {
    body.push(b'[');
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let text = String::from_utf8_lossy(f);
        serde_json::to_writer(&mut *body, &*text).expect("a string always serializes");
    }
    body.push(b']');
}

/// Where a session's requests go.
#[derive(Debug)]
struct Session {
    /// `{prefix}/000/{session}`.
    base: String,
    /// The `Host` header.
    authority: String,
}

impl Session {
    fn post(&self, transport: &str, body: Bytes) -> Result<Request<Full<Bytes>>, LinkError> {
        Request::post(format!("{}/{transport}", self.base))
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, TEXT_PLAIN)
            .body(Full::new(body))
            .map_err(|e| LinkError::Sockjs(format!("request: {e}")))
    }
}

/// An HTTP/1.1 client connection on `stream`, driven by its own task.
async fn http_connect(
    stream: Stream,
) -> Result<(SendRequest<Full<Bytes>>, JoinHandle<()>), LinkError> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, task))
}

/// The receiving half: the `xhr_streaming` response being read.
pub struct XhrRx {
    session: Arc<Session>,
    sender: SendRequest<Full<Bytes>>,
    conn: JoinHandle<()>,
    /// The current response body (`None` between two streams).
    body: Option<Incoming>,
    parser: StreamParser,
    closed: bool,
}

impl Drop for XhrRx {
    fn drop(&mut self) {
        // Ends the stream, which the server takes as the client going away.
        self.conn.abort();
    }
}

impl XhrRx {
    /// Starts a stream on the open connection.
    async fn start_stream(&mut self) -> Result<(), LinkError> {
        if !self.parser.is_empty() {
            return Err(LinkError::Sockjs("stream ended inside a frame".into()));
        }
        self.sender.ready().await?;
        let req = self.session.post("xhr_streaming", Bytes::new())?;
        let res = self.sender.send_request(req).await?;
        if res.status() != StatusCode::OK {
            return Err(LinkError::Sockjs(format!(
                "xhr_streaming: HTTP {}",
                res.status()
            )));
        }
        self.body = Some(res.into_body());
        Ok(())
    }

    /// The next SockJS frame; `Ok(None)` when the connection closed.
    async fn next_frame(&mut self) -> Result<Option<SockjsFrame>, LinkError> {
        loop {
            if let Some(frame) = self.parser.next_frame()? {
                return Ok(Some(frame));
            }
            let Some(body) = self.body.as_mut() else {
                self.start_stream().await?;
                continue;
            };
            match body.frame().await {
                Some(chunk) => {
                    if let Ok(data) = chunk?.into_data() {
                        self.parser.push(&data);
                    }
                }
                // The response limit: the session goes on in the next stream.
                None => self.body = None,
            }
        }
    }

    /// The next chunk of STOMP bytes; `Ok(None)` once the session closed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        while !self.closed {
            match self.next_frame().await? {
                Some(SockjsFrame::Messages(b)) => return Ok(Some(b)),
                Some(SockjsFrame::Close(..)) | None => self.closed = true,
                Some(SockjsFrame::Open | SockjsFrame::Heartbeat) => {}
            }
        }
        Ok(None)
    }
}

/// The sending half: a queue drained by a task that posts `xhr_send` requests.
pub struct XhrTx {
    queue: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl XhrTx {
    /// Queues one STOMP frame (waits while the queue is full). A failed send request shows up
    /// as the error of a later call.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| LinkError::Sockjs("link closed".into()))?;
        if queue.send(frame).await.is_err() {
            let why = self.failed.lock().ok().and_then(|f| f.clone());
            return Err(LinkError::Sockjs(
                why.unwrap_or_else(|| "xhr_send stopped".into()),
            ));
        }
        Ok(())
    }

    /// Lets the queued frames go out, then ends the send task (callers bound the wait).
    pub async fn close(&mut self) {
        self.queue = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Posts every queued frame, in order, one request at a time.
async fn pump_sends(
    dialer: Dialer,
    n: usize,
    session: Arc<Session>,
    mut queue: mpsc::Receiver<Bytes>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let mut conn = None;
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut bytes = first.len();
        batch.push(first);
        while bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(f) => {
                    bytes += f.len();
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let mut body = Vec::with_capacity(bytes + 16 * batch.len());
        push_json_array(&mut body, &batch);
        batch.clear();
        if let Err(e) = post_send(&dialer, n, &session, &mut conn, body.into()).await {
            if let Ok(mut f) = failed.lock() {
                *f = Some(format!("xhr_send: {e}"));
            }
            return;
        }
    }
}

/// One `xhr_send` request, on the kept connection (opened, or reopened, as needed).
async fn post_send(
    dialer: &Dialer,
    n: usize,
    session: &Session,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    body: Bytes,
) -> Result<(), LinkError> {
    if let Some(sender) = conn.as_mut() {
        if sender.ready().await.is_err() {
            *conn = None;
        }
    }
    let sender = match conn {
        Some(s) => s,
        None => {
            let stream = dialer.transport(n).await?;
            let (mut sender, _task) = http_connect(stream).await?;
            sender.ready().await?;
            conn.insert(sender)
        }
    };
    let res = sender.send_request(session.post("xhr_send", body)?).await?;
    let status = res.status();
    // Read to the end, so the connection can carry the next request.
    res.into_body().collect().await?;
    match status {
        StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
        other => Err(LinkError::Sockjs(format!("HTTP {other}"))),
    }
}

/// Opens session `session_id` on `stream` (the stream connection) and waits for its `o`; the
/// send connection is opened by the first send.
pub async fn open(
    dialer: &Dialer,
    stream: Stream,
    n: usize,
    prefix: &str,
    authority: &str,
    session_id: &str,
) -> Result<(XhrTx, XhrRx), LinkError> {
    let session = Arc::new(Session {
        base: format!("{prefix}/000/{session_id}"),
        authority: authority.to_owned(),
    });
    let (sender, conn) = http_connect(stream).await?;
    let mut rx = XhrRx {
        session: session.clone(),
        sender,
        conn,
        body: None,
        parser: StreamParser::default(),
        closed: false,
    };
    loop {
        match rx.next_frame().await? {
            Some(SockjsFrame::Open) => break,
            Some(SockjsFrame::Heartbeat) => {}
            Some(other) => return Err(LinkError::Sockjs(format!("expected `o`, got {other:?}"))),
            None => return Err(LinkError::Sockjs("closed before `o`".into())),
        }
    }
    let (queue, pending) = mpsc::channel(SEND_QUEUE_FRAMES);
    let failed = Arc::new(Mutex::new(None));
    let task = tokio::spawn(pump_sends(
        dialer.clone(),
        n,
        session,
        pending,
        failed.clone(),
    ));
    let tx = XhrTx {
        queue: Some(queue),
        task: Some(task),
        failed,
    };
    Ok((tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole stream: the prelude, `o`, messages with escapes, a heartbeat, the close.
    fn fixture() -> Vec<u8> {
        let mut s = vec![b'h'; 2048];
        s.extend_from_slice(b"\no\n");
        s.extend_from_slice(b"a[\"CONNECTED\\nversion:1.2\\n\\n\\u0000\"]\n");
        s.extend_from_slice(b"h\n");
        s.extend_from_slice("a[\"MESSAGE\\n\\n\\u2028\u{e9}\\\"x\\u0000\",\"\\n\"]\n".as_bytes());
        s.extend_from_slice(b"a[]\n");
        s.extend_from_slice(b"c[3000,\"Go away!\"]\n");
        s
    }

    fn expected() -> Vec<SockjsFrame> {
        vec![
            SockjsFrame::Heartbeat,
            SockjsFrame::Open,
            SockjsFrame::Messages(Bytes::from_static(b"CONNECTED\nversion:1.2\n\n\0")),
            SockjsFrame::Heartbeat,
            SockjsFrame::Messages(Bytes::from("MESSAGE\n\n\u{2028}\u{e9}\"x\0\n")),
            SockjsFrame::Messages(Bytes::new()),
            SockjsFrame::Close(3000, "Go away!".into()),
        ]
    }

    fn parse_in_chunks(data: &[u8], cuts: &[usize]) -> Vec<SockjsFrame> {
        let mut p = StreamParser::default();
        let mut got = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([data.len()].iter()) {
            p.push(&data[from..to]);
            from = to;
            while let Some(f) = p.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert!(p.is_empty());
        got
    }

    #[test]
    fn stream_whole_and_split_at_every_offset() {
        let data = fixture();
        assert_eq!(parse_in_chunks(&data, &[]), expected());
        for cut in 1..data.len() {
            assert_eq!(parse_in_chunks(&data, &[cut]), expected(), "cut at {cut}");
        }
        let bytewise: Vec<usize> = (1..data.len()).collect();
        assert_eq!(parse_in_chunks(&data, &bytewise), expected());
    }

    #[test]
    fn partial_frames_wait_and_bad_ones_fail() {
        let mut p = StreamParser::default();
        p.push(b"a[\"x\"");
        assert_eq!(p.next_frame().unwrap(), None);
        assert!(!p.is_empty());
        p.push(b"]\n");
        assert_eq!(
            p.next_frame().unwrap(),
            Some(SockjsFrame::Messages(Bytes::from_static(b"x")))
        );
        for bad in [&b"a[1\n"[..], b"x\n", b"\n", b"c[\"a\"]\n", b"oo\n"] {
            let mut p = StreamParser::default();
            p.push(bad);
            assert!(
                p.next_frame().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn send_bodies_are_json_arrays_of_strings() {
        let mut body = Vec::new();
        let frames = [
            Bytes::from_static(b"SEND\ndestination:/q\n\n\"\\\0"),
            Bytes::from_static(b"\n"),
        ];
        push_json_array(&mut body, &frames);
        let back: Vec<String> = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, ["SEND\ndestination:/q\n\n\"\\\0", "\n"]);
        assert!(!body.contains(&b'\n'), "raw newline in {body:?}");
    }
}
