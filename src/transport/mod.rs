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

    /// The session authenticated: lift whatever bounds the transport keeps on an anonymous
    /// client (the WebSocket's pre-authentication read limit). Nothing by default.
    fn authenticated(&mut self) {}
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

/// The most room a batch makes up front: a full batch (64 KiB, then the chunk that reached it)
/// fits, and the allocation stays under glibc's threshold for `mmap` (128 KiB).
pub(crate) const MAX_BATCH_ROOM_BYTES: usize = 80 * 1024;

/// Received chunks joined into one, so the relay decodes them as one chunk and writes them to
/// the broker in one system call. Both links' `recv` gather what has already arrived this way.
/// A lone chunk is handed on without a copy. The joined buffer is made at the second chunk with
/// room for what the caller expects (the size of its previous batch): grown chunk by chunk from
/// a small start, a batch of 64 KiB was copied over again in eight reallocations. The chunks
/// are copied as they come rather than held: a held chunk of tungstenite's read buffer would
/// make its next read allocate a new one.
#[derive(Debug)]
pub(crate) struct RecvBatch {
    first: Bytes,
    joined: Option<BytesMut>,
}

impl RecvBatch {
    /// A batch of one chunk.
    pub(crate) fn new(first: Bytes) -> Self {
        RecvBatch {
            first,
            joined: None,
        }
    }

    /// Bytes in the batch so far.
    pub(crate) fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    /// Adds a chunk behind the others; `expect` is how large the batch is likely to grow (room
    /// for at most [`MAX_BATCH_ROOM_BYTES`] is made up front).
    pub(crate) fn push(&mut self, more: &[u8], expect: usize) {
        let first = &self.first;
        let joined = self.joined.get_or_insert_with(|| {
            let room = expect.min(MAX_BATCH_ROOM_BYTES);
            let mut b = BytesMut::with_capacity((first.len() + more.len()).max(room));
            b.extend_from_slice(first);
            b
        });
        joined.extend_from_slice(more);
    }

    /// The chunks as one.
    pub(crate) fn join(self) -> Bytes {
        self.joined.map_or(self.first, BytesMut::freeze)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_chunk_is_handed_on_as_it_is() {
        let first = Bytes::from_static(b"SEND\n\nx\0");
        let batch = RecvBatch::new(first.clone());
        assert_eq!(batch.len(), first.len());
        let out = batch.join();
        assert_eq!(out.as_ptr(), first.as_ptr(), "no copy");
    }

    #[test]
    fn chunks_are_joined_in_order_in_one_buffer_sized_for_the_expected_batch() {
        let mut batch = RecvBatch::new(Bytes::from_static(b"a"));
        batch.push(b"bc", 4096);
        batch.push(b"", 4096);
        batch.push(b"def", 4096);
        assert_eq!(batch.len(), 6);
        let room = batch.joined.as_ref().map(BytesMut::capacity);
        assert_eq!(room, Some(4096), "room for the expected size, made once");
        assert_eq!(&batch.join()[..], b"abcdef");

        // Room made up front is capped; a batch larger than expected still grows.
        let mut batch = RecvBatch::new(Bytes::from_static(b"a"));
        batch.push(b"b", usize::MAX);
        let room = batch.joined.as_ref().map(BytesMut::capacity);
        assert_eq!(room, Some(MAX_BATCH_ROOM_BYTES));
        let mut batch = RecvBatch::new(Bytes::from_static(b"a"));
        batch.push(b"b", 0);
        batch.push(&[b'c'; 100], 0);
        assert_eq!(batch.len(), 102);
        assert_eq!(batch.join().len(), 102);
    }
}
