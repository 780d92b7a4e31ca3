//! The Connected state: `client_to_broker` and `broker_to_client`, run side by side.
//!
//! Each pump decodes every whole frame its buffer holds, forwards them in one batch (one write
//! to the broker; one flush to the client), then waits for more bytes. Backpressure is natural:
//! a pump that cannot write does not read, so a slow browser slows its broker socket and a slow
//! broker slows its browser (invariant 4).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::authorize::check_acl;
use super::handshake::{frame_bytes, Upstream, BROKER_READ_BYTES};
use super::{ClientSide, End, RelayContext};
use crate::metrics::{Direction, FrameTally, SessionRecorder};
use crate::policy::Identity;
use crate::stomp::{encode, Command, Frame, Item, Version};
use crate::transport::{ClientRx, ClientTx};

/// How long a DISCONNECT waits for the broker's RECEIPT before the session closes anyway.
const DISCONNECT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One heart-beat EOL.
static HEARTBEAT: Bytes = Bytes::from_static(b"\n");

/// Runs both pumps until one ends; returns why.
pub(super) async fn run<R: ClientRx, T: ClientTx>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    tx: &mut T,
    up: Upstream,
) -> End {
    let Upstream {
        stream,
        mut buf,
        mut decoder,
        version,
        client_idle,
        broker_idle,
    } = up;
    let (mut broker_rd, mut broker_wr) = tokio::io::split(stream);
    // Set by client_to_broker when DISCONNECT asked for a receipt; broker_to_client ends the
    // session once that RECEIPT has been delivered.
    let disconnect_receipt = OnceLock::new();
    let rec = client.rec.clone();
    // Without client heart-beats, `idle_timeout` still bounds the client's silence.
    let idle = match client_idle {
        Some(limit) => Some(IdleLimit::Heartbeat(limit)),
        None => ctx.config.idle_timeout.map(IdleLimit::Idle),
    };
    let c2b = client_to_broker(
        ctx,
        client,
        &mut broker_wr,
        version,
        idle,
        &disconnect_receipt,
    );
    let b2c = broker_to_client(
        &mut broker_rd,
        &mut buf,
        &mut decoder,
        tx,
        broker_idle,
        &disconnect_receipt,
        &rec,
    );
    tokio::select! {
        end = c2b => end,
        end = b2c => end,
    }
}

/// Reads the client, checks each frame, forwards it to the broker.
async fn client_to_broker<R: ClientRx, W: AsyncWrite + Unpin>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    broker: &mut W,
    version: Version,
    idle: Option<IdleLimit>,
    disconnect_receipt: &OnceLock<Bytes>,
) -> End {
    let mut out = Outgoing::default();
    let dir = Direction::ClientToBroker;
    let mut tally = client.rec.tally(dir);
    loop {
        let step = decode_client_batch(ctx, client, version, &mut out, &mut tally);
        if out.len() > 0 {
            client.rec.set_queued(dir, out.len() + client.buf.len());
            if let Err(e) = out.write_to(broker).await {
                return End::BrokerGone(e.to_string());
            }
        }
        client.rec.set_queued(dir, client.buf.len());
        tally.flush();
        match step {
            Batch::More => {}
            Batch::End(end) => return end,
            Batch::Disconnect(receipt) => {
                let Some(receipt) = receipt else {
                    return End::Disconnected;
                };
                let _ = disconnect_receipt.set(receipt);
                // broker_to_client ends the session when the RECEIPT arrives.
                tokio::time::sleep(DISCONNECT_RECEIPT_TIMEOUT).await;
                return End::Disconnected;
            }
        }
        out.release_if_large();
        if client.buf.is_empty() {
            // The next chunk becomes the buffer (see below); an idle session holds none.
            client.buf = BytesMut::new();
        }
        let chunk = match idle {
            Some(limit) => match tokio::time::timeout(limit.duration(), client.rx.recv()).await {
                Ok(r) => r,
                Err(_) => return limit.end(),
            },
            None => client.rx.recv().await,
        };
        match chunk {
            // Without a copy when the link hands over a buffer of its own.
            Ok(Some(chunk)) if client.buf.is_empty() => client.buf = BytesMut::from(chunk),
            Ok(Some(chunk)) => client.buf.extend_from_slice(&chunk),
            Ok(None) => return End::ClientGone,
            Err(e) => return End::from_link(e),
        }
    }
}

