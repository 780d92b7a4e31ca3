//! `stompgate-load`: `run` a bounded load scenario against a target, or serve a `fake-broker`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use stompgate_load::handshake::{HandshakeOptions, Stage, MAX_HANDSHAKES};
use stompgate_load::link::{Dialer, Target};
use stompgate_load::run::{run, RunOptions, Scenario};
use stompgate_load::session::Credentials;
use stompgate_load::tls::{TlsClient, TlsSettings, TlsVersion};
use stompgate_load::{broker, spawn};

/// Longest run allowed, seconds (every run stops by itself).
const MAX_RUN_SECS: f64 = 600.0;

#[derive(Parser)]
#[command(version, about = "Load generator and fake broker for STOMP gateways")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one bounded scenario and print its figures.
    Run(Box<RunArgs>),
    /// A minimal fast STOMP broker (CONNECT, SUBSCRIBE, SEND fan-out, RECEIPT, heart-beats).
    FakeBroker {
        /// Address to listen on (repeatable). Prints `listening fake-broker ADDR` each.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: Vec<SocketAddr>,
        /// Heart-beat interval offered to clients that ask for heart-beats, ms.
        #[arg(long, default_value_t = 10_000)]
        heartbeat_ms: u64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 1800)]
        lifetime_secs: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// ws[s]://H:P/PATH, sockjs+ws[s]://H:P/PREFIX (SockJS's websocket transport),
    /// sockjs+xhr[s]://H:P/PREFIX (its xhr-streaming transport) or tcp://H:P; `{addr}` is
    /// replaced by the address a `--spawn`ed process prints (its `listening client-tls` line
    /// for the TLS forms).
    #[arg(long)]
    url: String,
    /// The load shape.
    #[arg(long, value_enum, default_value = "one-to-one")]
    scenario: Scenario,
    /// Publisher/subscriber pairs (one-to-one, large).
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Publishers (fan-in).
    #[arg(long, default_value_t = 1000)]
    publishers: usize,
    /// Subscribers (fan-out).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Connections (idle).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connections to open (handshake; at most 100000).
    #[arg(long, default_value_t = 1000)]
    handshakes: usize,
    /// How far each handshake goes: tls (TCP + TLS), ws (+ WebSocket upgrade), stomp
    /// (+ CONNECT/CONNECTED).
    #[arg(long, value_enum, default_value = "tls")]
    stage: Stage,
    /// Close each connection right after its handshake (else hold all open to the end and
    /// report memory per connection).
    #[arg(long)]
    close_each: bool,
    /// CA bundle (PEM) to trust for wss://, sockjs+wss:// and sockjs+xhrs:// targets.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// TLS server name (SNI and verification; default: the URL's host).
    #[arg(long)]
    server_name: Option<String>,
    /// TLS versions offered.
    #[arg(long, value_enum, default_value = "any")]
    tls_version: TlsVersion,
    /// Allow TLS session resumption (off: every handshake is a full one).
    #[arg(long)]
    tls_resume: bool,
    /// Total publish rate, messages/s (omit: as fast as the window allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Messages in flight per destination before publishers wait.
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// Body bytes (large: default 1048576; else 100).
    #[arg(long)]
    body_bytes: Option<usize>,
    /// Seconds to publish (idle: to hold the sessions once all are open; SIGUSR1 ends the hold
    /// early, with the report; handshake: the time limit).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Stop after this many messages.
    #[arg(long)]
    messages: Option<u64>,
    /// Destination prefix (the process id and group number are appended).
    #[arg(long, default_value = "/topic/stompgate-load")]
    destination: String,
    /// CONNECT login.
    #[arg(long, default_value = "guest")]
    login: String,
    /// CONNECT passcode.
    #[arg(long, default_value = "guest")]
    passcode: String,
    /// CONNECT host (vhost).
    #[arg(long, default_value = "/")]
    vhost: String,
    /// Heart-beat asked for both ways, ms (0: none; idle default 10000).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Watch this local process (RSS, CPU).
    #[arg(long)]
    pid: Option<u32>,
    /// Start this command (e.g. the gateway), watch it, and stop it at the end.
    #[arg(long)]
    spawn: Option<String>,
    /// Where the spawned command's stderr goes.
    #[arg(long, default_value = "/dev/null")]
    spawn_log: String,
    /// WebSocket subprotocols offered (empty: none).
    #[arg(long, default_value = "v12.stomp,v11.stomp,v10.stomp")]
    subprotocols: String,
    /// Source addresses to spread connections over (e.g. 127.0.0.2,127.0.0.3).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<IpAddr>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Allow a non-loopback target.
    #[arg(long)]
    allow_remote: bool,
    /// Label for the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(args) => run_cmd(*args).await,
        Cmd::FakeBroker {
            listen,
            heartbeat_ms,
            lifetime_secs,
        } => {
            let lifetime = Duration::from_secs(lifetime_secs);
            broker::run(&listen, heartbeat_ms, lifetime)
                .await
                .context("fake broker")
        }
    }
}

