//! Client transports. Each one hands the relay a [`ClientLink`]: a receiving half that yields
//! the client's bytes in whatever chunks they arrived, and a sending half that delivers exactly
//! one whole STOMP frame per message. The relay never learns which transport it is talking to.

pub mod sockjs;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

/// Which transport a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// A plain WebSocket on the STOMP path.
    WebSocket,
    /// SockJS over its native WebSocket transport.
    SockjsWebsocket,
    /// SockJS over `xhr_streaming`.
    SockjsXhrStreaming,
    /// SockJS over `xhr` polling.
    SockjsXhrPolling,
    /// SockJS over `eventsource`.
    SockjsEventsource,
    /// SockJS over `htmlfile`.
    SockjsHtmlfile,
    /// SockJS over `jsonp` polling.
    SockjsJsonp,
}

impl TransportKind {
    /// A short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::SockjsWebsocket => "sockjs-websocket",
            TransportKind::SockjsXhrStreaming => "sockjs-xhr-streaming",
            TransportKind::SockjsXhrPolling => "sockjs-xhr-polling",
            TransportKind::SockjsEventsource => "sockjs-eventsource",
            TransportKind::SockjsHtmlfile => "sockjs-htmlfile",
            TransportKind::SockjsJsonp => "sockjs-jsonp",
        }
    }
}

/// What the gateway knows about a client from its HTTP request(s), for policy and metrics.
#[derive(Debug, Clone)]
pub struct ClientMeta {
    /// The peer address (after trusted forwarding headers, where configured).
    pub peer: SocketAddr,
    /// The transport in use.
    pub transport: TransportKind,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The headers of the upgrade (or first SockJS) request: `Authorization`, `Cookie`, `Origin`.
    pub headers: http::HeaderMap,
    /// The request URI's query string, if any.
    pub query: Option<String>,
    /// The verified client certificate's identity (mutual TLS), if any.
    pub client_cert: Option<String>,
}

/// WebSocket-style close codes the relay uses; SockJS maps them onto its `c[code,reason]` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: normal closure (DISCONNECT handled, or the broker closed after an ERROR).
    Normal,
    /// 1001: going away (gateway shutting down).
    GoingAway,
    /// 1002: protocol error (malformed STOMP).
    Protocol,
    /// 1008: policy violation (auth, ACL, frames before CONNECT).
    Policy,
    /// 1009: message too big.
    TooBig,
    /// 1011: internal error or broker failure.
    Internal,
    /// 1013: try again later (limits, broker unreachable).
    TryAgainLater,
}

impl CloseCode {
    /// The numeric WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Protocol => 1002,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::TryAgainLater => 1013,
        }
    }
}

/// A failure of the client link itself (not of STOMP).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The client went away (socket closed or reset, session expired).
    #[error("client went away")]
    Gone,
    /// A transport-level protocol violation (bad WebSocket frame, bad SockJS JSON).
    #[error("client transport error: {0}")]
    Protocol(String),
    /// The client did not drain its outbound queue within the limit.
    #[error("client too slow: outbound queue over its limit")]
    Overflow,
    /// An I/O error on the client socket.
    #[error("client I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The receiving half of a client link.
pub trait ClientRx: Send + 'static {
    /// The next chunk of bytes from the client; `Ok(None)` once the client has closed.
    /// Chunk boundaries carry no meaning: a chunk may hold several frames or part of one.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Bytes>, LinkError>> + Send;
}

/// The sending half of a client link.
pub trait ClientTx: Send + 'static {
    /// Sends one whole STOMP frame (or one heart-beat EOL) as one transport message.
    /// May buffer: the relay calls [`ClientTx::flush`] when it has no further frame ready.
    fn send(&mut self, frame: Bytes) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Pushes buffered messages out to the client.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send {
        async { Ok(()) }
    }

    /// Closes the link with a code and a short reason; later sends fail.
    fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
}

/// Appends one more received chunk to a batch that starts with `first` (the batch is made on
/// the first call, so a lone chunk is handed on without a copy). Both links' `recv` join what
/// has already arrived this way, so the relay decodes it as one chunk.
pub(crate) fn append_to_batch(batch: &mut Option<BytesMut>, first: &Bytes, more: &[u8]) {
    let batch = batch.get_or_insert_with(|| {
        let mut b = BytesMut::with_capacity(first.len() + more.len());
        b.extend_from_slice(first);
        b
    });
    batch.extend_from_slice(more);
}

/// A client connection as the relay sees it.
pub struct ClientLink<R, T> {
    /// Bytes from the client.
    pub rx: R,
    /// Frames to the client.
    pub tx: T,
    /// What is known about the client.
    pub meta: ClientMeta,
}

/// The response body type every HTTP handler in the gateway returns (static and streaming).
pub type HttpBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
