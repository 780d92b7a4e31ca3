//! The WebSocket transport: the RFC 6455 upgrade on hyper, STOMP subprotocol selection
//! (`v12.stomp` > `v11.stomp` > `v10.stomp`), the `Origin` check, and the [`WsRx`]/[`WsTx`]
//! halves the relay talks to.
//!
//! The handshake is answered here (hyper hands over the socket after the `101`); framing,
//! masking, fragmentation, UTF-8 validation of text messages and ping/pong are tungstenite's.
//! Outbound, every STOMP frame is exactly one WebSocket message, text or binary as
//! [`WsFrameMode`] says. Inbound text and binary messages are both plain bytes to the relay.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::header::{
    CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::io::poll_read_buf;

use super::{ClientRx, ClientTx, CloseCode, HttpBody, LinkError};
use crate::config::{Config, WsFrameMode};

/// A server-side WebSocket over an upgraded hyper connection (plain or TLS underneath).
pub type WsStream = WebSocketStream<ReadAhead<TokioIo<Upgraded>>>;

/// The STOMP subprotocols we speak, best first.
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Per-connection read buffer (also tungstenite's largest single read). Its default (128 KiB)
/// is far too much for mostly idle sessions; [`ReadAhead`] below it turns many small reads of a
/// streaming client into one socket read (docs/PERFORMANCE.md).
const READ_BUFFER_BYTES: usize = 1024;
/// Read-ahead while the client streams (see [`ReadAhead`]): one socket read per this many
/// bytes instead of one per tungstenite read buffer.
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Most bytes one `recv` joins from client messages that are already received.
const RECV_BATCH_BYTES: usize = 64 * 1024;
/// Outbound bytes gathered before tungstenite writes to the socket (flush writes the rest).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Room for WebSocket-level overhead above the largest STOMP frame we accept.
const MESSAGE_SLACK_BYTES: usize = 4 * 1024;
/// How long a closing side waits for the peer's Close before dropping the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Longest close reason a Close frame may carry (125 bytes of payload minus the code).
const MAX_CLOSE_REASON_BYTES: usize = 123;
/// Time allowed for flushing the Close reply after the client closed.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// What the upgrade and the links need to know.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Allowed `Origin` values (ASCII case-insensitive); empty or `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Outbound message type.
    pub frame_mode: WsFrameMode,
    /// tungstenite's limits and buffer sizes.
    pub config: WebSocketConfig,
}

impl WsOptions {
    /// Options for the gateway's configuration: the message limit is the largest STOMP frame
    /// the decoder would accept (header block + body + slack), so an oversized message is
    /// refused by the transport before it is buffered whole.
    pub fn from_config(config: &Config) -> Self {
        let limits = &config.limits;
        let max_message = max_message_bytes(limits.max_header_bytes, limits.max_body_bytes);
        WsOptions {
            allowed_origins: config.allowed_origins.clone(),
            frame_mode: config.ws_frame,
            config: ws_config(max_message),
        }
    }
}

/// The largest WebSocket message for a STOMP frame of at most these header and body sizes.
pub fn max_message_bytes(max_header_bytes: usize, max_body_bytes: usize) -> usize {
    max_header_bytes
        .saturating_add(max_body_bytes)
        .saturating_add(MESSAGE_SLACK_BYTES)
}

/// tungstenite settings with small buffers and the given message (and frame) limit.
pub fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_message_bytes.saturating_mul(2).max(1 << 20))
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
        .accept_unmasked_frames(false)
}

/// Why an upgrade request was refused; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Not a GET: 405.
    #[error("only GET upgrades to a WebSocket")]
    Method,
    /// A GET without `Upgrade: websocket`: 426.
    #[error("this endpoint speaks WebSocket only")]
    NotWebSocket,
    /// A malformed WebSocket handshake: 400.
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    /// The `Origin` is not allowed: 403.
    #[error("origin not allowed")]
    Origin,
}

