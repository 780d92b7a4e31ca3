//! One bounded run of a scenario: connect, subscribe (with receipts), publish for the duration
//! or message budget, drain, and report throughput, latency, errors, and the gateway's RSS and
//! CPU over the measured window.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::handshake::{self, HandshakeOptions};
use crate::link::Dialer;
use crate::procstat::{self, Sample};
use crate::report::Report;
use crate::roles::{self, stopped, Group, Pace, Received, Shared};
use crate::session::{self, Credentials, Reader, Writer};

/// Time for in-flight messages to arrive after publishing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after the idle sessions are up, before memory is read (lets allocators settle).
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// The shapes of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// P publisher/subscriber pairs, one destination each.
    OneToOne,
    /// One publisher, S subscribers on one topic.
    FanOut,
    /// P publishers, one subscriber on one destination.
    FanIn,
    /// N connections doing nothing but heart-beats; reports memory per session.
    Idle,
    /// Pairs with large bodies (default 1 MiB).
    Large,
    /// N connection set-ups (TLS, + WebSocket, + STOMP CONNECT); reports handshakes/s.
    Handshake,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Which scenario.
    pub scenario: Scenario,
    /// How to connect.
    pub dialer: Dialer,
    /// CONNECT headers.
    pub creds: Credentials,
    /// Publishers (one-to-one, large: pairs; fan-in: publishers; fan-out: 1).
    pub publishers: usize,
    /// Subscribers (one-to-one, large: pairs; fan-out: subscribers; fan-in: 1).
    pub subscribers: usize,
    /// Idle connections.
    pub connections: usize,
    /// Total publish rate, messages per second (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// In-flight bound per destination.
    pub window: u64,
    /// Body size.
    pub body_bytes: usize,
    /// How long to publish (or hold idle sessions).
    pub duration: Duration,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
    /// Destination prefix; the group number is appended.
    pub destination: String,
    /// The gateway (or pump, or broker) process to watch.
    pub pid: Option<u32>,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Label for the report (e.g. `stompgate->rabbitmq`).
    pub label: String,
    /// The handshake scenario's settings.
    pub handshake: HandshakeOptions,
}

/// Runs the scenario to its end and reports.
pub async fn run(opts: RunOptions) -> Report {
    match opts.scenario {
        Scenario::Idle => run_idle(opts).await,
        Scenario::Handshake => {
            let hs = opts.handshake;
            handshake::run(opts, hs).await
        }
        _ => run_traffic(opts).await,
    }
}

/// The groups (destinations) of a traffic scenario: (group, publishers, subscribers) each.
fn plan(opts: &RunOptions) -> Vec<(Arc<Group>, usize, usize)> {
    let tag = format!("{}.{}", opts.destination, std::process::id());
    match opts.scenario {
        Scenario::OneToOne | Scenario::Large => (0..opts.publishers.max(1))
            .map(|i| (Group::new(format!("{tag}.{i}"), 1), 1, 1))
            .collect(),
        Scenario::FanOut => {
            let s = opts.subscribers.max(1);
            vec![(Group::new(format!("{tag}.0"), s as u64), 1, s)]
        }
        Scenario::FanIn | Scenario::Idle | Scenario::Handshake => {
            vec![(Group::new(format!("{tag}.0"), 1), opts.publishers.max(1), 1)]
        }
    }
}

type Opened = Vec<(Arc<Group>, Writer, Reader)>;

/// Opens `count` sessions per entry of `want` with bounded concurrency; subscribes them when
/// `subscribe`. Failures are counted; the sessions that opened are returned.
async fn open_many(
    opts: &RunOptions,
    shared: &Arc<Shared>,
    want: Vec<(Arc<Group>, usize)>,
    first_id: usize,
    subscribe: bool,
) -> Opened {
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let max_body = opts.body_bytes.max(64) * 2 + 4096;
    let mut set = JoinSet::new();
    let mut n = first_id;
    for (group, count) in want {
        for _ in 0..count {
            let (gate, group, dialer, creds) = (
                gate.clone(),
                group.clone(),
                opts.dialer.clone(),
                opts.creds.clone(),
            );
            let id = n;
            n += 1;
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let (mut w, mut r) = session::connect(&dialer, id, &creds, max_body).await?;
                if subscribe {
                    session::subscribe(&mut w, &mut r, &group.destination, id).await?;
                }
                Ok::<_, session::SessionError>((group, w, r))
            });
        }
    }
    let mut opened = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(s)) => opened.push(s),
            Ok(Err(e)) => roles::count_failure(shared, "connect", &e),
            Err(e) => shared.error(format!("connect task: {e}")),
        }
    }
    opened
}