/// How long the client may stay silent, and why.
#[derive(Debug, Clone, Copy)]
enum IdleLimit {
    /// The negotiated heart-beat interval, with grace.
    Heartbeat(Duration),
    /// No heart-beats were negotiated: `idle_timeout`.
    Idle(Duration),
}

impl IdleLimit {
    fn duration(self) -> Duration {
        match self {
            IdleLimit::Heartbeat(d) | IdleLimit::Idle(d) => d,
        }
    }

    fn end(self) -> End {
        match self {
            IdleLimit::Heartbeat(_) => End::ClientHeartbeatTimeout,
            IdleLimit::Idle(_) => End::ClientIdle,
        }
    }
}

/// Largest broker write buffer kept between batches; a larger one (after a burst or a large
/// frame) is given back so an idle session does not keep it.
const KEPT_OUT_BYTES: usize = 16 * 1024;
/// Most a batch reserves up front in the broker write buffer (beyond it, the buffer grows): as
/// much as the client links make room for in a batch they join.
const OUT_RESERVE_BYTES: usize = crate::transport::MAX_BATCH_ROOM_BYTES;

/// Frames from this size up are written from the client's buffer as they are, not copied
/// into the batch buffer (a 1 MiB frame would cost a 1 MiB copy for one saved system call).
const BY_REFERENCE_BYTES: usize = 32 * 1024;

/// One batch of frames for the broker: small frames copied together into one buffer, large
/// ones kept by reference, written in order.
#[derive(Default)]
struct Outgoing {
    /// Small frames not yet sealed into `parts`.
    small: BytesMut,
    /// Sealed parts, in order, written before `small`.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
}

impl Outgoing {
    fn len(&self) -> usize {
        self.parts_len + self.small.len()
    }

    fn push_raw(&mut self, raw: &Bytes) {
        if raw.len() < BY_REFERENCE_BYTES {
            self.small.extend_from_slice(raw);
            return;
        }
        if !self.small.is_empty() {
            let small = self.small.split().freeze();
            self.push_part(small);
        }
        self.push_part(raw.clone());
    }

    fn push_part(&mut self, part: Bytes) {
        self.parts_len += part.len();
        self.parts.push(part);
    }

    /// Writes the batch (one `write_all` per part, the small frames as one) and empties it.
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<()> {
        for part in self.parts.drain(..) {
            w.write_all(&part).await?;
        }
        self.parts_len = 0;
        w.write_all(&self.small).await?;
        self.small.clear();
        Ok(())
    }

    /// Gives back a batch buffer grown past [`KEPT_OUT_BYTES`].
    fn release_if_large(&mut self) {
        if self.small.capacity() > KEPT_OUT_BYTES {
            self.small = BytesMut::new();
        }
    }
}

/// What decoding the client's buffered bytes led to.
enum Batch {
    /// All whole frames were taken; wait for more bytes.
    More,
    /// DISCONNECT forwarded (with its receipt id, if any): stop reading the client.
    Disconnect(Option<Bytes>),
    /// The session must end.
    End(End),
}

/// Decodes every whole frame in the client's buffer into `out`, refusing what may not pass.
/// Each forwarded item is counted in `tally` (published once the batch is written).
fn decode_client_batch<R>(
    ctx: &RelayContext,
    client: &mut ClientSide<R>,
    version: Version,
    out: &mut Outgoing,
    tally: &mut FrameTally,
) -> Batch {
    // A large batch gets its room at once (its frames are at most what is buffered) instead of
    // growing the buffer, and copying what it holds again, frame by frame. A small one grows as
    // before: reserving for every batch kept larger buffers in busy sessions (fan-in of 1,000
    // publishers: +3 MiB RSS) for no measurable gain.
    if client.buf.len() > KEPT_OUT_BYTES {
        out.small.reserve(client.buf.len().min(OUT_RESERVE_BYTES));
    }
    loop {
        let frame = match client.decoder.decode(&mut client.buf) {
            Ok(None) => return Batch::More,
            Ok(Some(Item::Heartbeat)) => {
                tally.heartbeat();
                out.push_raw(&HEARTBEAT);
                continue;
            }
            Ok(Some(Item::Frame(f))) => f,
            Err(e) => return Batch::End(End::Malformed(e)),
        };
        if let Err(end) = check_client_frame(ctx, client.identity.as_ref(), &frame) {
            return Batch::End(end);
        }
        let before = out.len();
        append_frame(&frame, version, out);
        tally.frame(&frame, out.len() - before);
        if frame.command == Command::Disconnect {
            return Batch::Disconnect(frame.header_value("receipt"));
        }
    }
}

