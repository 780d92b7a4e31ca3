//! [`ReadAhead`]: an adaptive read-ahead under tungstenite, so a small idle read buffer does
//! not cost one system call per kilobyte when a client streams.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::READ_AHEAD_BYTES;

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
    /// Bytes the peer may still send, until lifted (see [`ReadLimit`]).
    limit: Option<ReadLimit>,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`, reading directly until the peer streams.
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
            ahead: false,
            limit: None,
        }
    }

    /// [`ReadAhead::new`], failing reads with [`ReadLimitExceeded`] once `limit` is spent.
    pub fn with_limit(inner: S, limit: ReadLimit) -> Self {
        ReadAhead {
            limit: Some(limit),
            ..ReadAhead::new(inner)
        }
    }

    /// The read limit, if there is one.
    pub fn read_limit(&self) -> Option<&ReadLimit> {
        self.limit.as_ref()
    }
}

/// How many bytes a connection may still send, shared between its [`ReadAhead`] and the
/// session. A WebSocket reads whole messages (up to the frame limit, megabytes) before the
/// relay sees a byte, so the limit on what an unauthenticated client can make the gateway
/// buffer has to sit below the WebSocket codec: the session lifts it once authenticated.
#[derive(Debug, Clone)]
pub struct ReadLimit(Arc<AtomicUsize>);

impl ReadLimit {
    /// At most `bytes` (a read in flight may overshoot by one read-ahead).
    pub fn new(bytes: usize) -> Self {
        ReadLimit(Arc::new(AtomicUsize::new(bytes)))
    }

    /// No limit from now on.
    pub fn lift(&self) {
        self.0.store(usize::MAX, Ordering::Release);
    }

    fn exhausted(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }

    fn spend(&self, n: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left != usize::MAX).then(|| left.saturating_sub(n))
            });
    }
}

/// The error a read fails with once its [`ReadLimit`] is spent.
#[derive(Debug, thiserror::Error)]
#[error("too much data before the CONNECT was accepted")]
pub struct ReadLimitExceeded;

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() && this.limit.as_ref().is_some_and(ReadLimit::exhausted) {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidData, ReadLimitExceeded);
            return Poll::Ready(Err(e));
        }
        if this.buf.is_empty() && !this.ahead {
            let wanted = out.remaining();
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            let n = out.filled().len() - before;
            this.ahead = wanted > 0 && n == wanted;
            if let Some(limit) = &this.limit {
                limit.spend(n);
            }
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
                Poll::Ready(Ok(n)) => {
                    this.ahead = n > out.remaining();
                    if let Some(limit) = &this.limit {
                        limit.spend(n);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    async fn a_read_limit_fails_reads_once_spent_until_lifted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut peer, sock) = tokio::io::duplex(256 * 1024);
        peer.write_all(&[7u8; 200_000]).await.unwrap();
        let limit = ReadLimit::new(10_000);
        let mut r = ReadAhead::with_limit(sock, limit.clone());
        let mut chunk = [0u8; 2048];
        let mut got = 0;
        let err = loop {
            match r.read(&mut chunk).await {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert!(err.get_ref().is_some_and(|e| e.is::<ReadLimitExceeded>()));
        assert!((10_000..=10_000 + READ_AHEAD_BYTES).contains(&got), "{got}");
        limit.lift();
        assert!(r.read(&mut chunk).await.unwrap() > 0, "lifted: reads go on");
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
}
