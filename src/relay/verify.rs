//! [`VerifyPool`]: where credentials are checked — a few threads of its own, with a bounded
//! queue in front of them.
//!
//! An argon2id check holds ~19 MiB for tens of milliseconds on purpose. Run on tokio's blocking
//! pool (up to 512 threads), a burst of logins would check hundreds at once, each with memory
//! of its own. Here at most `threads` checks run at once (`login_threads`, the CPU count by
//! default: more would only queue inside the CPU), always on the same threads, each reusing
//! one working memory (see `policy::users`), so what they hold is bounded by `threads` × one
//! hash; at most `queue` more wait, and a login beyond that is refused at once with
//! `authentication failed: server busy, try again later` instead of queueing without bound.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::policy::AuthError;

/// Checks that may wait per checking thread before logins are refused as busy.
pub const QUEUED_PER_THREAD: usize = 8;

/// Longest a login waits for its check (queue plus the check itself) before it is refused.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that check credentials, with a bounded queue.
#[derive(Debug)]
pub struct VerifyPool {
    jobs: SyncSender<Job>,
    threads: usize,
}

impl VerifyPool {
    /// Starts `threads` checking threads (at least 1) with room for `queue` waiting checks.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("stompgate-verify-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(VerifyPool { jobs, threads })
    }

    /// `threads` checking threads with eight waiting checks per thread (`login_threads`).
    pub fn with_threads(threads: usize) -> std::io::Result<Self> {
        VerifyPool::new(threads, threads.max(1) * QUEUED_PER_THREAD)
    }

    /// How many checks run at once at most.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `check` on a checking thread. `Err(Busy)` when the queue is full, or when the
    /// answer takes longer than [`VERIFY_TIMEOUT`].
    pub async fn run<T, F>(&self, check: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(check());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                return Err(AuthError::Busy)
            }
        }
        match tokio::time::timeout(VERIFY_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            // Timed out, or the check panicked (its sender dropped).
            _ => Err(AuthError::Busy),
        }
    }
}

/// One checking thread: runs jobs until the pool is dropped.
fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        // A panicking check must not take a thread away from the pool.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn bounds_running_checks_and_refuses_beyond_the_queue() {
        let pool = Arc::new(VerifyPool::new(2, 3).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(e) => assert_eq!(e, AuthError::Busy),
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "at most 2 at once");
        assert!((2..=5).contains(&ok), "2 running + 3 queued at most: {ok}");
        // A panicking check is a refusal, and the threads survive it.
        assert_eq!(
            pool.run(|| panic!("boom")).await,
            Err::<(), _>(AuthError::Busy)
        );
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert_eq!(pool.run(|| 8).await, Ok(8));
    }
}
