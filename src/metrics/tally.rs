//! A pump's per-batch tally: the relay counts each frame into plain (non-atomic) arrays and a
//! thread-local histogram, and [`FrameTally::flush`] publishes the batch to the shared counters
//! once per batch. A busy connection then pays a few relaxed atomic adds per *batch* instead of
//! about ten per frame. Dropping a tally flushes it, so an early return loses no count.

use std::sync::Arc;
use std::time::Instant;

use prometheus::local::LocalHistogram;

use super::families::{command_index, Direction, COMMANDS};
use super::SessionRecorder;
use crate::stomp::{Command, Frame};

/// One direction's unpublished counts.
pub struct FrameTally {
    rec: Arc<SessionRecorder>,
    dir: Direction,
    frames: [u32; COMMANDS],
    bytes: [u64; COMMANDS],
    heartbeats: u64,
    sizes: LocalHistogram,
    first_decoded: Option<Instant>,
}

impl std::fmt::Debug for FrameTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameTally")
            .field("dir", &self.dir)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl FrameTally {
    /// An empty tally for one direction of `rec`'s session.
    pub fn new(rec: Arc<SessionRecorder>, dir: Direction) -> FrameTally {
        let sizes = rec.metrics.families.frame_size[dir as usize].local();
        FrameTally {
            rec,
            dir,
            frames: [0; COMMANDS],
            bytes: [0; COMMANDS],
            heartbeats: 0,
            sizes,
            first_decoded: None,
        }
    }

    /// Counts one frame of `len` wire bytes (and traces it when a trace is on).
    #[inline]
    pub fn frame(&mut self, frame: &Frame, len: usize) {
        self.first_decoded.get_or_insert_with(Instant::now);
        let c = command_index(frame.command);
        self.frames[c] += 1;
        self.bytes[c] += len as u64;
        self.sizes.observe(len as f64);
        if self.rec.metrics.tracer.is_active() {
            self.rec
                .metrics
                .tracer
                .trace(&self.rec.stats, self.dir, frame);
        }
    }

    /// Counts one heart-beat EOL.
    #[inline]
    pub fn heartbeat(&mut self) {
        self.first_decoded.get_or_insert_with(Instant::now);
        self.heartbeats += 1;
    }

    /// Publishes the batch: counters, per-session figures, one latency sample (from the
    /// batch's first decoded item to now, when it was handed to the other side).
    pub fn flush(&mut self) {
        let Some(first) = self.first_decoded.take() else {
            return;
        };
        let (d, f) = (self.dir as usize, &self.rec.metrics.families);
        for c in 0..COMMANDS {
            let n = std::mem::take(&mut self.frames[c]);
            if n == 0 {
                continue;
            }
            let bytes = std::mem::take(&mut self.bytes[c]);
            f.frames[d][c].inc_by(u64::from(n));
            f.frame_bytes[d][c].inc_by(bytes);
            self.rec
                .count(self.dir, Command::ALL[c], u64::from(n), bytes);
        }
        if self.heartbeats > 0 {
            f.heartbeats[d].inc_by(std::mem::take(&mut self.heartbeats));
        }
        self.sizes.flush();
        self.rec.batch_forwarded(self.dir, first);
    }
}

impl Drop for FrameTally {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::transport::{ClientMeta, TransportKind};

    #[test]
    fn counts_publish_on_flush_and_on_drop() {
        let m = Arc::new(Metrics::default());
        let rec = m.open_session(&ClientMeta {
            peer: "127.0.0.1:1".parse().unwrap(),
            transport: TransportKind::WebSocket,
            tls: false,
            headers: Default::default(),
            query: None,
            client_cert: None,
        });
        let send = m.families().frames[0][command_index(Command::Send)].clone();
        let mut tally = rec.tally(Direction::ClientToBroker);
        tally.frame(&Frame::new(Command::Send), 10);
        tally.frame(&Frame::new(Command::Subscribe), 30);
        tally.heartbeat();
        assert_eq!(send.get(), 0, "nothing published before the flush");
        tally.flush();
        assert_eq!(send.get(), 1);
        assert_eq!(m.families().frame_size[0].get_sample_count(), 2);
        assert_eq!(m.families().heartbeats[0].get(), 1);
        tally.frame(&Frame::new(Command::Send), 10);
        drop(tally);
        assert_eq!(send.get(), 2, "drop flushes");
        let v = rec.stats().view();
        assert_eq!(v.client_to_broker.bytes, 50);
        assert_eq!(v.subscriptions, 1);
    }
}
