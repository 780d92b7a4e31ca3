//! Client transports: WebSocket (plain or TLS), SockJS over its WebSocket transport or its
//! `xhr_streaming` transport ([`crate::xhr`]; plain or TLS), and plain TCP. Each gives a [`Tx`] that sends one STOMP frame at a time and an [`Rx`] that yields the
//! bytes received in whatever chunks they came (the frame parser reassembles them). The steps
//! of opening a WebSocket ([`Dialer::transport`], [`Dialer::upgrade`]) are public so the
//! `handshake` scenario can stop after any of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::tls::{Stream, TlsClient};
use crate::xhr::{self, XhrRx, XhrTx};

/// Time allowed for the TCP connect and the WebSocket handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes read from a TCP socket at a time.
const TCP_READ_BYTES: usize = 16 * 1024;
/// The client's WebSocket read buffer: small, so thousands of idle clients stay cheap.
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// `ws://host:port/path`: one STOMP frame per WebSocket message.
    Ws {
        /// The full URL.
        url: String,
        /// Host and port to connect to.
        addr: SocketAddr,
    },
    /// `sockjs+ws://host:port/prefix`: SockJS framing over its `websocket` transport.
    SockjsWs {
        /// `ws://host:port/prefix` (session path added per connection).
        base: String,
        /// Host and port to connect to.
        addr: SocketAddr,
    },
    /// `wss://host:port/path`: WebSocket over TLS (needs [`Dialer::tls`]).
    Wss {
        /// The full URL.
        url: String,
        /// Host and port to connect to.
        addr: SocketAddr,
        /// The URL's host (the default TLS server name).
        host: String,
    },
    /// `sockjs+wss://host:port/prefix`: SockJS's `websocket` transport over TLS.
    SockjsWss {
        /// `wss://host:port/prefix` (session path added per connection).
        base: String,
        /// Host and port to connect to.
        addr: SocketAddr,
        /// The URL's host (the default TLS server name).
        host: String,
    },
    /// `sockjs+xhr://host:port/prefix` (`sockjs+xhrs://` over TLS): SockJS's `xhr_streaming`
    /// transport, with `xhr_send` for the other way.
    SockjsXhr {
        /// The prefix path, `/sockjs` (no trailing `/`; session paths are added to it).
        prefix: String,
        /// `host:port` as in the URL (the `Host` header).
        authority: String,
        /// Host and port to connect to.
        addr: SocketAddr,
        /// The URL's host when over TLS (`sockjs+xhrs://`).
        tls_host: Option<String>,
    },
    /// `tcp://host:port`: plain STOMP over TCP.
    Tcp {
        /// Host and port.
        addr: SocketAddr,
    },
}

/// Why a target could not be used or a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The URL is not one of the supported forms.
    #[error(
        "bad target `{0}`: use ws[s]://H:P/PATH, sockjs+ws[s]://H:P/PREFIX, \
         sockjs+xhr[s]://H:P/PREFIX or tcp://H:P"
    )]
    BadTarget(String),
    /// The target is not a loopback address and `--allow-remote` was not given.
    #[error("refusing non-loopback target {0} (pass --allow-remote to allow it)")]
    NotLoopback(SocketAddr),
    /// Connect or handshake took too long.
    #[error("connect timed out")]
    Timeout,
    /// A socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A WebSocket error.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// An HTTP error (SockJS `xhr_streaming` / `xhr_send`).
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// A `wss://` target without a TLS client, or a TCP target asked for a WebSocket step.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The SockJS server sent something unexpected.
    #[error("sockjs: {0}")]
    Sockjs(String),
}

impl Target {
    /// Parses a target URL; refuses non-loopback hosts unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Target, LinkError> {
        let bad = || LinkError::BadTarget(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let hostport = rest.split('/').next().ok_or_else(bad)?;
        let addr = resolve(hostport).ok_or_else(bad)?;
        if !allow_remote && !addr.ip().is_loopback() {
            return Err(LinkError::NotLoopback(addr));
        }
        match scheme {
            "ws" => Ok(Target::Ws {
                url: url.to_owned(),
                addr,
            }),
            "sockjs+ws" => Ok(Target::SockjsWs {
                base: format!("ws://{}", rest.trim_end_matches('/')),
                addr,
            }),
            "wss" => Ok(Target::Wss {
                url: url.to_owned(),
                addr,
                host: url_host(hostport),
            }),
            "sockjs+wss" => Ok(Target::SockjsWss {
                base: format!("wss://{}", rest.trim_end_matches('/')),
                addr,
                host: url_host(hostport),
            }),
            "sockjs+xhr" | "sockjs+xhrs" => Ok(Target::SockjsXhr {
                prefix: rest[hostport.len()..].trim_end_matches('/').to_owned(),
                authority: hostport.to_owned(),
                addr,
                tls_host: (scheme == "sockjs+xhrs").then(|| url_host(hostport)),
            }),
            "tcp" => Ok(Target::Tcp { addr }),
            _ => Err(bad()),
        }
    }

