//! The `sockjs+xhr://` link end to end: the load tool's run path through a real gateway
//! (`stompgate`, started as a process) in front of RabbitMQ (STOMP 61613, users from
//! scripts/setup-rabbitmq.sh). Every message sent arrives, none is lost, and no error is
//! counted, with the gateway's response limit set low so the receiving streams are re-opened
//! many times during the run.
//!
//! The gateway binary is `$STOMPGATE_BIN` (set by scripts/test.sh), else `stompgate` next to
//! this test's profile or in `target/release`, else it is built into a target dir of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use stompgate_load::handshake::{HandshakeOptions, Stage};
use stompgate_load::link::{Dialer, Target};
use stompgate_load::report::Report;
use stompgate_load::run::{run, RunOptions, Scenario};
use stompgate_load::session::Credentials;
use stompgate_load::spawn;

/// Bound on every run (publishing time plus connect and drain).
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes a streaming response carries before the gateway ends it (its default is 128 KiB).
const RESPONSE_LIMIT_BYTES: usize = 4096;
/// Longest a fallback gateway build may take.
const BUILD_TIMEOUT_SECS: u32 = 1200;

fn rabbitmq() -> String {
    std::env::var("STOMPGATE_TEST_RABBITMQ").unwrap_or_else(|_| "127.0.0.1:61613".into())
}

/// The gateway binary: found, or built once into `target/load-test-gateway`.
fn gateway_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("STOMPGATE_BIN") {
        return bin.into();
    }
    // target/<profile>/deps/<this test>
    let exe = std::env::current_exe().expect("test path");
    let profile = exe.parent().and_then(Path::parent).expect("profile dir");
    let target = profile.parent().expect("target dir");
    let found = [profile.join("stompgate"), target.join("release/stompgate")]
        .into_iter()
        .find(|p| p.is_file());
    if let Some(bin) = found {
        return bin;
    }
    // A target dir of its own: the one this test runs from may be locked by cargo.
    let own = target.join("load-test-gateway");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let status = Command::new("timeout")
        .arg(BUILD_TIMEOUT_SECS.to_string())
        .arg(cargo)
        .args([
            "build",
            "-p",
            "stompgate",
            "--bin",
            "stompgate",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&own)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the gateway failed");
    own.join("debug/stompgate")
}

fn options(url: &str, scenario: Scenario, rate: Option<f64>, secs: u64) -> RunOptions {
    RunOptions {
        scenario,
        dialer: Dialer {
            target: Target::parse(url, false).unwrap(),
            subprotocols: String::new(),
            sources: Vec::new(),
            tls: None,
        },
        creds: Credentials {
            login: "guest".into(),
            passcode: "guest".into(),
            host: "/".into(),
            heartbeat_ms: 0,
        },
        publishers: 2,
        subscribers: 2,
        connections: 0,
        rate,
        window: 200,
        body_bytes: 100,
        duration: Duration::from_secs(secs),
        max_messages: None,
        destination: "/topic/stompgate-load-xhr".into(),
        pid: None,
        connect_concurrency: 8,
        label: "sockjs+xhr".into(),
        handshake: HandshakeOptions {
            count: 20,
            stage: Stage::Stomp,
            close_each: true,
        },
    }
}

async fn bounded(opts: RunOptions) -> Report {
    tokio::time::timeout(TEST_TIMEOUT, run(opts))
        .await
        .expect("run ended in time")
}

fn assert_all_delivered(r: &Report, what: &str) {
    assert_eq!(r.errors, 0, "{what}: errors {:?}", r.error_samples);
    assert_eq!(r.lost, 0, "{what}: lost");
    assert!(r.sent > 0, "{what}: nothing sent");
    assert_eq!(r.delivered, r.sent, "{what}: delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_over_xhr_streaming_through_the_gateway() {
    let command = format!(
        "{} --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream {} \
         --upstream-login stompgate --upstream-passcode stompgate-secret \
         --sockjs-response-limit {RESPONSE_LIMIT_BYTES}",
        gateway_bin().display(),
        rabbitmq()
    );
    let gateway = spawn::spawn(&command, "/dev/null", false)
        .await
        .expect("gateway started");
    let url = format!("sockjs+xhr://{}/sockjs", gateway.addr);

    // Paced: one message per few milliseconds per pair, each stream re-opened every few dozen.
    let paced = bounded(options(&url, Scenario::OneToOne, Some(400.0), 3)).await;
    assert_eq!(paced.sessions, 4);
    assert!(paced.sent >= 600, "paced: sent {}", paced.sent);
    assert_all_delivered(&paced, "paced");

    // As fast as the window allows: send requests carry batches, streams carry many frames.
    let fast = bounded(options(&url, Scenario::OneToOne, None, 3)).await;
    assert_all_delivered(&fast, "max rate");

    // Set-up through CONNECTED, then closed: every one completes.
    let hs = bounded(options(&url, Scenario::Handshake, None, 20)).await;
    let figures = hs.handshakes.as_ref().expect("handshake figures");
    assert_eq!(
        (figures.ok, figures.failed),
        (20, 0),
        "{:?}",
        hs.error_samples
    );

    gateway.stop().await;
}
