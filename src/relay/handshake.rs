//! AwaitConnect and Connecting: read the client's CONNECT under a timeout, apply the policy,
//! open the broker connection, exchange CONNECT/CONNECTED, and learn the negotiated version
//! and heart-beats.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

use super::authorize::authorize;
use super::end::error_frame;
use super::{ClientSide, End, RelayContext};
use crate::metrics::Direction;
use crate::policy::Dialect;
use crate::stomp::{
    check_connect_header, encode, negotiate_heartbeat, parse_heartbeat, Command, Decoder, Frame,
    HeartBeat, Item, Version,
};
use crate::transport::{ClientRx, ClientTx};
use crate::upstream::{self, BrokerStream, Refusal, UpstreamError};

/// Extra time allowed beyond a negotiated heart-beat interval before the peer counts as dead.
const HEARTBEAT_GRACE_FACTOR: u32 = 2;
/// Flat slack added to every heart-beat deadline (network jitter, timer granularity).
const HEARTBEAT_SLACK: Duration = Duration::from_secs(1);
/// What the page is told when the broker refuses the gateway's CONNECT: the broker's own words
/// name the broker identity (`Access refused for user 'stompgate'`), so they go to the log only.
const BROKER_REFUSED_LOGIN: &str = "broker refused the gateway's login";
/// Most bytes of the broker's refusal kept in the log line.
const LOGGED_REFUSAL_BYTES: usize = 512;
/// Initial (and smallest) broker read: small, so idle sessions stay cheap; the pump grows it
/// while reads keep filling it.
pub(super) const BROKER_READ_BYTES: usize = 1024;

/// A broker connection past CONNECTED.
pub(super) struct Upstream {
    pub stream: BrokerStream,
    pub buf: BytesMut,
    pub decoder: Decoder,
    pub version: Version,
    /// Deadline for silence from the client (None: no heart-beats negotiated).
    pub client_idle: Option<Duration>,
    /// Deadline for silence from the broker.
    pub broker_idle: Option<Duration>,
}

/// Runs AwaitConnect and Connecting. On success the broker's CONNECTED has been forwarded.
pub(super) async fn establish<R: ClientRx, T: ClientTx>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    tx: &mut T,
) -> Result<Upstream, End> {
    let deadline = Instant::now() + ctx.config.connect_timeout;
    let mut connect = read_connect(client, deadline).await?;
    let original = connect.clone();
    let client_hb = connect
        .header("heart-beat")
        .map(|v| parse_heartbeat(v).ok_or_else(|| End::protocol("invalid heart-beat header", None)))
        .transpose()?
        .unwrap_or_default();
    let stats = client.rec.stats().clone();
    let identity = authorize(ctx, &client.meta, &mut connect).await?;
    check_forwarded_connect(&original, &connect)?;
    stats.update_facts(|f| {
        f.user = match &identity {
            Some(id) => Some(id.user.clone()),
            // Pass-through: the client's login is who it is; static rewrite: unknown.
            None if ctx.config.upstream.passthrough => connect.header("login").map(str::to_owned),
            None => None,
        }
    });
    client.identity = identity;
    stats.update_facts(|f| {
        f.broker_user = connect.header("login").map(str::to_owned);
        f.vhost = connect.header("host").map(str::to_owned);
    });
    let connect_began = Instant::now();
    let mut up = open_upstream(ctx, &connect).await?;
    client
        .rec
        .frame(Direction::ClientToBroker, &connect, up.connect_len);
    stats.update_facts(|f| f.upstream = Some(up.addr));
    let connected = read_connected(ctx, &mut up).await;
    if let Ok(f) | Err(Answer::Error(f)) = &connected {
        client.rec.upstream_connected(connect_began.elapsed());
        client
            .rec
            .frame(Direction::BrokerToClient, f, f.raw().map_or(0, |r| r.len()));
    }
    let connected = match connected {
        Ok(f) => f,
        Err(Answer::Error(error)) => {
            // The broker refused (bad credentials, unknown vhost): its words stay in the log.
            log_broker_refusal(&error);
            let _ = tx
                .send(error_frame(BROKER_REFUSED_LOGIN, None, Version::V1_0))
                .await;
            let _ = tx.flush().await;
            return Err(End::BrokerError);
        }
        Err(Answer::Refused(why)) => {
            ctx.upstreams.mark_down(up.addr, &why.to_string());
            return Err(End::BrokerRefused(why));
        }
    };
    let version = connected
        .header("version")
        .and_then(Version::parse)
        .unwrap_or(Version::V1_0);
    let server_hb = connected
        .header("heart-beat")
        .and_then(parse_heartbeat)
        .unwrap_or_default();
    tx.send(frame_bytes(&connected, Version::V1_0))
        .await
        .map_err(End::from_link)?;
    tx.flush().await.map_err(End::from_link)?;
    client.decoder.set_version(version);
    up.decoder.set_version(version);
    client.dialect = ctx
        .config
        .broker
        .unwrap_or_else(|| Dialect::detect(connected.header_bytes("server")));
    let (client_idle, broker_idle) = idle_limits(client_hb, server_hb);
    stats.set_connected(version, negotiate_heartbeat(client_hb, server_hb));
    debug!(
        version = version.as_str(),
        dialect = client.dialect.as_str(),
        ?client_idle,
        ?broker_idle,
        "session connected"
    );
    Ok(Upstream {
        stream: up.stream,
        buf: up.buf,
        decoder: up.decoder,
        version,
        client_idle,
        broker_idle,
    })
}

