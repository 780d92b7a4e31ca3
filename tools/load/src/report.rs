//! The result of a run: printed for people, and as one JSON line for scripts.

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::handshake::Figures;
use crate::procstat::Sample;
use crate::roles::Shared;
use crate::run::{RunOptions, Scenario};

/// Latency percentiles, microseconds.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// The watched process over the measured window.
#[derive(Debug, Default, Serialize)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// RSS at the start, KiB.
    pub rss_start_kib: u64,
    /// RSS at the end, KiB.
    pub rss_end_kib: u64,
    /// CPU seconds (user + system) used in the window.
    pub cpu_secs: f64,
    /// CPU in the window over wall time (1.0 = one core busy).
    pub cpu_cores: f64,
    /// CPU microseconds per delivered message.
    pub cpu_us_per_msg: Option<f64>,
    /// For idle runs: RSS added per open session, KiB.
    pub rss_per_session_kib: Option<f64>,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Free-form label (what was measured).
    pub label: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Sessions that opened.
    pub sessions: usize,
    /// Body size, bytes.
    pub body_bytes: usize,
    /// Asked-for total rate (None: as fast as possible).
    pub rate: Option<f64>,
    /// Messages published.
    pub sent: u64,
    /// Messages delivered (each subscriber's copy counts).
    pub delivered: u64,
    /// Deliveries that should have happened and did not.
    pub lost: u64,
    /// Seconds spent publishing.
    pub publish_secs: f64,
    /// Deliveries per second over the whole window (publish + drain).
    pub delivered_per_sec: f64,
    /// Body megabytes per second delivered.
    pub mb_per_sec: f64,
    /// Publish-to-delivery latency.
    pub latency: Latency,
    /// Errors counted.
    pub errors: u64,
    /// The first few errors.
    pub error_samples: Vec<String>,
    /// Heart-beats received (idle).
    pub heartbeats: u64,
    /// The watched process.
    pub process: Option<Process>,
    /// The handshake scenario's figures.
    pub handshakes: Option<Figures>,
    /// Idle: seconds from the first connect until every session was CONNECTED (or failed).
    pub open_secs: Option<f64>,
}

impl Report {
    /// An empty report for this run.
    pub fn new(opts: &RunOptions, sessions: usize, shared: &Shared) -> Self {
        Report {
            label: opts.label.clone(),
            scenario: opts.scenario,
            sessions,
            body_bytes: opts.body_bytes,
            rate: opts.rate,
            sent: 0,
            delivered: 0,
            lost: 0,
            publish_secs: 0.0,
            delivered_per_sec: 0.0,
            mb_per_sec: 0.0,
            latency: Latency::default(),
            errors: shared.errors.load(Ordering::Relaxed),
            error_samples: shared
                .error_samples
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            heartbeats: 0,
            process: None,
            handshakes: None,
            open_secs: None,
        }
    }

    /// Fills the traffic figures.
    pub fn traffic(
        &mut self,
        sent: u64,
        delivered: u64,
        expected: u64,
        bytes: u64,
        publish_secs: f64,
        window_secs: f64,
    ) {
        self.sent = sent;
        self.delivered = delivered;
        self.lost = expected.saturating_sub(delivered);
        self.publish_secs = publish_secs;
        let secs = window_secs.max(1e-6);
        self.delivered_per_sec = delivered as f64 / secs;
        self.mb_per_sec = bytes as f64 / secs / 1e6;
    }

    /// Fills the latency percentiles.
    pub fn latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.latency = Latency {
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        };
    }

    /// Fills the watched process's figures from readings at the start and end of the window.
    pub fn process(&mut self, before: Option<Sample>, after: Option<Sample>) {
        let (Some(b), Some(a)) = (before, after) else {
            return;
        };
        let cpu = a.cpu_secs - b.cpu_secs;
        let wall = a.at.duration_since(b.at).as_secs_f64().max(1e-6);
        self.process = Some(Process {
            pid: 0,
            rss_start_kib: b.rss_kib,
            rss_end_kib: a.rss_kib,
            cpu_secs: cpu,
            cpu_cores: cpu / wall,
            cpu_us_per_msg: (self.delivered > 0).then(|| cpu * 1e6 / self.delivered as f64),
            rss_per_session_kib: None,
        });
    }

    /// Fills the idle figures: memory before any session, with all open, and at the end.
    pub fn idle(
        &mut self,
        baseline: Option<Sample>,
        loaded: Option<Sample>,
        end: Option<Sample>,
        heartbeats: u64,
    ) {
        self.heartbeats = heartbeats;
        let (Some(b), Some(l)) = (baseline, loaded) else {
            return;
        };
        let end = end.unwrap_or(l);
        let per = l.rss_kib.saturating_sub(b.rss_kib) as f64 / self.sessions.max(1) as f64;
        let wall = end.at.duration_since(l.at).as_secs_f64().max(1e-6);
        self.process = Some(Process {
            pid: 0,
            rss_start_kib: b.rss_kib,
            rss_end_kib: l.rss_kib,
            cpu_secs: end.cpu_secs - l.cpu_secs,
            cpu_cores: (end.cpu_secs - l.cpu_secs) / wall,
            cpu_us_per_msg: None,
            rss_per_session_kib: Some(per),
        });
    }

    /// Records which pid was watched.
    pub fn set_pid(&mut self, pid: Option<u32>) {
        if let (Some(p), Some(pid)) = (self.process.as_mut(), pid) {
            p.pid = pid;
        }
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} [{:?}] sessions={} body={}B rate={}\n",
            self.label,
            self.scenario,
            self.sessions,
            self.body_bytes,
            self.rate.map_or("max".to_owned(), |r| format!("{r}/s"))
        );
        if let Some(h) = &self.handshakes {
            s += &h.human();
        } else if self.scenario != Scenario::Idle {
            s += &format!(
                "  sent={} delivered={} lost={} in {:.2}s publishing: {:.0} msg/s, {:.1} MB/s\n  latency us: p50={} p99={} p99.9={} max={}\n",
                self.sent, self.delivered, self.lost, self.publish_secs, self.delivered_per_sec,
                self.mb_per_sec, self.latency.p50_us, self.latency.p99_us, self.latency.p999_us,
                self.latency.max_us
            );
        }
        if let Some(secs) = self.open_secs {
            s += &format!(
                "  opened in {secs:.2}s ({:.0} sessions/s), {} heart-beats received\n",
                self.sessions as f64 / secs.max(1e-6),
                self.heartbeats
            );
        }
        if let Some(p) = &self.process {
            s += &format!(
                "  pid {}: rss {} -> {} KiB, cpu {:.2}s ({:.2} cores){}{}\n",
                p.pid,
                p.rss_start_kib,
                p.rss_end_kib,
                p.cpu_secs,
                p.cpu_cores,
                p.cpu_us_per_msg
                    .map_or(String::new(), |c| format!(", {c:.2} us/msg")),
                p.rss_per_session_kib
                    .map_or(String::new(), |k| format!(", {k:.2} KiB/session")),
            );
        }
        s += &format!("  errors={} {:?}\n", self.errors, self.error_samples);
        s
    }
}
