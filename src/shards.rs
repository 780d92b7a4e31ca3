//! Connection threads: N single-threaded tokio runtimes ("shards"), each with its own event
//! loop and timers, and a connection pinned to the one it was given.
//!
//! Why not one work-stealing runtime: a relayed message costs the gateway a socket read and a
//! write on each side, a few microseconds; on tokio's multi-thread scheduler each wake-up also
//! wakes a parked peer worker to steal (a futex and a context switch), which measured as a
//! third of the gateway's CPU per message in front of RabbitMQ on two cores (28 µs/msg with
//! two workers, 19.5 µs with one; docs/PERFORMANCE.md "Connection threads"). A session's two
//! sockets, its pumps and its timers all belong to one thread here, so nothing crosses threads
//! per message, and the gateway still uses every core across sessions (as nginx or Envoy
//! workers do). A connection goes to the shard with the fewest open connections.
//!
//! The accept loops, the admin listener and reloads stay on the caller's runtime; only client
//! connections (TLS, HTTP, WebSocket/SockJS sessions and their broker links) run on shards.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// The connection threads. Dropping the last handle stops them (after the gateway's drain,
/// so no session is cut by it).
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Shard>,
    /// Where the search for the least loaded shard starts, so ties spread out.
    next: AtomicUsize,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Shard {
    handle: Handle,
    /// Connections running on this shard.
    open: Arc<AtomicUsize>,
}

impl Shards {
    /// Starts `threads` connection threads (at least one), named `stompgate-conn-N`.
    pub fn start(threads: usize) -> io::Result<Shards> {
        let stop = CancellationToken::new();
        let mut shards = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let stopped = stop.clone();
            std::thread::Builder::new()
                .name(format!("stompgate-conn-{i}"))
                .spawn(move || runtime.block_on(stopped.cancelled()))?;
            shards.push(Shard {
                handle,
                open: Arc::default(),
            });
        }
        Ok(Shards {
            shards,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// The number of connection threads.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Open connections per thread, in thread order.
    pub fn open_connections(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.open.load(Ordering::Relaxed))
            .collect()
    }

    /// Runs `connection` on the thread with the fewest open connections. Sockets it opens or
    /// adopts (`TcpStream::from_std`) inside are driven by that thread's event loop.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shard = self.least_loaded();
        let open = OpenGuard::new(shard.open.clone());
        shard.handle.spawn(async move {
            let _open = open;
            connection.await;
        });
    }

    fn least_loaded(&self) -> &Shard {
        let n = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.shards[(start + i) % n])
            .min_by_key(|s| s.open.load(Ordering::Relaxed))
            .expect("at least one shard")
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        // Each thread's `block_on` returns; dropping its runtime drops what is left on it.
        self.stop.cancel();
    }
}

/// Counts a connection as open on its shard from the hand-off until its future ends (or is
/// dropped unpolled because the shard stopped).
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn connections_go_to_the_least_loaded_thread_and_stay_there() {
        let shards = Shards::start(2).unwrap();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let (name_tx, name_rx) = oneshot::channel();
        shards.spawn(async move {
            let _ = name_tx.send(std::thread::current().name().map(str::to_owned));
            let _ = release_rx.await;
        });
        let first = name_rx.await.unwrap().unwrap();
        assert_eq!(shards.open_connections().iter().sum::<usize>(), 1);
        // The next connection must go to the other (idle) thread.
        let (name_tx, name_rx) = oneshot::channel();
        shards.spawn(async move {
            // Timers and sockets work on the shard's own runtime.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            drop(listener);
            let _ = name_tx.send(std::thread::current().name().map(str::to_owned));
        });
        let second = name_rx.await.unwrap().unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("stompgate-conn-"), "{first}");
        let _ = release_tx.send(());
        for _ in 0..100 {
            if shards.open_connections() == [0, 0] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "open counts did not return to zero: {:?}",
            shards.open_connections()
        );
    }

    #[test]
    fn dropping_stops_the_threads() {
        let shards = Shards::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        struct Dropped(std::sync::mpsc::Sender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let dropped = Dropped(tx);
        shards.spawn(async move {
            let _dropped = dropped;
            std::future::pending::<()>().await;
        });
        drop(shards);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the pending connection was dropped with its thread");
    }
}
