//! The `handshake` scenario: open N connections with a concurrency limit, each up to a chosen
//! [`Stage`] (TCP + TLS, + WebSocket upgrade, + STOMP CONNECT), optionally closing each right
//! after. Reports handshakes per second, handshake latency percentiles, the watched gateway's
//! CPU per handshake, and, when the connections are held open, its memory per connection.
//!
//! Every attempt is bounded by [`ATTEMPT_TIMEOUT`] and the whole run by the run's duration:
//! attempts not started by then are counted as `not_started`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::link::{Dialer, Ws};
use crate::procstat;
use crate::report::{Latency, Report};
use crate::roles::Shared;
use crate::run::RunOptions;
use crate::session::{self, Credentials, Reader, SessionError, Writer};
use crate::tls::Stream;

/// Time allowed for one attempt, every step included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for closing one connection politely.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after the last handshake, before memory is read (held connections only).
const HOLD_SETTLE: Duration = Duration::from_secs(2);
/// Longest latency recorded, microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Largest frame accepted from the server (CONNECTED, ERROR).
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most handshakes one run may ask for.
pub const MAX_HANDSHAKES: usize = 100_000;

/// How far each handshake goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// TCP connect and the TLS handshake (just the TCP connect on a plain `ws://` target).
    #[default]
    Tls,
    /// ... and the WebSocket upgrade (SockJS: its `o` frame too; `sockjs+xhr`: the streaming
    /// request up to its `o` frame, no upgrade).
    Ws,
    /// ... and STOMP CONNECT / CONNECTED.
    Stomp,
}

/// The handshake scenario's settings.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeOptions {
    /// Connections to open.
    pub count: usize,
    /// How far each goes.
    pub stage: Stage,
    /// Close each right after its handshake (else hold all until the end and measure memory).
    pub close_each: bool,
}

/// What the handshake scenario measured.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Figures {
    /// How far each handshake went.
    pub stage: Stage,
    /// Whether each was closed right after.
    pub close_each: bool,
    /// Asked for.
    pub requested: usize,
    /// Completed.
    pub ok: u64,
    /// Failed or timed out.
    pub failed: u64,
    /// Not started before the run's time limit.
    pub not_started: u64,
    /// Seconds from the first attempt to the last one ending.
    pub secs: f64,
    /// Completed handshakes per second over `secs`.
    pub per_sec: f64,
    /// Time from the TCP connect to the stage's end.
    pub latency: Latency,
    /// The watched process's CPU per completed handshake, microseconds.
    pub cpu_us_per_handshake: Option<f64>,
}

impl Figures {
    /// A few lines for people.
    pub fn human(&self) -> String {
        let l = &self.latency;
        format!(
            "  handshakes to {:?}{}: ok={} failed={} not-started={} of {} in {:.2}s: {:.0}/s{}\n  handshake latency us: p50={} p99={} p99.9={} max={}\n",
            self.stage,
            if self.close_each { " (closed each)" } else { " (held open)" },
            self.ok,
            self.failed,
            self.not_started,
            self.requested,
            self.secs,
            self.per_sec,
            self.cpu_us_per_handshake
                .map_or(String::new(), |c| format!(", watched CPU {c:.0} us/handshake")),
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.max_us
        )
    }
}

/// Counts attempts as they end.
pub struct Tally {
    requested: usize,
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
}

impl Tally {
    /// An empty tally for `requested` attempts.
    pub fn new(requested: usize) -> Self {
        Tally {
            requested,
            ok: 0,
            failed: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
        }
    }

    /// One completed handshake that took `took`.
    pub fn ok(&mut self, took: Duration) {
        self.ok += 1;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self.latency.record(us.clamp(1, MAX_LATENCY_US));
    }

    /// One failed attempt.
    pub fn failed(&mut self) {
        self.failed += 1;
    }

    /// The figures over `secs` of wall time, with the watched process's CPU seconds.
    pub fn figures(&self, opts: &HandshakeOptions, secs: f64, cpu_secs: Option<f64>) -> Figures {
        let ok = self.ok;
        let done = usize::try_from(ok + self.failed).unwrap_or(usize::MAX);
        let mut latency = Latency::default();
        if !self.latency.is_empty() {
            latency = Latency {
                p50_us: self.latency.value_at_quantile(0.5),
                p99_us: self.latency.value_at_quantile(0.99),
                p999_us: self.latency.value_at_quantile(0.999),
                max_us: self.latency.max(),
            };
        }
        Figures {
            stage: opts.stage,
            close_each: opts.close_each,
            requested: self.requested,
            ok,
            failed: self.failed,
            not_started: self.requested.saturating_sub(done) as u64,
            secs,
            per_sec: ok as f64 / secs.max(1e-6),
            latency,
            cpu_us_per_handshake: cpu_secs.filter(|_| ok > 0).map(|c| c * 1e6 / ok as f64),
        }
    }
}

/// A connection kept open until the end of the run.
enum Held {
    Stream(Stream),
    Ws(Box<Ws>),
    Session(Writer, Reader),
}

