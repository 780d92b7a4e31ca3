//! How a session ends, and what the client is told: an `ERROR` frame with a clear `message`
//! (invariant 5) and a fitting WebSocket close code.

use bytes::{Bytes, BytesMut};
use tracing::warn;

use crate::stomp::{encode, Command, DecodeError, Frame, Version};
use crate::transport::{ClientTx, CloseCode, LinkError};

/// Why a session ended. Each variant decides the ERROR frame (if any) and the close code.
#[derive(Debug)]
pub enum End {
    /// The client closed its transport (or it broke). Nothing to tell it.
    ClientGone,
    /// DISCONNECT handled (and its RECEIPT delivered, when one was asked for).
    Disconnected,
    /// The client sent something that is not acceptable STOMP here.
    ClientProtocol {
        /// The ERROR `message`.
        message: String,
        /// The offending frame's `receipt`, echoed as `receipt-id`.
        receipt: Option<Bytes>,
        /// Close code.
        code: CloseCode,
    },
    /// The client's bytes did not decode.
    Malformed(DecodeError),
    /// No CONNECT within the configured time.
    ConnectTimeout,
    /// No bytes from the client within the negotiated heart-beat interval (with grace).
    ClientHeartbeatTimeout,
    /// The gateway's policy refused the session or a frame.
    Refused {
        /// The ERROR `message`.
        message: String,
        /// The offending frame's `receipt`, echoed as `receipt-id`.
        receipt: Option<Bytes>,
    },
    /// The broker could not be reached (or its TLS failed).
    BrokerUnreachable(crate::upstream::UpstreamError),
    /// The broker accepted TCP but refused the session before CONNECTED (closed, stayed silent,
    /// or answered with something that is not STOMP): it is unavailable, try again later.
    BrokerRefused(crate::upstream::Refusal),
    /// The broker answered CONNECT (or a later frame) with an ERROR, already forwarded.
    BrokerError,
    /// The broker's connection ended without an ERROR.
    BrokerGone(String),
    /// The broker sent bytes that do not decode, or an unexpected frame.
    BrokerProtocol(String),
    /// No bytes from the broker within the negotiated heart-beat interval (with grace).
    BrokerHeartbeatTimeout,
    /// The gateway is shutting down.
    Shutdown,
    /// An operator closed the session through the admin API (`DELETE /connections/{id}`).
    Kicked(String),
    /// The client's address already holds its share of unauthenticated connections.
    TooManyPending,
    /// The session's JWT reached its `exp` (plus leeway).
    TokenExpired,
    /// A policy reload no longer accepts the session's identity.
    Revoked(crate::policy::Revoked),
    /// No byte from a client that negotiated no heart-beats, within `idle_timeout`.
    ClientIdle,
}

