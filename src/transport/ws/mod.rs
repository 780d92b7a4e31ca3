//! The WebSocket transport: the RFC 6455 upgrade on hyper, STOMP subprotocol selection
//! (`v12.stomp` > `v11.stomp` > `v10.stomp`), the `Origin` check, and the [`WsRx`]/[`WsTx`]
//! halves the relay talks to.
//!
//! The handshake is answered here (hyper hands over the socket after the `101`); framing,
//! masking, fragmentation, UTF-8 validation of text messages and ping/pong are tungstenite's.
//! Outbound, every STOMP frame is exactly one WebSocket message, text or binary as
//! [`WsFrameMode`] says. Inbound text and binary messages are both plain bytes to the relay.

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::HttpBody;
use crate::config::{Config, WsFrameMode};

mod link;
mod read_ahead;

pub use link::{frame_message, split_link, truncate_reason, WsRx, WsTx};
pub use read_ahead::{ReadAhead, ReadLimit, ReadLimitExceeded};
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
/// Bytes a client may send before its session is authenticated ([`ClientRx::authenticated`]):
/// room for the largest CONNECT the relay accepts then (24 KiB of headers), far below a
/// WebSocket message the codec would otherwise buffer whole (megabytes).
///
/// [`ClientRx::authenticated`]: crate::transport::ClientRx::authenticated
pub const PRE_AUTH_READ_BYTES: usize = 64 * 1024;
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
            ReadAhead::with_limit(TokioIo::new(upgraded), ReadLimit::new(PRE_AUTH_READ_BYTES)),
            Role::Server,
            Some(self.config),
        )
        .await)
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