/// The per-frame rules of the Connected state (invariants 1 and 3).
fn check_client_frame(
    ctx: &RelayContext,
    identity: Option<&Identity>,
    frame: &Frame,
) -> Result<(), End> {
    let receipt = || frame.header_value("receipt");
    if frame.command.is_connect() {
        return Err(End::protocol(
            "already connected: a second CONNECT is not allowed",
            receipt(),
        ));
    }
    if frame.command.is_server() {
        return Err(End::protocol(
            format!(
                "{} is a server frame; a client may not send it",
                frame.command
            ),
            receipt(),
        ));
    }
    let (destination, repeated) = frame.first_header("destination");
    if repeated {
        return Err(End::protocol(
            "ambiguous frame: repeated `destination` header",
            receipt(),
        ));
    }
    check_acl(ctx, identity, frame, destination)
}

fn append_frame(frame: &Frame, version: Version, out: &mut Outgoing) {
    match frame.raw() {
        Some(raw) => out.push_raw(raw),
        None => encode(frame, version, &mut out.small),
    }
}

/// Reads the broker, forwards every frame to the client as one message each.
async fn broker_to_client<Rd: AsyncRead + Unpin, T: ClientTx>(
    broker: &mut Rd,
    buf: &mut BytesMut,
    decoder: &mut crate::stomp::Decoder,
    tx: &mut T,
    idle: Option<Duration>,
    disconnect_receipt: &OnceLock<Bytes>,
    rec: &Arc<SessionRecorder>,
) -> End {
    let dir = Direction::BrokerToClient;
    let mut tally = rec.tally(dir);
    let mut read_size = ReadSize(BROKER_READ_BYTES);
    let mut first_batch = true;
    loop {
        // Brokers (RabbitMQ) write an EOL after every frame. Right behind a frame it is padding,
        // not a heart-beat: the frame already showed the client the link is alive, and sending
        // it as a message of its own would double the WebSocket messages.
        // Only within one read: a later lone EOL is a real heart-beat. The first batch follows
        // the broker's CONNECTED (and its padding may still be in the buffer).
        let mut after_frame = first_batch;
        first_batch = false;
        loop {
            let frame = match decoder.decode(buf) {
                Ok(None) => break,
                Ok(Some(Item::Heartbeat)) if after_frame => {
                    after_frame = false;
                    continue;
                }
                Ok(Some(Item::Heartbeat)) => {
                    tally.heartbeat();
                    if let Err(e) = tx.send(HEARTBEAT.clone()).await {
                        return End::from_link(e);
                    }
                    continue;
                }
                Ok(Some(Item::Frame(f))) => f,
                Err(e) => return End::BrokerProtocol(e.to_string()),
            };
            after_frame = true;
            let end = ends_session(&frame, disconnect_receipt);
            let bytes = match frame.raw() {
                Some(raw) => {
                    tally.frame(&frame, raw.len());
                    // Forwarded as it came: the bytes move out, the frame is done with.
                    frame.into_raw().unwrap_or_default()
                }
                None => {
                    let bytes = frame_bytes(&frame, Version::V1_0);
                    tally.frame(&frame, bytes.len());
                    bytes
                }
            };
            if let Err(e) = tx.send(bytes).await {
                return End::from_link(e);
            }
            if let Some(end) = end {
                let _ = tx.flush().await;
                return end;
            }
        }
        if let Err(e) = tx.flush().await {
            return End::from_link(e);
        }
        rec.set_queued(dir, buf.len());
        tally.flush();
        let spare = read_size.prepare(buf);
        let read = match idle {
            Some(limit) => match tokio::time::timeout(limit, broker.read_buf(buf)).await {
                Ok(r) => r,
                Err(_) => return End::BrokerHeartbeatTimeout,
            },
            None => broker.read_buf(buf).await,
        };
        match read {
            Ok(0) => return End::BrokerGone("broker closed the connection".into()),
            Ok(n) => {
                read_size.observe(n, spare);
                rec.set_queued(dir, buf.len());
            }
            Err(e) => return End::BrokerGone(e.to_string()),
        }
    }
}

