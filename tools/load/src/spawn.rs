//! Starting a local gateway (or pump) for a run: a shell command whose stdout prints
//! `listening client ADDR` (or `listening client-tls ADDR` for a `wss://` run); the process is
//! killed when the [`Spawned`] is dropped.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the spawned process has to print its listening line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child process.
pub struct Spawned {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// The address from its `listening client ADDR` (or `client-tls`) line.
    pub addr: String,
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The shell could not be started.
    #[error("cannot start `{0}`: {1}")]
    Start(String, std::io::Error),
    /// No listening line in time, or the process ended first.
    #[error("`{0}` printed no `listening {1} ADDR` line within {LISTEN_TIMEOUT:?}")]
    NoAddress(String, &'static str),
}

/// Runs `command` with `sh -c 'exec ...'` (so the pid is the command's own), stderr to `log`,
/// and waits for its `listening client ADDR` line (`listening client-tls ADDR` when `tls`).
pub async fn spawn(command: &str, log: &str, tls: bool) -> Result<Spawned, SpawnError> {
    let kind = if tls { "client-tls" } else { "client" };
    let prefix = format!("listening {kind} ");
    let err_to = std::fs::File::create(log)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdout(Stdio::piped())
        .stderr(err_to)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SpawnError::Start(command.to_owned(), e))?;
    let no_addr = || SpawnError::NoAddress(command.to_owned(), kind);
    let pid = child.id().ok_or_else(no_addr)?;
    let stdout = child.stdout.take().ok_or_else(no_addr)?;
    let mut lines = BufReader::new(stdout).lines();
    let find = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix(&prefix) {
                return Some(addr.trim().to_owned());
            }
        }
        None
    };
    let addr = tokio::time::timeout(LISTEN_TIMEOUT, find)
        .await
        .ok()
        .flatten()
        .ok_or_else(no_addr)?;
    // Keep reading so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Spawned { child, pid, addr })
}

impl Spawned {
    /// Stops the process and waits for it (bounded).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