impl Held {
    async fn close(self) {
        let fut = async {
            match self {
                Held::Stream(mut s) => {
                    let _ = s.shutdown().await;
                }
                Held::Ws(mut ws) => {
                    let _ = ws.close(None).await;
                }
                Held::Session(mut w, _r) => w.close().await,
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, fut).await;
    }
}

/// One attempt up to `stage`.
async fn attempt(
    dialer: &Dialer,
    n: usize,
    stage: Stage,
    creds: &Credentials,
) -> Result<Held, SessionError> {
    let stream = dialer.transport(n).await?;
    if stage == Stage::Tls {
        return Ok(Held::Stream(stream));
    }
    // SockJS's handshake ends with its `o` frame, which `link` and `xhr_link` wait for.
    let (tx, rx) = if dialer.is_xhr() {
        dialer.xhr_link(stream, n).await?
    } else {
        let ws = dialer.upgrade(stream, n).await?;
        if stage == Stage::Ws && !dialer.is_sockjs() {
            return Ok(Held::Ws(Box::new(ws)));
        }
        dialer.link(ws).await?
    };
    let (w, r) = match stage {
        Stage::Stomp => session::connect_link(tx, rx, creds, MAX_REPLY_BYTES).await?,
        _ => session::unconnected(tx, rx, MAX_REPLY_BYTES),
    };
    Ok(Held::Session(w, r))
}

/// Runs the handshake scenario.
pub async fn run(opts: RunOptions, hs: HandshakeOptions) -> Report {
    let shared = Shared::new(0);
    let count = hs.count.min(MAX_HANDSHAKES);
    let before = opts.pid.and_then(procstat::sample);
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let deadline = tokio::time::Instant::now() + opts.duration;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for n in 0..count {
        let (gate, dialer, creds) = (gate.clone(), opts.dialer.clone(), opts.creds.clone());
        set.spawn(async move {
            let _permit = tokio::time::timeout_at(deadline, gate.acquire_owned())
                .await
                .ok()?
                .ok()?;
            let t0 = Instant::now();
            let got = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt(&dialer, n, hs.stage, &creds))
                .await
                .unwrap_or(Err(SessionError::Timeout("handshake")));
            let took = t0.elapsed();
            match got {
                Ok(held) if hs.close_each => {
                    held.close().await;
                    Some(Ok((took, None)))
                }
                Ok(held) => Some(Ok((took, Some(held)))),
                Err(e) => Some(Err(e)),
            }
        });
    }
    let mut tally = Tally::new(count);
    let mut held = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Some(Ok((took, h)))) => {
                tally.ok(took);
                held.extend(h);
            }
            Ok(Some(Err(e))) => {
                tally.failed();
                shared.error(format!("handshake: {e}"));
            }
            Ok(None) => {}
            Err(e) => {
                tally.failed();
                shared.error(format!("handshake task: {e}"));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = opts.pid.and_then(procstat::sample);
    let cpu = before.zip(after).map(|(b, a)| a.cpu_secs - b.cpu_secs);
    let figures = tally.figures(&hs, secs, cpu);
    let loaded = if held.is_empty() {
        None
    } else {
        tokio::time::sleep(HOLD_SETTLE).await;
        opts.pid.and_then(procstat::sample)
    };
    let mut report = Report::new(&opts, held.len(), &shared);
    if loaded.is_some() {
        report.idle(before, loaded, None, 0);
    } else {
        report.process(before, after);
    }
    report.handshakes = Some(figures);
    close_all(held).await;
    report
}

/// Closes held connections, a bounded batch at a time.
async fn close_all(held: Vec<Held>) {
    let mut set = JoinSet::new();
    for h in held {
        set.spawn(h.close());
        if set.len() >= 256 {
            set.join_next().await;
        }
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_accounts_for_every_attempt() {
        let opts = HandshakeOptions {
            count: 10,
            stage: Stage::Ws,
            close_each: true,
        };
        let mut t = Tally::new(10);
        for ms in [1, 2, 3, 4, 100] {
            t.ok(Duration::from_millis(ms));
        }
        t.failed();
        t.failed();
        let f = t.figures(&opts, 2.0, Some(0.5));
        assert_eq!((f.ok, f.failed, f.not_started, f.requested), (5, 2, 3, 10));
        assert!((f.per_sec - 2.5).abs() < 1e-9);
        assert!((f.cpu_us_per_handshake.unwrap() - 100_000.0).abs() < 1e-6);
        assert!(
            (2_990..=3_010).contains(&f.latency.p50_us),
            "{:?}",
            f.latency
        );
        assert!((99_900..=100_100).contains(&f.latency.max_us));
        assert_eq!((f.stage, f.close_each), (Stage::Ws, true));
    }

    #[test]
    fn empty_tally_has_no_rates() {
        let opts = HandshakeOptions {
            count: 3,
            stage: Stage::Tls,
            close_each: false,
        };
        let f = Tally::new(3).figures(&opts, 0.0, Some(1.0));
        assert_eq!(f.ok, 0);
        assert_eq!(f.not_started, 3);
        assert_eq!(f.per_sec, 0.0);
        assert_eq!(f.cpu_us_per_handshake, None);
        assert_eq!(f.latency, Latency::default());
    }
}
