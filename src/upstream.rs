//! Connecting to the broker: a member of the address list (spread, with failover; see
//! [`Members`]), a connect timeout, TCP_NODELAY, and (when configured) TLS. Knows nothing of
//! browsers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::warn;

use crate::tls::{host_of, UpstreamTls};

mod members;
pub use members::{Candidate, Members, MAX_TRACKED_MEMBERS};

/// A connection to the broker, plain or TLS.
pub enum BrokerStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Why the broker could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No address answered within the timeout.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The connect (or handshake) took longer than the timeout.
    #[error("broker connect timed out after {0:?}")]
    Timeout(Duration),
    /// TLS to the broker failed (untrusted certificate, name mismatch, ...).
    #[error("broker TLS failed: {0}")]
    Tls(String),
}

impl UpstreamError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "unreachable",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Tls(_) => "tls",
        }
    }
}

/// Why a broker that accepted the TCP connection gave no `CONNECTED` (nor `ERROR`). A broker
/// that is out of file descriptors, starting, or stopping typically closes at once or says
/// something that is not STOMP: to the browser, that is "unavailable", not "invalid frame".
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The broker closed (or reset) the connection before answering CONNECT.
    #[error("broker closed the connection before CONNECTED{}", detail(.0))]
    Closed(Option<String>),
    /// The broker sent nothing within the connect timeout.
    #[error("broker did not answer CONNECT within {0:?}")]
    Silent(Duration),
    /// The broker answered with bytes that are not a STOMP CONNECTED or ERROR.
    #[error("broker answered CONNECT with {0}")]
    Garbage(String),
}

fn detail(why: &Option<String>) -> String {
    why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
}

impl Refusal {
    /// A short label for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Closed(_) => "closed",
            Refusal::Silent(_) => "timeout",
            Refusal::Garbage(_) => "invalid_answer",
        }
    }
}

/// Connects to a broker member (see [`Members::connect_tcp`]), then TLS when `tls` is given
/// (SNI and verification against the configured name, else that member's configured host).
pub async fn connect(
    members: &Members,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
) -> Result<(BrokerStream, SocketAddr), UpstreamError> {
    let (tcp, member) = members.connect_tcp(timeout).await?;
    let peer = member.addr;
    let Some(tls) = tls else {
        return Ok((BrokerStream::Tcp(tcp), peer));
    };
    if tls.is_insecure() {
        warn!(upstream = %peer, "broker TLS certificate NOT verified (upstream_tls_insecure)");
    }
    let handshake = tls.connect(tcp, host_of(members.entry(member.entry)));
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(UpstreamError::Tls(e.to_string())),
        Err(_) => {
            members.mark_down(peer, "TLS handshake timed out");
            return Err(UpstreamError::Timeout(timeout));
        }
    };
    Ok((BrokerStream::Tls(Box::new(stream)), peer))
}

impl AsyncRead for BrokerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BrokerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BrokerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BrokerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BrokerStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            BrokerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BrokerStream::Tcp(s) => s.is_write_vectored(),
            BrokerStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
