//! The SockJS `websocket` transport (SockJS frames inside WebSocket text messages) and the raw
//! `{prefix}/websocket` endpoint (one WebSocket message per message, no SockJS framing).
//! A WebSocket session lives exactly as long as its connection and is not registered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::access::AddressSlot;
use super::http as h;
use super::payload::{parse_messages, Messages};
use super::session::{Attach, Event, Owner, Session};
use super::{frames, Sockjs, RECV_BATCH_BYTES};
use crate::transport::{ws, ClientLink, ClientMeta, HttpBody};

/// Time allowed between the 101 response and the upgraded connection being handed over.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session the gateway closed waits for the client's Close before dropping the
/// socket (RFC 6455 §5.5.1: the TCP close follows both Close frames).
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Time allowed for flushing the Close reply after the client closed.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why an upgrade request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotWebsocket,
    NotConnectionUpgrade,
    Version,
    NoKey,
}

impl Refusal {
    /// The 400 answer, with the texts the protocol tests expect.
    fn response(self) -> Response<HttpBody> {
        let text = match self {
            Refusal::NotWebsocket => "Can \"Upgrade\" only to \"WebSocket\".",
            Refusal::NotConnectionUpgrade => "\"Connection\" must be \"Upgrade\".",
            Refusal::Version => "Unsupported WebSocket version.",
            Refusal::NoKey => "Missing Sec-WebSocket-Key.",
        };
        let mut res = h::text(StatusCode::BAD_REQUEST, text);
        if self == Refusal::Version {
            res.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        res
    }
}

/// Checks the upgrade request; on success, the `Sec-WebSocket-Accept` value.
fn check_handshake(headers: &HeaderMap) -> Result<String, Refusal> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has(header::UPGRADE, "websocket") {
        return Err(Refusal::NotWebsocket);
    }
    if !has(header::CONNECTION, "upgrade") {
        return Err(Refusal::NotConnectionUpgrade);
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if !version.is_some_and(|v| matches!(v.as_bytes(), b"13" | b"8" | b"7")) {
        return Err(Refusal::Version);
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) => Ok(derive_accept_key(key.as_bytes())),
        None => Err(Refusal::NoKey),
    }
}

/// Answers the upgrade with 101 and runs the session on the upgraded connection.
pub fn upgrade(
    sockjs: Arc<Sockjs>,
    mut req: Request<Incoming>,
    meta: ClientMeta,
    raw: bool,
    address: Option<AddressSlot>,
) -> Response<HttpBody> {
    let accept = match check_handshake(req.headers()) {
        Ok(a) => a,
        Err(refusal) => return refusal.response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match tokio::time::timeout(UPGRADE_TIMEOUT, on_upgrade).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return tracing::debug!(cause = %e, "sockjs websocket upgrade failed"),
            Err(_) => return tracing::debug!("sockjs websocket upgrade timed out"),
        };
        // The WebSocket endpoint's small buffers and read-ahead (not tungstenite's 128 KiB
        // read buffer per session), with SockJS's own message limit.
        let config = ws::ws_config(sockjs.options.max_body_bytes);
        let io = ws::ReadAhead::new(TokioIo::new(upgraded));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        let owner = Owner {
            binding: None,
            address,
        };
        let (session, rx, tx) =
            Session::owned(sockjs.limits.clone(), sockjs.registry.live(), owner);
        (sockjs.on_session)(ClientLink { rx, tx, meta });
        run(ws, &session, raw).await;
    });
    let mut res = h::empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h::set(headers, header::SEC_WEBSOCKET_ACCEPT, &accept);
    res
}

/// Why the pump stopped.
enum End {
    /// The session closed; the close was sent.
    Closed,
    /// The client closed, vanished or broke the protocol.
    Client,
}