async fn run_cmd(a: RunArgs) -> anyhow::Result<()> {
    if !(a.secs > 0.0 && a.secs <= MAX_RUN_SECS) {
        bail!("--secs must be in (0, {MAX_RUN_SECS}]");
    }
    let spawned = match &a.spawn {
        Some(cmd) => {
            let tls = ["wss://", "sockjs+wss://", "sockjs+xhrs://"]
                .iter()
                .any(|s| a.url.starts_with(s));
            Some(spawn::spawn(cmd, &a.spawn_log, tls).await?)
        }
        None => None,
    };
    let url = match &spawned {
        Some(s) => a.url.replace("{addr}", &s.addr),
        None => a.url.clone(),
    };
    let target = Target::parse(&url, a.allow_remote)?;
    for ip in &a.sources {
        if !a.allow_remote && !ip.is_loopback() {
            bail!("source address {ip} is not loopback");
        }
    }
    let tls = tls_client(&a, &target)?;
    let pid = a.pid.or(spawned.as_ref().map(|s| s.pid));
    let opts = options(&a, target, tls, pid);
    let mut report = run(opts).await;
    report.set_pid(pid);
    if let Some(s) = spawned {
        s.stop().await;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

/// The TLS client for a wss:// target (`None` for plain targets).
fn tls_client(a: &RunArgs, target: &Target) -> anyhow::Result<Option<TlsClient>> {
    if a.scenario == Scenario::Handshake && !(1..=MAX_HANDSHAKES).contains(&a.handshakes) {
        bail!("--handshakes must be in 1..={MAX_HANDSHAKES}");
    }
    let Some(host) = target.tls_host() else {
        return Ok(None);
    };
    let settings = TlsSettings {
        ca: a.ca.clone(),
        server_name: a.server_name.clone(),
        version: a.tls_version,
        resume: a.tls_resume,
    };
    Ok(Some(TlsClient::new(&settings, host)?))
}

fn options(a: &RunArgs, target: Target, tls: Option<TlsClient>, pid: Option<u32>) -> RunOptions {
    let large = a.scenario == Scenario::Large;
    let idle = a.scenario == Scenario::Idle;
    let default_body = if large { 1 << 20 } else { 100 };
    RunOptions {
        scenario: a.scenario,
        dialer: Dialer {
            target,
            subprotocols: a.subprotocols.clone(),
            sources: a.sources.clone(),
            tls,
        },
        creds: Credentials {
            login: a.login.clone(),
            passcode: a.passcode.clone(),
            host: a.vhost.clone(),
            heartbeat_ms: a.heartbeat_ms.unwrap_or(if idle { 10_000 } else { 0 }),
        },
        publishers: match a.scenario {
            Scenario::FanIn => a.publishers,
            Scenario::FanOut => 1,
            _ => a.pairs,
        },
        subscribers: match a.scenario {
            Scenario::FanOut => a.subscribers,
            Scenario::FanIn => 1,
            _ => a.pairs,
        },
        connections: a.connections,
        rate: a.rate,
        window: if large { a.window.min(8) } else { a.window },
        body_bytes: a.body_bytes.unwrap_or(default_body),
        duration: Duration::from_secs_f64(a.secs),
        max_messages: a.messages,
        destination: a.destination.clone(),
        pid,
        connect_concurrency: a.connect_concurrency,
        label: a.label.clone(),
        handshake: HandshakeOptions {
            count: a.handshakes,
            stage: a.stage,
            close_each: a.close_each,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["stompgate-load", "run"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("valid arguments").cmd {
            Cmd::Run(a) => *a,
            Cmd::FakeBroker { .. } => panic!("parsed as fake-broker"),
        }
    }

    #[test]
    fn handshake_arguments_reach_the_options() {
        let a = run_args(&[
            "--url",
            "wss://localhost:8443/ws",
            "--scenario",
            "handshake",
            "--handshakes",
            "2000",
            "--stage",
            "stomp",
            "--close-each",
            "--connect-concurrency",
            "50",
            "--tls-version",
            "1.3",
        ]);
        assert_eq!(a.tls_version, TlsVersion::V13);
        assert!(!a.tls_resume);
        let target = Target::parse(&a.url, false).unwrap();
        let opts = options(&a, target, None, None);
        assert_eq!(opts.scenario, Scenario::Handshake);
        assert_eq!(opts.handshake.count, 2000);
        assert_eq!(opts.handshake.stage, Stage::Stomp);
        assert!(opts.handshake.close_each);
        assert_eq!(opts.connect_concurrency, 50);
    }

    #[test]
    fn defaults_are_a_held_tls_stage() {
        let a = run_args(&["--url", "ws://127.0.0.1:1/ws", "--scenario", "handshake"]);
        assert_eq!(
            (a.stage, a.close_each, a.handshakes),
            (Stage::Tls, false, 1000)
        );
        assert_eq!(a.tls_version, TlsVersion::Any);
    }

    #[test]
    fn tls_client_only_for_wss_and_needs_a_ca() {
        let plain = run_args(&["--url", "ws://127.0.0.1:1/ws", "--ca", "/nonexistent"]);
        let target = Target::parse(&plain.url, false).unwrap();
        assert!(tls_client(&plain, &target).unwrap().is_none());
        let no_ca = run_args(&["--url", "wss://localhost:1/ws"]);
        let target = Target::parse(&no_ca.url, false).unwrap();
        let err = tls_client(&no_ca, &target).unwrap_err().to_string();
        assert!(err.contains("--ca"), "{err}");
        let zero = run_args(&[
            "--url",
            "ws://127.0.0.1:1/ws",
            "--scenario",
            "handshake",
            "--handshakes",
            "0",
        ]);
        let target = Target::parse(&zero.url, false).unwrap();
        assert!(tls_client(&zero, &target).is_err());
        assert!(Cli::try_parse_from(["x", "run", "--url", "u", "--tls-version", "1.1"]).is_err());
    }
}