    /// The URL's host when the target runs over TLS (`None`: plain).
    pub fn tls_host(&self) -> Option<&str> {
        match self {
            Target::Wss { host, .. } | Target::SockjsWss { host, .. } => Some(host),
            Target::SockjsXhr { tls_host, .. } => tls_host.as_deref(),
            _ => None,
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Ws { addr, .. }
            | Target::SockjsWs { addr, .. }
            | Target::Wss { addr, .. }
            | Target::SockjsWss { addr, .. }
            | Target::SockjsXhr { addr, .. }
            | Target::Tcp { addr } => *addr,
        }
    }
}

/// The host part of `host:port` (IPv6 brackets kept off).
fn url_host(hostport: &str) -> String {
    let host = match hostport.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

fn resolve(hostport: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    let host = hostport.replace("localhost", "127.0.0.1");
    host.to_socket_addrs().ok()?.next()
}

/// How to open links: the target, subprotocols to offer, an optional source address.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Where to connect.
    pub target: Target,
    /// `Sec-WebSocket-Protocol` offered (empty: none).
    pub subprotocols: String,
    /// Source addresses to spread connections over (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
    /// The TLS client for `wss://` targets.
    pub tls: Option<TlsClient>,
}

/// A WebSocket over plain TCP or TLS.
pub type Ws = WebSocketStream<Stream>;

/// The sending half of a link.
pub enum Tx {
    /// WebSocket or SockJS-over-WebSocket.
    Ws {
        /// The sink.
        sink: SplitSink<Ws, Message>,
        /// Wrap frames in SockJS's JSON array.
        sockjs: bool,
    },
    /// SockJS `xhr_send` requests.
    Xhr(XhrTx),
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
}

/// The receiving half of a link.
pub enum Rx {
    /// WebSocket or SockJS-over-WebSocket.
    Ws {
        /// The stream.
        stream: SplitStream<Ws>,
        /// Unwrap SockJS frames.
        sockjs: bool,
    },
    /// A SockJS `xhr_streaming` response.
    Xhr(Box<XhrRx>),
    /// Plain TCP.
    Tcp(OwnedReadHalf, BytesMut),
}

