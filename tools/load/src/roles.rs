//! The tasks a run is made of: publishers (paced or windowed), subscribers (latency from the
//! send timestamp in the body), and idle sessions (heart-beats only).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::sync::{watch, Notify};

use crate::frame::encode;
use crate::session::{Reader, SessionError, Writer};

/// Digits of the send timestamp at the start of every body (nanoseconds since the run's epoch).
pub const STAMP_BYTES: usize = 20;
/// Longest latency the histogram records, microseconds.
const MAX_LATENCY_US: u64 = 120_000_000;
/// How often a publisher blocked by its window re-checks (a wake-up also comes on delivery).
const WINDOW_POLL: Duration = Duration::from_millis(5);
/// Publishers pacing a rate send what is due every tick.
const PACE_TICK: Duration = Duration::from_millis(1);
/// Most error messages kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;

/// What the tasks of a run share.
pub struct Shared {
    /// Timestamps in bodies count from here.
    pub epoch: Instant,
    /// Set when publishers must stop.
    pub stop_publishing: AtomicBool,
    /// Messages sent, all publishers.
    pub sent: AtomicU64,
    /// Upper bound on messages sent (u64::MAX: no bound).
    pub max_messages: u64,
    /// Errors seen (connect failures, ERROR frames, unexpected closes).
    pub errors: AtomicU64,
    /// The first few error messages.
    pub error_samples: Mutex<Vec<String>>,
}

impl Shared {
    /// Fresh counters.
    pub fn new(max_messages: u64) -> Arc<Self> {
        Arc::new(Shared {
            epoch: Instant::now(),
            stop_publishing: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            max_messages,
            errors: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        })
    }

    /// Counts an error and keeps its text if there is room.
    pub fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.error_samples.lock() {
            if s.len() < MAX_ERROR_SAMPLES {
                s.push(what.to_string());
            }
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One destination with its publishers and subscribers; bounds messages in flight.
pub struct Group {
    /// The destination.
    pub destination: String,
    /// Subscribers on it (each delivery counts once per subscriber).
    pub fanout: u64,
    /// Messages sent to it.
    pub sent: AtomicU64,
    /// Deliveries from it, all subscribers.
    pub delivered: AtomicU64,
    /// Woken on delivery.
    pub progress: Notify,
}

impl Group {
    /// A group on `destination` with `fanout` subscribers.
    pub fn new(destination: String, fanout: u64) -> Arc<Self> {
        Arc::new(Group {
            destination,
            fanout,
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            progress: Notify::new(),
        })
    }

    /// Messages sent but not yet delivered to every subscriber (rounded up).
    pub fn in_flight(&self) -> u64 {
        let owed = self.sent.load(Ordering::Relaxed) * self.fanout;
        owed.saturating_sub(self.delivered.load(Ordering::Relaxed))
            .div_ceil(self.fanout.max(1))
    }
}

/// How a publisher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Messages per second for this publisher (`None`: as fast as the window allows).
    pub rate: Option<f64>,
    /// Most messages of its group in flight before it waits.
    pub window: u64,
    /// Body size, bytes (at least [`STAMP_BYTES`]).
    pub body_bytes: usize,
}

/// A SEND frame with a zeroed stamp; returns it and the stamp's offset.
fn send_template(destination: &str, body_bytes: usize) -> (Vec<u8>, usize) {
    let body = vec![b'x'; body_bytes.max(STAMP_BYTES)];
    let frame = encode("SEND", &[("destination", destination)], &body);
    let offset = frame.len() - 1 - body.len();
    (frame.to_vec(), offset)
}

fn stamped(template: &[u8], offset: usize, ns: u64) -> Bytes {
    let mut b = BytesMut::from(template);
    let digits = format!("{ns:0width$}", width = STAMP_BYTES);
    b[offset..offset + STAMP_BYTES].copy_from_slice(digits.as_bytes());
    b.freeze()
}

/// Publishes to `group` until told to stop or the message budget is spent; returns messages sent.
pub async fn publish(mut w: Writer, group: Arc<Group>, shared: Arc<Shared>, pace: Pace) -> u64 {
    let (template, offset) = send_template(&group.destination, pace.body_bytes);
    let started = Instant::now();
    let mut mine = 0u64;
    while !shared.stop_publishing.load(Ordering::Relaxed) {
        if group.in_flight() >= pace.window {
            let _ = tokio::time::timeout(WINDOW_POLL, group.progress.notified()).await;
            continue;
        }
        if let Some(rate) = pace.rate {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            if mine >= due {
                tokio::time::sleep(PACE_TICK).await;
                continue;
            }
        }
        if shared.sent.fetch_add(1, Ordering::Relaxed) >= shared.max_messages {
            break;
        }
        group.sent.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = w.send(stamped(&template, offset, shared.now_ns())).await {
            shared.error(format!("publisher: {e}"));
            break;
        }
        mine += 1;
    }
    w.close().await;
    mine
}

/// What a subscriber saw.
pub struct Received {
    /// Publish-to-delivery latency, microseconds.
    pub latency_us: Histogram<u64>,
    /// MESSAGE frames received.
    pub messages: u64,
    /// Body bytes received.
    pub bytes: u64,
}

/// Reads MESSAGEs until `stop` turns true; records latency from the body's stamp.
pub async fn subscribe(
    mut r: Reader,
    group: Arc<Group>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut got = Received {
        latency_us: Histogram::new_with_max(MAX_LATENCY_US, 3).expect("valid histogram bounds"),
        messages: 0,
        bytes: 0,
    };
    let mut heartbeats = 0;
    loop {
        let frame = tokio::select! {
            _ = stopped(&mut stop) => break,
            f = r.next_frame(&mut heartbeats) => f,
        };
        match frame {
            Ok(Some(f)) if f.command() == b"MESSAGE" => {
                record(&mut got, &f.body, shared.now_ns());
                group.delivered.fetch_add(1, Ordering::Relaxed);
                group.progress.notify_one();
            }
            Ok(Some(f)) if f.command() == b"ERROR" => {
                shared.error(format!("subscriber got ERROR: {}", f.header_str("message")));
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                shared.error("subscriber: peer closed");
                break;
            }
            Err(e) => {
                shared.error(format!("subscriber: {e}"));
                break;
            }
        }
    }
    got
}

fn record(got: &mut Received, body: &[u8], now_ns: u64) {
    got.messages += 1;
    got.bytes += body.len() as u64;
    let stamp = body
        .get(..STAMP_BYTES)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<u64>().ok());
    if let Some(sent) = stamp {
        let us = now_ns.saturating_sub(sent) / 1_000;
        let _ = got.latency_us.record(us.clamp(1, MAX_LATENCY_US));
    }
}