/// Pumps one WebSocket session both ways until either side ends.
async fn run<S>(ws: WebSocketStream<S>, session: &Arc<Session>, raw: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Attach::Attached(id) = session.attach() else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let heartbeat = session.limits().heartbeat;
    let send_timeout = session.limits().send_timeout;
    let sleep = tokio::time::sleep(heartbeat);
    tokio::pin!(sleep);
    let mut changes = session.subscribe();
    let end = loop {
        tokio::select! {
            msg = stream.next() => {
                let batch = session.limits().batch;
                let (messages, ended) = read_messages(msg, &mut stream, raw, batch);
                if !messages.is_empty() && session.push_inbound(messages).await.is_err() {
                    break End::Client;
                }
                if ended {
                    break End::Client;
                }
            }
            event = session.next_event(&mut changes, sleep.as_mut()) => {
                let (messages, last) = outbound(event, raw);
                let write = async {
                    for m in messages {
                        sink.feed(m).await?;
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(send_timeout, write).await {
                    Ok(Ok(())) if last => break End::Closed,
                    Ok(Ok(())) => {}
                    _ => break End::Client,
                }
                sleep.as_mut().reset(tokio::time::Instant::now() + heartbeat);
            }
        }
    };
    // The client is gone or the session is over: either way the relay's receiving half ends.
    session.detach(id, matches!(end, End::Client));
    session.close(1000, "Normal closure");
    match end {
        End::Closed => {
            // Our Close goes out (the raw endpoint's carries the session's code), then the
            // socket stays open until the client's Close comes back, bounded.
            let _ = tokio::time::timeout(send_timeout, sink.close()).await;
            let _ = tokio::time::timeout(CLOSE_LINGER, await_close(&mut stream)).await;
        }
        // A Close from the client was answered by tungstenite; push the answer out.
        End::Client => {
            let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, sink.flush()).await;
        }
    }
}

/// Reads until the client's Close (or the end of the stream), dropping anything before it.
async fn await_close<S>(stream: &mut S)
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_close() {
            return;
        }
    }
}

/// One item of the client's WebSocket stream.
type WsItem = Option<Result<Message, WsError>>;

/// The client messages in `first` and, batching, in the WebSocket messages already received
/// behind it (up to [`RECV_BATCH_BYTES`]), so they reach the relay as one chunk; `true` once
/// the client closed, vanished or broke the protocol (after the messages before that).
fn read_messages<S>(first: WsItem, stream: &mut S, raw: bool, batch: bool) -> (Messages, bool)
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut messages = Messages::default();
    let mut bytes = 0;
    let mut item = first;
    loop {
        let data: Option<Bytes> = match item {
            Some(Ok(Message::Text(t))) => Some(t.into()),
            Some(Ok(Message::Binary(b))) => Some(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return (messages, true),
        };
        if let Some(data) = data {
            bytes += data.len();
            if push_messages(&mut messages, &data, raw).is_err() {
                return (messages, true);
            }
        }
        if !batch || bytes >= RECV_BATCH_BYTES {
            return (messages, false);
        }
        // Only what is already here: a pending poll leaves the next read to the pump's select.
        match stream.next().now_or_never() {
            Some(next) => item = next,
            None => return (messages, false),
        }
    }
}

/// Appends the client messages in one WebSocket message: itself on the raw endpoint, else its
/// SockJS JSON (an empty message carries none).
fn push_messages(messages: &mut Messages, data: &[u8], raw: bool) -> Result<(), ()> {
    if raw {
        messages.push(std::str::from_utf8(data).map_err(drop)?);
    } else if !data.is_empty() {
        parse_messages(data, messages).map_err(drop)?;
    }
    Ok(())
}

