//! The idle hold across processes: a script waits for every load process's `opened` line, then
//! ends all their holds at once with SIGUSR1 and still gets each one's report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stompgate-load");
/// Longest this test waits for any one step.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the child when the test ends, passing or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fake_broker() -> (Reaped, String) {
    let mut child = Command::new(BIN)
        .args(["fake-broker", "--lifetime-secs", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fake broker");
    let out = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .strip_prefix("listening fake-broker ")
        .expect("listening line")
        .trim()
        .to_owned();
    (Reaped(child), addr)
}

#[test]
fn sigusr1_ends_the_hold_with_a_report() {
    let (_broker, addr) = fake_broker();
    let url = format!("tcp://{addr}");
    let mut load = Reaped(
        Command::new(BIN)
            .args([
                "run",
                "--scenario",
                "idle",
                "--connections",
                "20",
                "--secs",
                "60",
            ])
            .args(["--url", &url, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start load"),
    );
    // Kept open to the end: the run must not meet a closed stderr.
    let mut err = BufReader::new(load.0.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("opened line");
    assert!(
        line.starts_with("opened 20 sessions (0 failed) in "),
        "{line}"
    );

    let signalled = Instant::now();
    let pid = load.0.id().to_string();
    let kill = Command::new("kill").args(["-USR1", &pid]).status();
    assert!(kill.expect("run kill").success());
    while load.0.try_wait().expect("wait").is_none() {
        assert!(
            signalled.elapsed() < STEP_TIMEOUT,
            "hold did not end on SIGUSR1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(load.0.wait().expect("exit status").success());
    let mut report = String::new();
    let out = load.0.stdout.take().expect("piped stdout");
    BufReader::new(out).read_line(&mut report).expect("report");
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON report");
    assert_eq!(report["sessions"], 20);
    assert_eq!(report["errors"], 0);
    assert!(report["open_secs"].as_f64().expect("open_secs") > 0.0);
}
