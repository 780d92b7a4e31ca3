//! [`WsRx`]/[`WsTx`]: the relay's halves of a WebSocket, one STOMP frame per message out,
//! any split in, and the closing handshake shared between them.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{
    close_code_for, ReadLimit, ReadLimitExceeded, WsStream, CLOSE_LINGER, CLOSE_REPLY_TIMEOUT,
    MAX_CLOSE_REASON_BYTES, RECV_BATCH_BYTES,
};
use crate::config::WsFrameMode;
use crate::transport::{ClientRx, ClientTx, CloseCode, LinkError, RecvBatch};

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
    /// Bytes the previous `recv` returned: what the next batch reserves room for.
    last_batch: usize,
    state: Arc<CloseState>,
    /// The socket's pre-authentication read limit, lifted by [`ClientRx::authenticated`].
    read_limit: Option<ReadLimit>,
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
    let read_limit = ws.get_ref().read_limit().cloned();
    let (sink, stream) = ws.split();
    let state = Arc::new(CloseState::default());
    let rx = WsRx {
        stream: Some(stream),
        held: None,
        last_batch: 0,
        state: state.clone(),
        read_limit,
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
        let mut batch = RecvBatch::new(first);
        while let Some(stream) = self.stream.as_mut() {
            if batch.len() >= RECV_BATCH_BYTES {
                break;
            }
            // Only what is already here: a pending poll leaves the next `recv` to wait.
            let Some(item) = stream.next().now_or_never() else {
                break;
            };
            match item {
                Some(Ok(Message::Text(t))) => batch.push(t.as_ref(), self.last_batch),
                Some(Ok(Message::Binary(b))) => batch.push(&b, self.last_batch),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => {
                    self.held = Some(other);
                    break;
                }
            }
        }
        self.last_batch = batch.len();
        Ok(Some(batch.join()))
    }

    fn authenticated(&mut self) {
        if let Some(limit) = &self.read_limit {
            limit.lift();
        }
    }
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
            // Named, so the client is told why (an ERROR before the close).
            WsError::Io(io) if io.get_ref().is_some_and(|e| e.is::<ReadLimitExceeded>()) => {
                LinkError::Protocol(io.to_string())
            }
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
