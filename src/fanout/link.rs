//! The shared broker connection of one broker identity: CONNECT, then the hub's SUBSCRIBE and
//! UNSUBSCRIBE frames out, MESSAGE frames in (handed to the hub). It ends when the hub drops
//! its queue (no subscription left) or the broker fails, which ends every member.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use super::hub::{BrokerKey, FanoutHub};
use crate::stomp::{parse_heartbeat, Command, Decoder, Frame, Item, Version};
use crate::upstream;

/// The shared connection sends no heart-beats and asks for the broker's every 10 s.
pub(super) const HEARTBEAT_HEADER: &str = "0,10000";
/// The broker heart-beat interval asked for.
const BROKER_HEARTBEAT_MS: u32 = 10_000;
/// Most time one write to the broker may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Broker read size.
const READ_BYTES: usize = 64 * 1024;

/// Runs the shared connection `conn_id` until it is no longer needed or fails.
pub(super) async fn run(
    hub: Arc<FanoutHub>,
    key: Arc<BrokerKey>,
    conn_id: u64,
    mut out: mpsc::Receiver<Bytes>,
) {
    match relay(&hub, &key, conn_id, &mut out).await {
        Ok(()) => debug!(
            conn = conn_id,
            "shared broker connection closed: no subscriptions"
        ),
        Err(why) => {
            warn!(conn = conn_id, cause = %why, "shared broker connection failed");
            hub.fail(&key, conn_id, &why);
        }
    }
}

async fn relay(
    hub: &FanoutHub,
    key: &Arc<BrokerKey>,
    conn_id: u64,
    out: &mut mpsc::Receiver<Bytes>,
) -> Result<(), String> {
    let (mut stream, addr) = upstream::connect(
        &hub.members,
        hub.upstream.connect_timeout,
        hub.tls.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    timeout(WRITE_TIMEOUT, stream.write_all(&key.connect_frame()))
        .await
        .map_err(|_| "CONNECT write timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new(hub.limits);
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let deadline = Instant::now() + hub.upstream.connect_timeout;
    let connected = read_frame(&mut stream, &mut decoder, &mut buf, Some(deadline)).await?;
    if connected.command != Command::Connected {
        return Err("broker refused the gateway's shared connection".into());
    }
    decoder.set_version(Version::V1_2);
    info!(conn = conn_id, upstream = %addr, "shared broker connection open");
    let idle = broker_idle(&connected);
    let (mut rd, mut wr) = tokio::io::split(stream);
    loop {
        tokio::select! {
            biased;
            frame = out.recv() => {
                let Some(frame) = frame else { return Ok(()) };
                timeout(WRITE_TIMEOUT, wr.write_all(&frame))
                    .await
                    .map_err(|_| "broker write timed out".to_string())?
                    .map_err(|e| e.to_string())?;
            }
            frame = read_frame(&mut rd, &mut decoder, &mut buf, idle.map(|d| Instant::now() + d)) => {
                let frame = frame?;
                match frame.command {
                    Command::Message => hub.deliver(key, conn_id, frame),
                    Command::Receipt => {
                        hub.confirm(key, conn_id, frame.header_bytes("receipt-id").unwrap_or_default())
                    }
                    Command::Error => return Err(format!("broker ERROR: {}", frame.header("message").unwrap_or(""))),
                    _ => {}
                }
            }
        }
    }
}

/// How long the broker may stay silent: twice its heart-beat interval plus slack, or no limit
/// when it sends none.
fn broker_idle(connected: &Frame) -> Option<Duration> {
    let hb = connected.header("heart-beat").and_then(parse_heartbeat)?;
    (hb.send_ms > 0).then(|| {
        Duration::from_millis(u64::from(hb.send_ms.max(BROKER_HEARTBEAT_MS))) * 2
            + Duration::from_secs(1)
    })
}

/// The next frame (heart-beats skipped), by `deadline` when given. Cancel-safe: bytes read
/// stay in `buf`.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    deadline: Option<Instant>,
) -> Result<Frame, String> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(Item::Frame(f))) => return Ok(f),
            Ok(Some(Item::Heartbeat)) => continue,
            Ok(None) => {}
            Err(e) => return Err(format!("broker sent an invalid frame: {e}")),
        }
        if buf.capacity() - buf.len() < READ_BYTES / 4 {
            buf.reserve(READ_BYTES);
        }
        let read = match deadline {
            Some(d) => timeout_at(d, rd.read_buf(buf))
                .await
                .map_err(|_| "heart-beat timeout: nothing from the broker".to_string())?,
            None => rd.read_buf(buf).await,
        };
        match read {
            Ok(0) => return Err("broker closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