async fn run_traffic(opts: RunOptions) -> Report {
    let shared = Shared::new(opts.max_messages.unwrap_or(u64::MAX));
    let groups = plan(&opts);
    let subs_wanted = groups.iter().map(|(g, _, s)| (g.clone(), *s)).collect();
    let pubs_wanted: Vec<_> = groups.iter().map(|(g, p, _)| (g.clone(), *p)).collect();
    let subs = open_many(&opts, &shared, subs_wanted, 0, true).await;
    let pubs = open_many(&opts, &shared, pubs_wanted, 1_000_000, false).await;
    let sessions = subs.len() + pubs.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (g, mut w, r) in subs {
        let sub = roles::subscribe(r, g, shared.clone(), stop_rx.clone());
        // The writer lives as long as the reader: dropping a TCP write half would end the session.
        readers.spawn(async move {
            let got = sub.await;
            w.close().await;
            Some(got)
        });
    }
    let pace = Pace {
        rate: opts.rate.map(|r| r / pubs.len().max(1) as f64),
        window: opts.window.max(1),
        body_bytes: opts.body_bytes,
    };
    let before = opts.pid.and_then(procstat::sample);
    let started = Instant::now();
    let mut writers = JoinSet::new();
    for (g, w, r) in pubs {
        writers.spawn(roles::publish(w, g, shared.clone(), pace));
        // Nothing is expected back on a publisher's link; read it so errors are seen.
        readers.spawn(drain_publisher(r, shared.clone(), stop_rx.clone()));
    }
    wait_publishing(&opts, &shared, &mut writers).await;
    let publish_secs = started.elapsed().as_secs_f64();
    drain(&groups).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = opts.pid.and_then(procstat::sample);
    let _ = stop_tx.send(true);
    let mut latency = Histogram::new(3).expect("valid histogram");
    let mut delivered = 0;
    let mut bytes = 0;
    while let Some(done) = readers.join_next().await {
        if let Ok(Some(Received {
            latency_us,
            messages,
            bytes: b,
        })) = done
        {
            let _ = latency.add(&latency_us);
            delivered += messages;
            bytes += b;
        }
    }
    let expected: u64 = groups
        .iter()
        .map(|(g, _, _)| g.sent.load(Ordering::Relaxed) * g.fanout)
        .sum();
    let mut report = Report::new(&opts, sessions, &shared);
    report.traffic(
        shared.sent.load(Ordering::Relaxed).min(shared.max_messages),
        delivered,
        expected,
        bytes,
        publish_secs,
        elapsed,
    );
    report.latency(&latency);
    report.process(before, after);
    report
}

async fn drain_publisher(
    mut r: Reader,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Option<Received> {
    let mut hb = 0;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return None,
            f = r.next_frame(&mut hb) => match f {
                Ok(Some(f)) if f.command() == b"ERROR" => {
                    shared.error(format!("publisher got ERROR: {}", f.header_str("message")));
                    return None;
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                // Links torn down after publishing stopped are not errors.
                Err(_) if shared.stop_publishing.load(Ordering::Relaxed) => return None,
                Err(e) => { shared.error(format!("publisher link: {e}")); return None; }
            }
        }
    }
}

/// Lets publishers run for the duration (or until the budget is spent), then stops them.
async fn wait_publishing(opts: &RunOptions, shared: &Shared, writers: &mut JoinSet<u64>) {
    let all_done = async { while writers.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(opts.duration, all_done).await;
    shared.stop_publishing.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while writers.join_next().await.is_some() {}
    })
    .await;
    writers.abort_all();
}

/// Waits until every group's messages have arrived (or the drain timeout).
async fn drain(groups: &[(Arc<Group>, usize, usize)]) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline && groups.iter().any(|(g, _, _)| g.in_flight() > 0) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run_idle(opts: RunOptions) -> Report {
    let shared = Shared::new(0);
    // Registered before any session opens, so an early SIGUSR1 cannot kill the run.
    let mut end_early = hold_signal();
    let baseline = opts.pid.and_then(procstat::sample);
    let group = Group::new(opts.destination.clone(), 0);
    let started = Instant::now();
    let opened = open_many(&opts, &shared, vec![(group, opts.connections)], 0, false).await;
    let open_secs = started.elapsed().as_secs_f64();
    let sessions = opened.len();
    // Scripts that hold sessions from several processes wait for this line from each.
    eprintln!(
        "opened {sessions} sessions ({} failed) in {open_secs:.2}s",
        opts.connections - sessions
    );
    let deadline = tokio::time::Instant::now() + opts.duration;
    let (stop_tx, stop_rx) = watch::channel(false);
    let every =
        (opts.creds.heartbeat_ms > 0).then(|| Duration::from_millis(opts.creds.heartbeat_ms));
    let mut set = JoinSet::new();
    for (_, w, r) in opened {
        set.spawn(roles::idle(w, r, every, shared.clone(), stop_rx.clone()));
    }
    let settle = tokio::time::Instant::now() + IDLE_SETTLE;
    let signalled = hold_until(settle, &mut end_early).await;
    let loaded: Option<Sample> = opts.pid.and_then(procstat::sample);
    if !signalled {
        hold_until(deadline, &mut end_early).await;
    }
    let end = opts.pid.and_then(procstat::sample);
    let _ = stop_tx.send(true);
    let mut heartbeats = 0;
    while let Some(done) = set.join_next().await {
        heartbeats += done.unwrap_or(0);
    }
    let mut report = Report::new(&opts, sessions, &shared);
    report.idle(baseline, loaded, end, heartbeats);
    report.open_secs = Some(open_secs);
    report
}

/// SIGUSR1, which ends an idle hold before `--secs` (`None` if it cannot be watched).
fn hold_signal() -> Option<Signal> {
    signal(SignalKind::user_defined1()).ok()
}

/// Waits until `deadline` or SIGUSR1, whichever comes first; true on the signal.
async fn hold_until(deadline: tokio::time::Instant, sig: &mut Option<Signal>) -> bool {
    let received = async {
        match sig {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => false,
        _ = received => true,
    }
}