impl UpgradeError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            UpgradeError::Method => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeError::NotWebSocket => StatusCode::UPGRADE_REQUIRED,
            UpgradeError::BadHandshake(_) => StatusCode::BAD_REQUEST,
            UpgradeError::Origin => StatusCode::FORBIDDEN,
        }
    }

    /// A short plain-text response for this refusal.
    pub fn into_response(self) -> Response<HttpBody> {
        let mut resp = text_response(self.status(), format!("{self}\n"));
        let headers = resp.headers_mut();
        match self {
            UpgradeError::Method => {
                headers.insert(http::header::ALLOW, HeaderValue::from_static("GET"));
            }
            UpgradeError::NotWebSocket => {
                headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            }
            UpgradeError::BadHandshake(_) => {
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            UpgradeError::Origin => {}
        }
        resp
    }
}

/// A plain-text response with the given status.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<HttpBody> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// An accepted handshake whose socket hyper has yet to hand over.
#[derive(Debug)]
pub struct PendingUpgrade {
    on_upgrade: OnUpgrade,
    config: WebSocketConfig,
    protocol: Option<&'static str>,
}

impl PendingUpgrade {
    /// The subprotocol answered, if any.
    pub fn protocol(&self) -> Option<&'static str> {
        self.protocol
    }

    /// Waits for hyper to send the `101` and hand over the socket.
    pub async fn finish(self) -> Result<WsStream, hyper::Error> {
        let upgraded = self.on_upgrade.await?;
        Ok(WebSocketStream::from_raw_socket(
            ReadAhead::new(TokioIo::new(upgraded)),
            Role::Server,
            Some(self.config),
        )
        .await)
    }
}