/// The WebSocket messages for one session event, and whether it is the last.
fn outbound(event: Event, raw: bool) -> (Vec<Message>, bool) {
    match (event, raw) {
        (Event::Open, false) => (vec![Message::text(frames::OPEN)], false),
        (Event::Open, true) => (vec![], false),
        (Event::Heartbeat, false) => (vec![Message::text(frames::HEARTBEAT)], false),
        (Event::Heartbeat, true) => (vec![Message::Ping(Bytes::new())], false),
        (Event::Messages(m), false) => (vec![Message::text(frames::messages_frame(&m))], false),
        (Event::Messages(m), true) => (m.into_iter().map(Message::text).collect(), false),
        (Event::Close(code, reason), false) => (
            vec![Message::text(frames::close_frame(code, &reason))],
            true,
        ),
        (Event::Close(code, reason), true) => {
            let frame = CloseFrame {
                code: WsCloseCode::from(code),
                reason: reason.into(),
            };
            (vec![Message::Close(Some(frame))], true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn handshake_errors_match_the_protocol() {
        assert_eq!(
            check_handshake(&HeaderMap::new()),
            Err(Refusal::NotWebsocket)
        );
        let r = check_handshake(&upgrade_headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "close"),
        ]));
        assert_eq!(r, Err(Refusal::NotConnectionUpgrade));
        assert_eq!(Refusal::NoKey.response().status(), StatusCode::BAD_REQUEST);
        let ok = check_handshake(&upgrade_headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ]))
        .unwrap();
        assert_eq!(ok, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    }

    fn items(v: Vec<Message>) -> futures_util::stream::Iter<std::vec::IntoIter<WsItemOk>> {
        futures_util::stream::iter(v.into_iter().map(Ok).collect::<Vec<_>>())
    }

    type WsItemOk = Result<Message, WsError>;

    #[test]
    fn batching_reads_every_message_already_received_and_the_close_behind_them() {
        let first = Some(Ok(Message::text(r#"["a"]"#)));
        let mut rest = items(vec![
            Message::text(r#"["b","c"]"#),
            Message::Ping(Bytes::new()),
            Message::text(""),
            Message::text(r#""d""#),
            Message::Close(None),
            Message::text(r#"["late"]"#),
        ]);
        let (messages, ended) = read_messages(first, &mut rest, false, true);
        assert_eq!(messages.to_strings(), ["a", "b", "c", "d"]);
        assert!(ended, "the close behind the batch must end the session");
    }

    #[test]
    fn batching_stops_at_what_is_not_yet_here_and_keeps_what_came_before_bad_json() {
        let a = || Some(Ok(Message::text(r#"["a"]"#)));
        let mut pending = futures_util::stream::pending::<WsItemOk>();
        let (messages, ended) = read_messages(a(), &mut pending, false, true);
        assert_eq!(
            (messages.to_strings(), ended),
            (vec!["a".to_owned()], false)
        );
        let mut bad = items(vec![Message::text(r#"["b"]"#), Message::text(r#"["c"#)]);
        let (messages, ended) = read_messages(a(), &mut bad, false, true);
        assert_eq!(
            (messages.to_strings(), ended),
            (vec!["a".to_owned(), "b".to_owned()], true)
        );
        let mut raw = items(vec![Message::Ping(Bytes::new()), Message::text("y")]);
        let (messages, _) = read_messages(Some(Ok(Message::text("x"))), &mut raw, true, true);
        assert_eq!(messages.to_strings(), ["x", "y"]);
    }

    #[test]
    fn unbatched_reads_one_message_at_a_time() {
        let first = Some(Ok(Message::text(r#"["a","b"]"#)));
        let mut rest = items(vec![Message::text(r#"["c"]"#)]);
        let (messages, ended) = read_messages(first, &mut rest, false, false);
        assert_eq!(
            (messages.to_strings(), ended),
            (vec!["a".to_owned(), "b".to_owned()], false)
        );
        let (messages, ended) =
            read_messages(rest.next().now_or_never().unwrap(), &mut rest, false, false);
        assert_eq!(
            (messages.to_strings(), ended),
            (vec!["c".to_owned()], false)
        );
    }

    #[test]
    fn raw_close_uses_a_websocket_close_frame() {
        let (msgs, last) = outbound(Event::Close(3000, "Go away!".into()), true);
        assert!(last);
        assert!(matches!(&msgs[0], Message::Close(Some(f)) if u16::from(f.code) == 3000));
        let (msgs, _) = outbound(Event::Messages(vec!["a".into(), "b".into()]), true);
        assert_eq!(msgs.len(), 2);
    }
}