impl Dialer {
    /// Opens link number `n` (which picks the source address).
    pub async fn open(&self, n: usize) -> Result<(Tx, Rx), LinkError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open_inner(n))
            .await
            .map_err(|_| LinkError::Timeout)?
    }

    async fn open_inner(&self, n: usize) -> Result<(Tx, Rx), LinkError> {
        if let Target::Tcp { addr } = &self.target {
            let tcp = tcp_connect(*addr, self.source(n)).await?;
            let (rd, wr) = tcp.into_split();
            return Ok((Tx::Tcp(wr), Rx::Tcp(rd, BytesMut::new())));
        }
        let stream = self.transport(n).await?;
        if self.is_xhr() {
            return self.xhr_link(stream, n).await;
        }
        let ws = self.upgrade(stream, n).await?;
        Self::split_ws(ws, self.is_sockjs()).await
    }

    fn source(&self, n: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()])
    }

    /// Whether links use SockJS's `xhr_streaming` transport (no WebSocket).
    pub fn is_xhr(&self) -> bool {
        matches!(self.target, Target::SockjsXhr { .. })
    }

    /// Whether links carry SockJS framing over a WebSocket.
    pub fn is_sockjs(&self) -> bool {
        matches!(
            self.target,
            Target::SockjsWs { .. } | Target::SockjsWss { .. }
        )
    }

    /// Step 1 of link `n`: the TCP connect and, for `wss://`, the TLS handshake (unbounded:
    /// callers add their own timeout).
    pub async fn transport(&self, n: usize) -> Result<Stream, LinkError> {
        let tcp = tcp_connect(self.target.addr(), self.source(n)).await?;
        if self.target.tls_host().is_none() {
            return Ok(Stream::Plain(tcp));
        }
        let tls = self.tls.as_ref().ok_or(LinkError::Unsupported(
            "a wss:// or sockjs+xhrs:// target needs a TLS client (--ca)",
        ))?;
        Ok(Stream::Tls(Box::new(tls.connect(tcp).await?)))
    }

    /// Step 2 of link `n`: the WebSocket upgrade on a [`Dialer::transport`] stream.
    pub async fn upgrade(&self, stream: Stream, n: usize) -> Result<Ws, LinkError> {
        let sockjs = self.is_sockjs();
        let url = match &self.target {
            Target::Ws { url, .. } | Target::Wss { url, .. } => url.clone(),
            Target::SockjsWs { base, .. } | Target::SockjsWss { base, .. } => {
                format!("{base}/000/{}/websocket", session_id(n))
            }
            Target::Tcp { .. } => return Err(LinkError::Unsupported("tcp:// has no WebSocket")),
            Target::SockjsXhr { .. } => {
                return Err(LinkError::Unsupported("sockjs+xhr:// has no WebSocket"))
            }
        };
        let mut req = url.into_client_request()?;
        if !self.subprotocols.is_empty() && !sockjs {
            let value = HeaderValue::from_str(&self.subprotocols)
                .map_err(|_| LinkError::BadTarget(self.subprotocols.clone()))?;
            req.headers_mut().insert("sec-websocket-protocol", value);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
        Ok(ws)
    }

    /// Step 3: the link halves of an upgraded WebSocket (SockJS: after its `o` frame).
    pub async fn link(&self, ws: Ws) -> Result<(Tx, Rx), LinkError> {
        Self::split_ws(ws, self.is_sockjs()).await
    }

    /// Steps 2 and 3 of an `xhr_streaming` link on a [`Dialer::transport`] stream: the
    /// streaming request and its `o` frame (the send connection opens on the first send).
    pub async fn xhr_link(&self, stream: Stream, n: usize) -> Result<(Tx, Rx), LinkError> {
        let Target::SockjsXhr {
            prefix, authority, ..
        } = &self.target
        else {
            return Err(LinkError::Unsupported("not a sockjs+xhr:// target"));
        };
        let (tx, rx) = xhr::open(self, stream, n, prefix, authority, &session_id(n)).await?;
        Ok((Tx::Xhr(tx), Rx::Xhr(Box::new(rx))))
    }

    async fn split_ws(ws: Ws, sockjs: bool) -> Result<(Tx, Rx), LinkError> {
        let (sink, mut stream) = ws.split();
        if sockjs {
            expect_sockjs_open(&mut stream).await?;
        }
        Ok((Tx::Ws { sink, sockjs }, Rx::Ws { stream, sockjs }))
    }
}

async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, LinkError> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = sock.connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A SockJS session id unique in this process: several runs in one process (tests) must not
/// meet the sessions of an earlier run, which the server remembers as closed for a while.
fn session_id(n: usize) -> String {
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let seq = OPENED.fetch_add(1, Ordering::Relaxed);
    format!("l{}x{n}s{seq}", std::process::id())
}

async fn expect_sockjs_open(stream: &mut SplitStream<Ws>) -> Result<(), LinkError> {
    match stream.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "o" => Ok(()),
        Some(Ok(other)) => Err(LinkError::Sockjs(format!("expected `o`, got {other:?}"))),
        Some(Err(e)) => Err(e.into()),
        None => Err(LinkError::Sockjs("closed before `o`".into())),
    }
}

impl Tx {
    /// Sends one STOMP frame (or heart-beat EOL) and flushes it (`xhr_send`: queues it).
    pub async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        match self {
            Tx::Tcp(wr) => Ok(wr.write_all(&frame).await?),
            Tx::Xhr(x) => x.send(frame).await,
            Tx::Ws {
                sink,
                sockjs: false,
            } => {
                let msg = match Utf8Bytes::try_from(frame.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::Binary(frame),
                };
                Ok(sink.send(msg).await?)
            }
            Tx::Ws { sink, sockjs: true } => {
                let text = String::from_utf8_lossy(&frame);
                let json =
                    serde_json::to_string(&[text]).map_err(|e| LinkError::Sockjs(e.to_string()))?;
                Ok(sink.send(Message::Text(json.into())).await?)
            }
        }
    }

    /// Closes the link politely (best effort, bounded).
    pub async fn close(&mut self) {
        let fut = async {
            match self {
                Tx::Tcp(wr) => {
                    let _ = wr.shutdown().await;
                }
                Tx::Ws { sink, .. } => {
                    let _ = sink.close().await;
                }
                Tx::Xhr(x) => x.close().await,
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), fut).await;
    }
}