/// Refuses a CONNECT whose headers the broker would read differently from the gateway (see
/// [`check_connect_header`]). Only the client's own headers that reach the broker count (what
/// `forwarded`, the rewritten CONNECT, still has from `original`): the gateway's own `login`,
/// `passcode` and `host` are not the client's to get wrong.
fn check_forwarded_connect(original: &Frame, forwarded: &Frame) -> Result<(), End> {
    let from_client = |h: &crate::stomp::Header| original.headers().contains(h);
    for h in forwarded.headers().iter().filter(|h| from_client(h)) {
        check_connect_header(&h.name, &h.value).map_err(End::Malformed)?;
    }
    Ok(())
}

fn log_broker_refusal(error: &Frame) {
    let message = String::from_utf8_lossy(error.header_bytes("message").unwrap_or_default());
    let body = error.body();
    let body = String::from_utf8_lossy(&body[..body.len().min(LOGGED_REFUSAL_BYTES)]);
    warn!(broker_message = %message, broker_detail = %body.trim(), "broker refused the gateway's CONNECT");
}

/// How long each side may stay silent: the negotiated interval at which it must send, times the
/// grace factor, plus slack.
fn idle_limits(client: HeartBeat, server: HeartBeat) -> (Option<Duration>, Option<Duration>) {
    // From the client's point of view: (it sends every .0, it receives every .1).
    let (client_sends, server_sends) = negotiate_heartbeat(client, server);
    let grace = |d: Duration| d * HEARTBEAT_GRACE_FACTOR + HEARTBEAT_SLACK;
    (client_sends.map(grace), server_sends.map(grace))
}

/// Reads until the first frame, which must be CONNECT or STOMP.
async fn read_connect<R: ClientRx>(
    client: &mut ClientSide<R>,
    deadline: Instant,
) -> Result<Frame, End> {
    loop {
        while let Some(item) = client
            .decoder
            .decode(&mut client.buf)
            .map_err(End::Malformed)?
        {
            match item {
                Item::Heartbeat => continue,
                Item::Frame(f) if f.command.is_connect() => return Ok(f),
                Item::Frame(f) => {
                    return Err(End::protocol(
                        format!(
                            "{} before CONNECT: the first frame must be CONNECT or STOMP",
                            f.command
                        ),
                        f.header_value("receipt"),
                    ))
                }
            }
        }
        match timeout_at(deadline, client.rx.recv()).await {
            Err(_) => return Err(End::ConnectTimeout),
            Ok(Ok(Some(chunk))) => client.buf.extend_from_slice(&chunk),
            Ok(Ok(None)) => return Err(End::ClientGone),
            Ok(Err(e)) => return Err(End::from_link(e)),
        }
    }
}

