//! A STOMP client session over a [`crate::link`]: CONNECT/CONNECTED, SUBSCRIBE with a receipt,
//! SEND, and reading frames.

use std::time::Duration;

use bytes::Bytes;

use crate::frame::{encode, Frame, FrameError, Item, Parser};
use crate::link::{Dialer, LinkError, Rx, Tx};

/// Time allowed for CONNECTED and for a RECEIPT.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The link failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The peer sent bytes that are not STOMP.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer sent an ERROR frame.
    #[error("ERROR from peer: {0}")]
    Error(String),
    /// The peer closed.
    #[error("peer closed the connection")]
    Closed,
    /// No reply in time.
    #[error("no {0} within {REPLY_TIMEOUT:?}")]
    Timeout(&'static str),
    /// Another frame came where a reply was expected.
    #[error("expected {0}, got {1}")]
    Unexpected(&'static str, String),
}

/// Login, vhost and heart-beat for CONNECT.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `login` header.
    pub login: String,
    /// `passcode` header.
    pub passcode: String,
    /// `host` header.
    pub host: String,
    /// Heart-beat interval asked for, both ways, in milliseconds (0: none).
    pub heartbeat_ms: u64,
}

/// The receiving side of a session.
pub struct Reader {
    rx: Rx,
    parser: Parser,
}

impl Reader {
    /// The next frame (heart-beats are counted in `heartbeats` and skipped). `Ok(None)` on close.
    pub async fn next_frame(
        &mut self,
        heartbeats: &mut u64,
    ) -> Result<Option<Frame>, SessionError> {
        loop {
            while let Some(item) = self.parser.next_item()? {
                match item {
                    Item::Heartbeat => *heartbeats += 1,
                    Item::Frame(f) => return Ok(Some(f)),
                }
            }
            match self.rx.recv().await? {
                Some(chunk) => self.parser.push(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// The next frame within [`REPLY_TIMEOUT`], which must be `want`.
    async fn expect(&mut self, want: &'static str) -> Result<Frame, SessionError> {
        let mut hb = 0;
        let frame = tokio::time::timeout(REPLY_TIMEOUT, self.next_frame(&mut hb))
            .await
            .map_err(|_| SessionError::Timeout(want))??
            .ok_or(SessionError::Closed)?;
        match frame.command() {
            c if c == want.as_bytes() => Ok(frame),
            b"ERROR" => Err(SessionError::Error(frame.header_str("message"))),
            other => Err(SessionError::Unexpected(
                want,
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }
}

/// The sending side of a session.
pub struct Writer {
    tx: Tx,
}

impl Writer {
    /// Sends encoded frame bytes.
    pub async fn send(&mut self, frame: Bytes) -> Result<(), SessionError> {
        Ok(self.tx.send(frame).await?)
    }

    /// Closes the link (bounded).
    pub async fn close(&mut self) {
        self.tx.close().await;
    }
}

/// Opens link `n`, sends CONNECT and waits for CONNECTED.
pub async fn connect(
    dialer: &Dialer,
    n: usize,
    creds: &Credentials,
    max_body: usize,
) -> Result<(Writer, Reader), SessionError> {
    let (tx, rx) = dialer.open(n).await?;
    connect_link(tx, rx, creds, max_body).await
}

/// The session halves of an open link, before any CONNECT.
pub fn unconnected(tx: Tx, rx: Rx, max_body: usize) -> (Writer, Reader) {
    let r = Reader {
        rx,
        parser: Parser::new(max_body),
    };
    (Writer { tx }, r)
}

/// Sends CONNECT on an open link and waits for CONNECTED.
pub async fn connect_link(
    tx: Tx,
    rx: Rx,
    creds: &Credentials,
    max_body: usize,
) -> Result<(Writer, Reader), SessionError> {
    let (mut w, mut r) = unconnected(tx, rx, max_body);
    let hb = format!("{0},{0}", creds.heartbeat_ms);
    let connect = encode(
        "CONNECT",
        &[
            ("accept-version", "1.2,1.1,1.0"),
            ("host", &creds.host),
            ("login", &creds.login),
            ("passcode", &creds.passcode),
            ("heart-beat", &hb),
        ],
        b"",
    );
    w.send(connect).await?;
    r.expect("CONNECTED").await?;
    Ok((w, r))
}

/// Subscribes to `destination` (auto ack) and waits for the RECEIPT.
pub async fn subscribe(
    w: &mut Writer,
    r: &mut Reader,
    destination: &str,
    id: usize,
) -> Result<(), SessionError> {
    let id = id.to_string();
    let receipt = format!("sub-{id}");
    let frame = encode(
        "SUBSCRIBE",
        &[
            ("id", &id),
            ("destination", destination),
            ("ack", "auto"),
            ("receipt", &receipt),
        ],
        b"",
    );
    w.send(frame).await?;
    r.expect("RECEIPT").await.map(drop)
}