impl Rx {
    /// The next chunk of STOMP bytes; `Ok(None)` when the peer closed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        match self {
            Rx::Tcp(rd, buf) => {
                buf.reserve(TCP_READ_BYTES);
                match rd.read_buf(buf).await? {
                    0 => Ok(None),
                    _ => Ok(Some(buf.split().freeze())),
                }
            }
            Rx::Xhr(x) => x.recv().await,
            Rx::Ws { stream, sockjs } => loop {
                let msg = match stream.next().await {
                    None => return Ok(None),
                    Some(m) => m?,
                };
                let data = match msg {
                    Message::Text(t) => Bytes::from(t),
                    Message::Binary(b) => b,
                    Message::Close(_) => return Ok(None),
                    _ => continue,
                };
                if !*sockjs {
                    return Ok(Some(data));
                }
                match unwrap_sockjs(&data)? {
                    Some(bytes) => return Ok(Some(bytes)),
                    None if data.first() == Some(&b'c') => return Ok(None),
                    None => continue,
                }
            },
        }
    }
}

/// The STOMP bytes of a SockJS `a[...]` frame; `None` for `h`, `o` and `c[...]`.
pub(crate) fn unwrap_sockjs(data: &[u8]) -> Result<Option<Bytes>, LinkError> {
    if data.first() != Some(&b'a') {
        return Ok(None);
    }
    let msgs: Vec<String> =
        serde_json::from_slice(&data[1..]).map_err(|e| LinkError::Sockjs(e.to_string()))?;
    Ok(Some(Bytes::from(msgs.concat())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(matches!(
            Target::parse("ws://127.0.0.1:1/ws", false),
            Ok(Target::Ws { .. })
        ));
        assert!(matches!(
            Target::parse("tcp://localhost:61613", false),
            Ok(Target::Tcp { .. })
        ));
        assert!(matches!(
            Target::parse("sockjs+ws://127.0.0.1:1/sockjs", false),
            Ok(Target::SockjsWs { .. })
        ));
        assert!(matches!(
            Target::parse("wss://localhost:8443/ws", false),
            Ok(Target::Wss { host, .. }) if host == "localhost"
        ));
        let sjs = Target::parse("sockjs+wss://[::1]:8443/sockjs/", false).unwrap();
        assert_eq!(sjs.tls_host(), Some("::1"));
        assert!(matches!(sjs, Target::SockjsWss { base, .. } if base == "wss://[::1]:8443/sockjs"));
        assert_eq!(
            Target::parse("ws://127.0.0.1:1/ws", false)
                .unwrap()
                .tls_host(),
            None
        );
        assert!(matches!(
            Target::parse("wss://10.1.2.3:443/ws", false),
            Err(LinkError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("tcp://10.1.2.3:61613", false),
            Err(LinkError::NotLoopback(_))
        ));
        assert!(Target::parse("tcp://10.1.2.3:61613", true).is_ok());
        let xhr = Target::parse("sockjs+xhr://localhost:8080/sockjs/", false).unwrap();
        assert_eq!(xhr.tls_host(), None);
        assert!(matches!(&xhr, Target::SockjsXhr { prefix, authority, .. }
            if prefix == "/sockjs" && authority == "localhost:8080"));
        let xhrs = Target::parse("sockjs+xhrs://[::1]:8443/a/b", false).unwrap();
        assert_eq!(xhrs.tls_host(), Some("::1"));
        assert!(matches!(&xhrs, Target::SockjsXhr { prefix, .. } if prefix == "/a/b"));
        assert!(matches!(
            Target::parse("sockjs+xhr://10.1.2.3:80/sockjs", false),
            Err(LinkError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1:1", false),
            Err(LinkError::BadTarget(_))
        ));
    }

    #[test]
    fn sockjs_frames() {
        let got = unwrap_sockjs(br#"a["CONNECTED\n\n\u0000","\n"]"#).unwrap();
        assert_eq!(&got.unwrap()[..], b"CONNECTED\n\n\0\n");
        assert!(unwrap_sockjs(b"h").unwrap().is_none());
        assert!(unwrap_sockjs(b"a[1").is_err());
    }
}
