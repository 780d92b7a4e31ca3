//! Live certificate rotation: [`ServerTls::reload`] (called on SIGHUP) and a watcher task
//! polling the files.
//!
//! Polling file metadata, rather than inotify, sees every way a certificate gets replaced:
//! an in-place rewrite (size, mtime), a rename over the old file (inode), and Kubernetes'
//! atomic `..data` symlink swap, where the configured path never changes but the file it
//! resolves to does (the canonical target). A failed reload keeps the old pair; the watcher
//! retries at the next change, so a key written a moment after its certificate still lands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ServerTls, TlsError};

/// How often the watcher looks at the files by default.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What the watcher remembers of one file; `None` fields when the file is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    target: Option<PathBuf>,
    len: Option<u64>,
    modified: Option<SystemTime>,
    inode: Option<u64>,
}

impl FileStamp {
    async fn of(path: &Path) -> Self {
        let target = tokio::fs::canonicalize(path).await.ok();
        let meta = tokio::fs::metadata(path).await.ok();
        Self {
            target,
            len: meta.as_ref().map(|m| m.len()),
            modified: meta.as_ref().and_then(|m| m.modified().ok()),
            inode: meta.as_ref().and_then(inode),
        }
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> Option<u64> {
    None
}

impl ServerTls {
    /// Re-reads the certificate, key and client CA files. On success new handshakes use them
    /// (open connections keep theirs); on failure the old configuration stays and a warning
    /// is logged.
    pub fn reload(&self) -> Result<(), TlsError> {
        match self.replace_config() {
            Ok(()) => {
                tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(cause = %e, "TLS reload refused; keeping the current certificate");
                Err(e)
            }
        }
    }

    /// Polls the files every watch interval (see [`ServerTls::with_watch_interval`]) and
    /// reloads when any of them changed, until `shutdown` is cancelled.
    pub fn spawn_watcher(self: Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.stamps().await;
            let mut tick = tokio::time::interval(self.watch_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = self.stamps().await;
                if now != seen {
                    seen = now;
                    let this = Arc::clone(&self);
                    // Errors are logged by `reload`; the next change retries.
                    let _ = tokio::task::spawn_blocking(move || this.reload()).await;
                }
            }
        })
    }

    async fn stamps(&self) -> Vec<FileStamp> {
        let s = &self.settings;
        let mut stamps = vec![FileStamp::of(&s.cert).await, FileStamp::of(&s.key).await];
        if let Some(ca) = &s.client_ca {
            stamps.push(FileStamp::of(ca).await);
        }
        stamps
    }
}
