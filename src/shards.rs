//! Connection threads: N single-threaded tokio runtimes ("shards"), each with its own event
//! loop and timers, and a connection pinned to the one that accepted it.
//!
//! Why not one work-stealing runtime: a relayed message costs the gateway a socket read and a
//! write on each side, a few microseconds; on tokio's multi-thread scheduler each wake-up also
//! woke a parked peer worker to look for work to steal (a futex and a context switch). In
//! front of RabbitMQ on two cores that put the gateway at 31.6 µs of CPU per message; with one
//! connection thread it is 19.2 µs, and RabbitMQ, sharing the cores, carries 30 % more
//! (docs/PERFORMANCE.md, "Connection threads"). A session's two sockets, its pumps and its
//! timers all belong to one thread, so nothing crosses threads per message, and with several
//! threads the gateway still uses several cores across sessions (as nginx or Envoy workers do).
//!
//! Each shard runs its own accept loop on a copy of the client listening socket
//! (`server::Listener::serve`): a thread takes a connection only when it is free to, so a busy
//! one leaves new connections to the others or to the kernel's backlog, and a connection burst
//! does not pile up half-open handshakes on one thread (their buffers, freed later, would stay
//! in the allocator's heap: 18 KiB instead of 12.8 KiB per idle session in a 9,900-session
//! run when a separate thread accepted for all). The admin listener and reloads stay on the
//! caller's runtime.

use std::future::Future;
use std::io;

use tokio::runtime::{Builder, Handle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The connection threads. Dropping the last handle stops them (after the gateway's drain,
/// so no session is cut by it).
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Handle>,
    stop: CancellationToken,
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
            shards.push(handle);
        }
        Ok(Shards { shards, stop })
    }

    /// Runs `make(i)`'s future on thread `i`, for every thread (an accept loop each, say).
    /// Sockets the future opens or adopts (`from_std`) are driven by that thread's event loop.
    pub fn spawn_each<F, Fut>(&self, mut make: F) -> Vec<JoinHandle<()>>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        (self.shards.iter().enumerate())
            .map(|(i, handle)| handle.spawn(make(i)))
            .collect()
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        // Each thread's `block_on` returns; dropping its runtime drops what is left on it.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_thread_runs_its_own_future_with_its_own_event_loop() {
        let shards = Shards::start(2).unwrap();
        let loops = shards.spawn_each(|i| async move {
            // Timers and sockets work on the shard's own runtime.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            drop(listener);
            let name = std::thread::current().name().map(str::to_owned);
            assert_eq!(
                name.as_deref(),
                Some(format!("stompgate-conn-{i}").as_str())
            );
        });
        assert_eq!(loops.len(), 2);
        for handle in loops {
            handle.await.expect("ran to the end on its thread");
        }
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
        let _ = shards.spawn_each(|_| {
            let dropped = Dropped(tx.clone());
            async move {
                let _dropped = dropped;
                std::future::pending::<()>().await;
            }
        });
        drop(shards);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the pending connection was dropped with its thread");
    }
}