/// Largest read the broker side grows to when reads keep filling the buffer.
const MAX_BROKER_READ_BYTES: usize = 64 * 1024;

/// Adaptive size of broker reads: doubles while reads fill the room given, halves when they use
/// under a quarter of it. A busy session reads in large chunks; an idle one (heart-beats only)
/// shrinks back to [`BROKER_READ_BYTES`] and gives its larger buffer back.
struct ReadSize(usize);

impl ReadSize {
    /// Makes room for the next read; returns the room.
    fn prepare(&self, buf: &mut BytesMut) -> usize {
        if buf.is_empty() && buf.capacity() > 2 * self.0 {
            *buf = BytesMut::new();
        }
        if buf.capacity() - buf.len() < self.0 / 2 {
            buf.reserve(self.0);
        }
        buf.capacity() - buf.len()
    }

    /// Adapts to a read of `n` bytes into `room`.
    fn observe(&mut self, n: usize, room: usize) {
        if n >= room {
            self.0 = (self.0 * 2).min(MAX_BROKER_READ_BYTES);
        } else if n < self.0 / 4 {
            self.0 = (self.0 / 2).max(BROKER_READ_BYTES);
        }
    }
}

/// A broker ERROR ends the session (the broker closes after it); so does the RECEIPT of the
/// client's DISCONNECT.
fn ends_session(frame: &Frame, disconnect_receipt: &OnceLock<Bytes>) -> Option<End> {
    match frame.command {
        Command::Error => Some(End::BrokerError),
        Command::Receipt => {
            let wanted = disconnect_receipt.get()?;
            (frame.header_bytes("receipt-id") == Some(&wanted[..])).then_some(End::Disconnected)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_keeps_frame_order_with_large_frames_by_reference() {
        let large = Bytes::from(vec![b'L'; BY_REFERENCE_BYTES]);
        let mut out = Outgoing::default();
        out.push_raw(&Bytes::from_static(b"a"));
        out.push_raw(&large);
        out.push_raw(&Bytes::from_static(b"b"));
        out.push_raw(&large);
        out.push_raw(&Bytes::from_static(b"c"));
        assert_eq!(out.len(), 3 + 2 * large.len());
        let mut wire = Vec::new();
        out.write_to(&mut wire).await.unwrap();
        let mut want = b"a".to_vec();
        want.extend_from_slice(&large);
        want.push(b'b');
        want.extend_from_slice(&large);
        want.push(b'c');
        assert_eq!(wire, want);
        assert_eq!(out.len(), 0);
        out.push_raw(&Bytes::from_static(b"d"));
        let mut wire = Vec::new();
        out.write_to(&mut wire).await.unwrap();
        assert_eq!(wire, b"d");
    }

    #[test]
    fn read_size_grows_when_reads_fill_and_gives_memory_back_when_idle() {
        let mut size = ReadSize(BROKER_READ_BYTES);
        let mut buf = BytesMut::new();
        for _ in 0..10 {
            let room = size.prepare(&mut buf);
            size.observe(room, room);
        }
        assert_eq!(size.0, MAX_BROKER_READ_BYTES);
        let mut big = BytesMut::with_capacity(MAX_BROKER_READ_BYTES);
        for _ in 0..10 {
            let room = size.prepare(&mut big);
            size.observe(1, room);
        }
        assert_eq!(size.0, BROKER_READ_BYTES);
        assert!(
            big.capacity() <= 2 * BROKER_READ_BYTES,
            "{}",
            big.capacity()
        );
    }
}