/// A broker connection during CONNECT/CONNECTED.
struct Opening {
    stream: BrokerStream,
    buf: BytesMut,
    decoder: Decoder,
    /// The broker address reached.
    addr: std::net::SocketAddr,
    /// Wire bytes of the CONNECT sent.
    connect_len: usize,
}

async fn open_upstream(ctx: &RelayContext, connect: &Frame) -> Result<Opening, End> {
    let up = &ctx.config.upstream;
    let tls = ctx.upstream_tls.as_deref();
    let (mut stream, addr) = upstream::connect(&ctx.upstreams, up.connect_timeout, tls)
        .await
        .map_err(End::BrokerUnreachable)?;
    debug!(upstream = %addr, "broker connected");
    let bytes = frame_bytes(connect, Version::V1_0);
    tokio::time::timeout(up.connect_timeout, stream.write_all(&bytes))
        .await
        .map_err(|_| End::BrokerUnreachable(UpstreamError::Timeout(up.connect_timeout)))?
        .map_err(|e| End::BrokerGone(e.to_string()))?;
    Ok(Opening {
        stream,
        buf: BytesMut::with_capacity(BROKER_READ_BYTES),
        decoder: Decoder::new(ctx.config.limits),
        addr,
        connect_len: bytes.len(),
    })
}

/// The broker's answer to CONNECT when it is not CONNECTED.
enum Answer {
    /// An ERROR frame (bad credentials, unknown vhost): forwarded as is.
    Error(Frame),
    /// No STOMP answer at all: the broker is refusing or unavailable.
    Refused(Refusal),
}

/// Reads the broker's answer to CONNECT: `Ok(CONNECTED)`, its ERROR, or why there was none.
async fn read_connected(ctx: &RelayContext, up: &mut Opening) -> Result<Frame, Answer> {
    let timeout = ctx.config.upstream.connect_timeout;
    let deadline = Instant::now() + timeout;
    loop {
        let garbage = |what: String| Answer::Refused(Refusal::Garbage(what));
        match up.decoder.decode(&mut up.buf) {
            Ok(Some(Item::Heartbeat)) => continue,
            Ok(Some(Item::Frame(f))) if f.command == Command::Connected => return Ok(f),
            Ok(Some(Item::Frame(f))) if f.command == Command::Error => {
                return Err(Answer::Error(f))
            }
            Ok(Some(Item::Frame(f))) => return Err(garbage(format!("a {} frame", f.command))),
            Err(e) => return Err(garbage(format!("bytes that are not STOMP: {e}"))),
            Ok(None) => {}
        }
        let closed = |why| Answer::Refused(Refusal::Closed(why));
        match timeout_at(deadline, up.stream.read_buf(&mut up.buf)).await {
            Ok(Ok(0)) => return Err(closed(None)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(closed(Some(e.to_string()))),
            Err(_) => return Err(Answer::Refused(Refusal::Silent(timeout))),
        }
    }
}

/// The frame's wire bytes: the original when unchanged, else a fresh encoding.
pub(super) fn frame_bytes(frame: &Frame, version: Version) -> Bytes {
    if let Some(raw) = frame.raw() {
        return raw.clone();
    }
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_limits_follow_negotiation() {
        let client = HeartBeat {
            send_ms: 10_000,
            recv_ms: 10_000,
        };
        let server = HeartBeat {
            send_ms: 4_000,
            recv_ms: 4_000,
        };
        let (c, b) = idle_limits(client, server);
        assert_eq!(c, Some(Duration::from_secs(21)));
        assert_eq!(b, Some(Duration::from_secs(21)));
        let (c, b) = idle_limits(HeartBeat::default(), server);
        assert_eq!((c, b), (None, None));
    }
}