/// An adaptive read-ahead under tungstenite, whose reads are at most its (small, to keep idle
/// sessions cheap) read buffer: 2 KiB reads would take 512 system calls per MiB. Reads go
/// straight to the caller's buffer until one fills it (the socket had more); from then on one
/// socket read fetches up to [`READ_AHEAD_BYTES`] and tungstenite's reads are served from it.
/// A read-ahead that brings less than a direct read would have switches back, and the buffer
/// is released whenever it is empty and the socket has nothing more, so idle sessions hold none.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: BytesMut,
    /// Whether reads go through `buf`.
    ahead: bool,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`, reading directly until the peer streams.
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
            ahead: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() && !this.ahead {
            let wanted = out.remaining();
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            this.ahead = wanted > 0 && out.filled().len() - before == wanted;
            return Poll::Ready(Ok(()));
        }
        if this.buf.is_empty() {
            this.buf.reserve(READ_AHEAD_BYTES);
            match poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf) {
                Poll::Pending => {
                    this.buf = BytesMut::new();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(n)) => this.ahead = n > out.remaining(),
            }
        }
        let n = this.buf.len().min(out.remaining());
        out.put_slice(&this.buf.split_to(n));
        if this.buf.is_empty() && !this.ahead {
            this.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Validates a WebSocket upgrade request and builds the `101` response. Spawn
/// [`PendingUpgrade::finish`] after returning the response to hyper.
pub fn upgrade<B>(
    req: &mut Request<B>,
    opts: &WsOptions,
) -> Result<(Response<HttpBody>, PendingUpgrade), UpgradeError> {
    let key = check_handshake(req.method(), req.headers())?;
    if !origin_allowed(req.headers(), &opts.allowed_origins) {
        return Err(UpgradeError::Origin);
    }
    let protocol = select_subprotocol(req.headers());
    let mut resp = Response::new(HttpBody::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key.as_bytes());
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| UpgradeError::BadHandshake("key"))?,
    );
    if let Some(p) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    let pending = PendingUpgrade {
        on_upgrade: hyper::upgrade::on(req),
        config: opts.config,
        protocol,
    };
    Ok((resp, pending))
}

/// Checks method, `Upgrade`, `Connection`, version and key; returns the key.
fn check_handshake(method: &Method, headers: &HeaderMap) -> Result<String, UpgradeError> {
    if method != Method::GET {
        return Err(UpgradeError::Method);
    }
    if !header_has_token(headers, UPGRADE, "websocket") {
        return Err(UpgradeError::NotWebSocket);
    }
    if !header_has_token(headers, CONNECTION, "upgrade") {
        return Err(UpgradeError::BadHandshake(
            "Connection must include `upgrade`",
        ));
    }
    let version = headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes());
    if version != Some(b"13".as_slice()) {
        return Err(UpgradeError::BadHandshake(
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .map(str::trim)
        .filter(|k| valid_key(k))
        .ok_or(UpgradeError::BadHandshake(
            "Sec-WebSocket-Key missing or malformed",
        ))?;
    Ok(key.to_owned())
}

/// A key is the base64 of 16 bytes: 22 base64 characters and `==`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Whether a (possibly repeated, comma-separated) header holds `token`, ASCII case-insensitive.
fn header_has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Every comma-separated token of every copy of a header.
fn header_tokens(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = &str> + '_ {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The best STOMP subprotocol the client offered, or `None` (answer without the header).
pub fn select_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<&str> = header_tokens(headers, SEC_WEBSOCKET_PROTOCOL).collect();
    SUBPROTOCOLS
        .into_iter()
        .find(|ours| offered.iter().any(|o| o.eq_ignore_ascii_case(ours)))
}

/// The `Origin` check. A request without `Origin` is not from a browser and passes: the check
/// protects browsers from cross-site WebSocket hijacking, and other clients can send any value.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.is_empty() || allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("");
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// The WebSocket close code a transport error calls for (1002, 1007 or 1009).
pub fn close_code_for(err: &WsError) -> Option<u16> {
    match err {
        WsError::Protocol(_) => Some(1002),
        WsError::Utf8(_) => Some(1007),
        WsError::Capacity(_) => Some(1009),
        _ => None,
    }
}

/// What the two halves share to carry out the closing handshake.
#[derive(Debug, Default)]
struct CloseState {
    /// The client's Close (or the end of the stream) has been seen.
    peer_closed: AtomicBool,
    /// The close code a transport error called for (0: none).
    error_code: AtomicU16,
    /// The receiving half, parked here when the relay dropped it, so `close` can read the
    /// client's Close.
    parked: Mutex<Option<SplitStream<WsStream>>>,
    /// Woken when `peer_closed` is set or the receiving half is parked.
    changed: Notify,
}

/// The receiving half: client messages as bytes, text and binary alike.
#[derive(Debug)]
pub struct WsRx {
    stream: Option<SplitStream<WsStream>>,
    /// What ended a batch (a Close, an error, the end of the stream): the next `recv` sees it.
    held: Option<Option<Result<Message, WsError>>>,
    state: Arc<CloseState>,
}

/// The sending half: one STOMP frame per message.
#[derive(Debug)]
pub struct WsTx {
    sink: SplitSink<WsStream, Message>,
    mode: WsFrameMode,
    state: Arc<CloseState>,
    closed: bool,
}

/// Splits a WebSocket into the relay's two halves.
pub fn split_link(ws: WsStream, mode: WsFrameMode) -> (WsRx, WsTx) {
    let (sink, stream) = ws.split();
    let state = Arc::new(CloseState::default());
    let rx = WsRx {
        stream: Some(stream),
        held: None,
        state: state.clone(),
    };
    let tx = WsTx {
        sink,
        mode,
        state,
        closed: false,
    };
    (rx, tx)
}

impl ClientRx for WsRx {
    /// The next data message, joined with the data messages already received behind it (up to
    /// [`RECV_BATCH_BYTES`]): the relay then decodes them as one chunk and writes them to the
    /// broker in one system call instead of one per message.
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        let Some(first) = self.next_data().await? else {
            return Ok(None);
        };
        let mut batch: Option<BytesMut> = None;
        while let Some(stream) = self.stream.as_mut() {
            if batch.as_ref().map_or(first.len(), BytesMut::len) >= RECV_BATCH_BYTES {
                break;
            }
            // Only what is already here: a pending poll leaves the next `recv` to wait.
            let Some(item) = stream.next().now_or_never() else {
                break;
            };
            match item {
                Some(Ok(Message::Text(t))) => append(&mut batch, &first, t.as_ref()),
                Some(Ok(Message::Binary(b))) => append(&mut batch, &first, &b),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => {
                    self.held = Some(other);
                    break;
                }
            }
        }
        Ok(Some(batch.map_or(first, BytesMut::freeze)))
    }
}

/// Appends one more message to a batch that starts with `first`.
fn append(batch: &mut Option<BytesMut>, first: &Bytes, more: &[u8]) {
    let batch = batch.get_or_insert_with(|| {
        let mut b = BytesMut::with_capacity(first.len() + more.len());
        b.extend_from_slice(first);
        b
    });
    batch.extend_from_slice(more);
}

impl WsRx {
    /// The next non-empty data message, or `None` once the client has closed.
    async fn next_data(&mut self) -> Result<Option<Bytes>, LinkError> {
        loop {
            let item = match self.held.take() {
                Some(item) => item,
                None => match self.stream.as_mut() {
                    Some(stream) => stream.next().await,
                    None => return Ok(None),
                },
            };
            match item {
                Some(Ok(Message::Text(t))) if !t.is_empty() => return Ok(Some(Bytes::from(t))),
                Some(Ok(Message::Binary(b))) if !b.is_empty() => return Ok(Some(b)),
                Some(Ok(Message::Close(_))) => {
                    if let Some(stream) = self.stream.as_mut() {
                        // One more read flushes tungstenite's queued Close reply.
                        let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, stream.next()).await;
                    }
                    self.mark_closed();
                    return Ok(None);
                }
                Some(Ok(_)) => continue,
                None => {
                    self.mark_closed();
                    return Ok(None);
                }
                Some(Err(e)) => return Err(self.link_error(e)),
            }
        }
    }

    fn mark_closed(&mut self) {
        self.state.peer_closed.store(true, Ordering::Release);
        self.state.changed.notify_one();
        self.stream = None;
    }

    fn link_error(&mut self, e: WsError) -> LinkError {
        if let Some(code) = close_code_for(&e) {
            self.state.error_code.store(code, Ordering::Release);
        }
        match e {
            WsError::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => LinkError::Gone,
                _ => LinkError::Io(io),
            },
            WsError::ConnectionClosed | WsError::AlreadyClosed => LinkError::Gone,
            other => LinkError::Protocol(other.to_string()),
        }
    }
}

impl Drop for WsRx {
    fn drop(&mut self) {
        if matches!(self.held, Some(None | Some(Ok(Message::Close(_))))) {
            // The client's Close (or the end) was read while batching and not yet handled.
            self.state.peer_closed.store(true, Ordering::Release);
        }
        if let Some(stream) = self.stream.take() {
            if let Ok(mut slot) = self.state.parked.lock() {
                *slot = Some(stream);
            }
            self.state.changed.notify_one();
        }
    }
}

/// The message for one outbound frame under `mode`: binary when asked, or when the frame is
/// not UTF-8 (a text message must be).
pub fn frame_message(frame: Bytes, mode: WsFrameMode) -> Message {
    if mode == WsFrameMode::Binary {
        return Message::Binary(frame);
    }
    match Utf8Bytes::try_from(frame.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(frame),
    }
}

impl ClientTx for WsTx {
    async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        if self.closed {
            return Err(LinkError::Gone);
        }
        // A heart-beat must reach the client now, not when the next frame comes.
        let heartbeat = frame.as_ref() == b"\n" || frame.as_ref() == b"\r\n";
        let msg = frame_message(frame, self.mode);
        self.sink.feed(msg).await.map_err(send_error)?;
        if heartbeat {
            self.sink.flush().await.map_err(send_error)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        if self.closed {
            return Err(LinkError::Gone);
        }
        self.sink.flush().await.map_err(send_error)
    }

    async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), LinkError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let code = match self.state.error_code.load(Ordering::Acquire) {
            0 => code.code(),
            transport => transport,
        };
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: Utf8Bytes::from(truncate_reason(reason)),
        };
        let sent = tokio::time::timeout(CLOSE_LINGER, self.sink.send(Message::Close(Some(frame))));
        match sent.await {
            Ok(Ok(())) => {}
            // The client closed first (our Close reply is already out) or the socket is gone.
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.await_peer_close()).await;
        Ok(())
    }
}

impl WsTx {
    /// Waits for the client's Close: seen by the receiving half, or read here once the relay
    /// has dropped that half.
    async fn await_peer_close(&mut self) {
        loop {
            if self.state.peer_closed.load(Ordering::Acquire) {
                return;
            }
            let parked = self.state.parked.lock().ok().and_then(|mut s| s.take());
            if let Some(mut stream) = parked {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_close() {
                        return;
                    }
                }
                return;
            }
            self.state.changed.notified().await;
        }
    }
}

fn send_error(e: WsError) -> LinkError {
    match e {
        WsError::Io(io) => LinkError::Io(io),
        WsError::WriteBufferFull(_) => LinkError::Overflow,
        _ => LinkError::Gone,
    }
}

/// `reason` cut to fit a Close frame, at a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn subprotocol_is_the_best_one_offered() {
        let table: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["v10.stomp"], Some("v10.stomp")),
            (&["v10.stomp, v11.stomp"], Some("v11.stomp")),
            (&["v10.stomp", "v12.stomp", "v11.stomp"], Some("v12.stomp")),
            (&["mqtt, wamp"], None),
            (&["mqtt", " v11.stomp "], Some("v11.stomp")),
            (&["stomp"], None),
        ];
        for (values, want) in table {
            assert_eq!(select_subprotocol(&offered(values)), *want, "{values:?}");
        }
    }

    /// Counts the reads that reach the socket.
    struct Counting<S>(S, usize);

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.1 += 1;
            Pin::new(&mut self.0).poll_read(cx, out)
        }
    }

    #[tokio::test]
    async fn read_ahead_streams_in_large_reads_and_holds_nothing_when_idle() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut peer, sock) = tokio::io::duplex(256 * 1024);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&data).await.unwrap();
        let mut r = ReadAhead::new(Counting(sock, 0));
        let mut got = Vec::new();
        let mut chunk = [0u8; 2048];
        while got.len() < data.len() {
            let n = r.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        // 98 reads of 2 KiB without read-ahead.
        assert!(r.inner.1 <= 8, "{} socket reads", r.inner.1);
        let idle = tokio::time::timeout(Duration::from_millis(20), r.read(&mut chunk)).await;
        assert!(idle.is_err(), "nothing more was sent");
        assert_eq!(r.buf.capacity(), 0, "an idle reader holds no buffer");
        // Small messages again: read straight into the caller's buffer, nothing held.
        peer.write_all(b"hello").await.unwrap();
        let n = r.read(&mut chunk).await.unwrap();
        assert_eq!(&chunk[..n], b"hello");
        assert_eq!(r.buf.capacity(), 0);
        drop(peer);
        assert_eq!(r.read(&mut chunk).await.unwrap(), 0, "end of stream");
    }

    #[test]
    fn reason_is_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON_BYTES);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn message_type_follows_the_mode() {
        let text = Bytes::from_static(b"MESSAGE\n\nhi\0");
        let bin = Bytes::from_static(b"MESSAGE\n\n\xff\0");
        assert!(frame_message(text.clone(), WsFrameMode::Auto).is_text());
        assert!(frame_message(text.clone(), WsFrameMode::Text).is_text());
        assert!(frame_message(text, WsFrameMode::Binary).is_binary());
        assert!(frame_message(bin.clone(), WsFrameMode::Auto).is_binary());
        assert!(frame_message(bin, WsFrameMode::Text).is_binary());
    }

    #[test]
    fn handshake_checks() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_handshake(&Method::POST, &h),
            Err(UpgradeError::Method)
        );
        assert_eq!(
            check_handshake(&Method::GET, &h),
            Err(UpgradeError::NotWebSocket)
        );
        h.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        assert!(matches!(
            check_handshake(&Method::GET, &h),
            Err(UpgradeError::BadHandshake(_))
        ));
        h.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(check_handshake(&Method::GET, &h).is_ok());
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(check_handshake(&Method::GET, &h).is_err());
    }

    #[test]
    fn origin_list() {
        let mut h = HeaderMap::new();
        let allowed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(&h, &[]));
        assert!(origin_allowed(&h, &allowed));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&h, &allowed));
        assert!(origin_allowed(&h, &["*".to_owned()]));
        h.insert(ORIGIN, HeaderValue::from_static("https://APP.example"));
        assert!(origin_allowed(&h, &allowed));
    }
}