impl End {
    /// A short label for logs and metrics (`stompgate_connections_closed_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            End::ClientGone => "client_gone",
            End::Disconnected => "disconnect",
            End::ClientProtocol { .. } | End::Malformed(_) => "protocol",
            End::ConnectTimeout => "connect_timeout",
            End::ClientHeartbeatTimeout => "client_heartbeat_timeout",
            End::Refused { .. } => "refused",
            End::BrokerUnreachable(_) => "upstream_unreachable",
            End::BrokerError => "broker_error",
            End::BrokerRefused(_) => "broker_refused",
            End::BrokerGone(_) => "broker_gone",
            End::BrokerProtocol(_) => "broker_protocol",
            End::BrokerHeartbeatTimeout => "broker_heartbeat_timeout",
            End::Shutdown => "shutdown",
            End::Kicked(_) => "kicked",
            End::TooManyPending => "pending_limit",
            End::TokenExpired => "token_expired",
            End::Revoked(why) => why.reason(),
            End::ClientIdle => "idle_timeout",
        }
    }

    /// A client-side protocol error with the default close code.
    pub fn protocol(message: impl Into<String>, receipt: Option<Bytes>) -> End {
        End::ClientProtocol {
            message: message.into(),
            receipt,
            code: CloseCode::Protocol,
        }
    }

    /// Maps a link failure on the client side.
    pub fn from_link(err: LinkError) -> End {
        match err {
            LinkError::Overflow => End::ClientProtocol {
                message: "client too slow: outbound queue over its limit".into(),
                receipt: None,
                code: CloseCode::Policy,
            },
            LinkError::Protocol(m) => End::ClientProtocol {
                message: m,
                receipt: None,
                code: CloseCode::Protocol,
            },
            LinkError::Gone | LinkError::Io(_) => End::ClientGone,
        }
    }

    /// The ERROR `message` header and close code for this end; `None` when nothing is said.
    fn error_and_code(&self) -> (Option<String>, CloseCode) {
        match self {
            End::ClientGone => (None, CloseCode::Normal),
            End::Disconnected | End::BrokerError => (None, CloseCode::Normal),
            End::ClientProtocol { message, code, .. } => (Some(message.clone()), *code),
            End::Malformed(e) => {
                let code = if e.is_too_large() {
                    CloseCode::TooBig
                } else {
                    CloseCode::Protocol
                };
                (Some(format!("malformed frame: {e}")), code)
            }
            End::ConnectTimeout => (
                Some("no CONNECT frame received in time".into()),
                CloseCode::Policy,
            ),
            End::ClientHeartbeatTimeout => (
                Some("heart-beat timeout: nothing received from the client".into()),
                CloseCode::Policy,
            ),
            End::Refused { message, .. } => (Some(message.clone()), CloseCode::Policy),
            End::BrokerUnreachable(e) => (
                Some(match e {
                    // Not a secret, and the one thing an operator needs to see in the browser.
                    crate::upstream::UpstreamError::Tls(why) => format!("broker TLS failed: {why}"),
                    _ => format!("broker unreachable ({}); try again later", e.reason()),
                }),
                CloseCode::TryAgainLater,
            ),
            End::BrokerRefused(why) => (
                Some(format!(
                    "broker refused the connection or is unavailable ({}); try again later",
                    why.reason()
                )),
                CloseCode::TryAgainLater,
            ),
            // The cause (a close, a reset) is the broker's, not a secret: it tells the operator
            // looking at the browser's console whether a node died.
            End::BrokerGone(cause) => (
                Some(format!("broker connection lost: {cause}")),
                CloseCode::Internal,
            ),
            End::BrokerProtocol(_) => (
                Some("broker sent an invalid frame".into()),
                CloseCode::Internal,
            ),
            End::BrokerHeartbeatTimeout => (
                Some("heart-beat timeout: nothing received from the broker".into()),
                CloseCode::Internal,
            ),
            End::Shutdown => (
                Some("gateway shutting down; reconnect".into()),
                CloseCode::GoingAway,
            ),
            End::Kicked(reason) => (
                Some(format!("closed by operator: {reason}")),
                CloseCode::Policy,
            ),
            End::TooManyPending => (
                Some(
                    "too many unauthenticated connections from this address; try again later"
                        .into(),
                ),
                CloseCode::TryAgainLater,
            ),
            End::TokenExpired => (
                Some(crate::policy::AuthError::TokenExpired.to_string()),
                CloseCode::Policy,
            ),
            End::Revoked(why) => (Some(why.message().into()), CloseCode::Policy),
            End::ClientIdle => (
                Some("idle timeout: nothing received from the client".into()),
                CloseCode::Policy,
            ),
        }
    }

    fn receipt(&self) -> Option<&Bytes> {
        match self {
            End::ClientProtocol { receipt, .. } | End::Refused { receipt, .. } => receipt.as_ref(),
            _ => None,
        }
    }

    /// Tells the client (ERROR frame when due) and closes its link.
    pub async fn finish<T: ClientTx>(&self, tx: &mut T, version: Version) {
        if let End::BrokerUnreachable(e) = self {
            warn!(cause = %e, reason = self.reason(), "broker unreachable");
        }
        if let End::BrokerRefused(why) = self {
            warn!(cause = %why, reason = self.reason(), "broker refused the session");
        }
        if let End::BrokerGone(detail) | End::BrokerProtocol(detail) = self {
            warn!(cause = %detail, reason = self.reason(), "broker side ended the session");
        }
        if matches!(self, End::ClientGone) {
            return;
        }
        let (message, code) = self.error_and_code();
        if let Some(message) = &message {
            let frame = error_frame(message, self.receipt(), version);
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        let reason = message.as_deref().unwrap_or(match self {
            End::Disconnected => "disconnected",
            _ => "closed",
        });
        let _ = tx.close(code, reason).await;
    }
}

/// Encodes a gateway-made ERROR frame.
pub fn error_frame(message: &str, receipt: Option<&Bytes>, version: Version) -> Bytes {
    // A header value must not carry an EOL; the message is ours, but be strict anyway.
    let message: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let mut frame = Frame::new(Command::Error)
        .with_header("message", message.clone())
        .with_header("content-type", "text/plain");
    if let Some(r) = receipt {
        frame.push_header("receipt-id", r.clone());
    }
    frame.set_body(message.into_bytes());
    let mut out = BytesMut::new();
    encode(&frame, version, &mut out);
    out.freeze()
}