/// Holds an idle session: sends a heart-beat every `every` and reads what comes, until `stop`.
/// Returns the heart-beats received.
pub async fn idle(
    mut w: Writer,
    mut r: Reader,
    every: Option<Duration>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let mut heartbeats = 0;
    let period = every.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tick.tick(), if every.is_some() => {
                if let Err(e) = w.send(Bytes::from_static(b"\n")).await {
                    shared.error(format!("idle session: {e}"));
                    break;
                }
            }
            f = r.next_frame(&mut heartbeats) => match f {
                Ok(Some(_)) => {}
                Ok(None) => { shared.error("idle session: peer closed"); break; }
                Err(e) => { shared.error(format!("idle session: {e}")); break; }
            },
        }
    }
    w.close().await;
    heartbeats
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Turns a session failure into a counted error.
pub fn count_failure(shared: &Shared, what: &str, e: &SessionError) {
    shared.error(format!("{what}: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let (t, off) = send_template("/topic/x", 100);
        let frame = stamped(&t, off, 123_456_789);
        let mut p = crate::frame::Parser::new(1 << 20);
        p.push(&frame);
        let Some(crate::frame::Item::Frame(f)) = p.next_item().unwrap() else {
            panic!("no frame");
        };
        assert_eq!(f.body.len(), 100);
        let mut got = Received {
            latency_us: Histogram::new_with_max(MAX_LATENCY_US, 3).unwrap(),
            messages: 0,
            bytes: 0,
        };
        record(&mut got, &f.body, 123_456_789 + 2_000_000);
        assert_eq!(got.messages, 1);
        assert_eq!(got.latency_us.max(), 2000);
    }

    #[test]
    fn in_flight_counts_per_subscriber() {
        let g = Group::new("/q".into(), 3);
        g.sent.store(10, Ordering::Relaxed);
        g.delivered.store(27, Ordering::Relaxed);
        assert_eq!(g.in_flight(), 1);
    }
}
