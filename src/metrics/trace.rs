//! Frame tracing for one connection or one user, switched on at run time through the admin API
//! (`POST /trace`, `DELETE /trace`) and off again by itself after its duration.
//!
//! Each traced frame is logged at INFO under the `frame_trace` target with its command and
//! headers; secret headers are redacted and the body is cut to `max_body` bytes. When no trace
//! is active the per-frame cost is one relaxed atomic load ([`FrameTracer::is_active`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::info;

use super::families::Direction;
use super::table::SessionStats;
use crate::stomp::Frame;

/// Body bytes logged when the request does not say.
pub const DEFAULT_TRACE_BODY_BYTES: usize = 256;
/// Most body bytes a trace may log per frame.
pub const MAX_TRACE_BODY_BYTES: usize = 64 * 1024;
/// Trace duration when the request does not say.
pub const DEFAULT_TRACE_SECS: u64 = 60;
/// Longest trace.
pub const MAX_TRACE_SECS: u64 = 3600;

/// What `POST /trace` accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// Trace this session id.
    pub connection: Option<u64>,
    /// Or every session of this user.
    pub user: Option<String>,
    /// Body bytes to log per frame (default 256, at most 65536).
    pub max_body: Option<usize>,
    /// How long to trace (default 60 s, at most 3600 s).
    pub duration_secs: Option<u64>,
}

/// Why a trace request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceError {
    /// Neither or both of `connection` and `user` were given.
    #[error("give exactly one of `connection` or `user`")]
    Target,
    /// Out-of-range duration or body length.
    #[error("`duration_secs` must be 1..={MAX_TRACE_SECS} and `max_body` at most {MAX_TRACE_BODY_BYTES}")]
    Range,
}

/// Whom a trace follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceTarget {
    /// One session.
    Connection(u64),
    /// Every session of one user.
    User(String),
}

/// An active trace.
#[derive(Debug, Clone)]
struct TraceFilter {
    target: TraceTarget,
    max_body: usize,
    until: Instant,
}

/// The state `GET /trace` reports.
#[derive(Debug, Serialize, PartialEq)]
pub struct TraceStatus {
    /// Whether a trace runs.
    pub active: bool,
    /// Whom it follows.
    pub target: Option<TraceTarget>,
    /// Body bytes logged per frame.
    pub max_body: Option<usize>,
    /// Seconds left.
    pub remaining_secs: Option<u64>,
}

/// The run-time switch.
#[derive(Debug, Default)]
pub struct FrameTracer {
    active: AtomicBool,
    /// The traced session id when the trace follows one connection (0 otherwise), so other
    /// sessions skip the lock while a trace runs.
    connection: AtomicU64,
    filter: RwLock<Option<TraceFilter>>,
}

impl FrameTracer {
    /// Whether any trace may be active: the only per-frame cost while tracing is off.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Starts (or replaces) the trace.
    pub fn start(&self, req: &TraceRequest) -> Result<TraceStatus, TraceError> {
        let target = match (req.connection, &req.user) {
            (Some(id), None) => TraceTarget::Connection(id),
            (None, Some(u)) if !u.is_empty() => TraceTarget::User(u.clone()),
            _ => return Err(TraceError::Target),
        };
        let secs = req.duration_secs.unwrap_or(DEFAULT_TRACE_SECS);
        let max_body = req.max_body.unwrap_or(DEFAULT_TRACE_BODY_BYTES);
        if secs == 0 || secs > MAX_TRACE_SECS || max_body > MAX_TRACE_BODY_BYTES {
            return Err(TraceError::Range);
        }
        let filter = TraceFilter {
            target,
            max_body,
            until: Instant::now() + Duration::from_secs(secs),
        };
        let connection = match filter.target {
            TraceTarget::Connection(id) => id,
            TraceTarget::User(_) => 0,
        };
        *self.filter.write().unwrap_or_else(|p| p.into_inner()) = Some(filter);
        self.connection.store(connection, Relaxed);
        self.active.store(true, Relaxed);
        Ok(self.status())
    }

    /// Stops any trace; returns whether one was running.
    pub fn stop(&self) -> bool {
        self.active.store(false, Relaxed);
        self.connection.store(0, Relaxed);
        self.filter
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }

    /// The active trace, if any (an expired one is stopped here).
    pub fn status(&self) -> TraceStatus {
        let Some(f) = self.current() else {
            return TraceStatus {
                active: false,
                target: None,
                max_body: None,
                remaining_secs: None,
            };
        };
        TraceStatus {
            active: true,
            target: Some(f.target),
            max_body: Some(f.max_body),
            remaining_secs: Some(f.until.saturating_duration_since(Instant::now()).as_secs()),
        }
    }

    /// The filter in force, stopping it when its time is up.
    fn current(&self) -> Option<TraceFilter> {
        let f = self
            .filter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        if Instant::now() >= f.until {
            self.stop();
            return None;
        }
        Some(f)
    }

    /// Logs `frame` if the active trace follows this session. Call only when
    /// [`FrameTracer::is_active`] said yes.
    #[cold]
    pub fn trace(&self, session: &SessionStats, dir: Direction, frame: &Frame) {
        let connection = self.connection.load(Relaxed);
        if connection != 0 && connection != session.id {
            return;
        }
        let Some(f) = self.current() else { return };
        let follows = match &f.target {
            TraceTarget::Connection(id) => *id == session.id,
            TraceTarget::User(u) => session.facts().user.as_deref() == Some(u.as_str()),
        };
        if !follows {
            return;
        }
        info!(
            target: "frame_trace",
            session = session.id,
            direction = dir.as_str(),
            command = frame.command.as_str(),
            headers = %redacted_headers(frame),
            body_len = frame.body().len(),
            body = %cut_body(frame.body(), f.max_body),
            "frame"
        );
    }
}

/// Whether a header's value must never be logged.
pub fn is_secret_header(name: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    lower == "passcode"
        || lower == "authorization"
        || ["token", "secret", "password"]
            .iter()
            .any(|s| lower.contains(s))
}

/// `name:value` pairs in wire order, secrets as `***`, control characters escaped.
pub fn redacted_headers(frame: &Frame) -> String {
    let mut out = String::new();
    for (i, h) in frame.headers().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.extend(String::from_utf8_lossy(&h.name).escape_debug());
        out.push(':');
        if is_secret_header(&h.name) {
            out.push_str("***");
        } else {
            out.extend(String::from_utf8_lossy(&h.value).escape_debug());
        }
    }
    out
}

/// At most `max` bytes of the body, lossy UTF-8 with control characters escaped.
pub fn cut_body(body: &[u8], max: usize) -> String {
    let cut = &body[..body.len().min(max)];
    let mut s: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if body.len() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::Command;

    #[test]
    fn secrets_are_redacted_and_bodies_cut() {
        let f = Frame::new(Command::Connect)
            .with_header("login", "alice")
            .with_header("passcode", "hunter2")
            .with_header("X-Auth-Token", "t0k")
            .with_header("Authorization", "Bearer abc")
            .with_header("db_password", "pw")
            .with_header("client_secret", "s")
            .with_header("note", "line\nbreak");
        let h = redacted_headers(&f);
        for secret in ["hunter2", "t0k", "abc", "pw", ":s"] {
            assert!(!h.contains(secret), "{secret} leaked in {h}");
        }
        assert!(h.contains("login:alice"));
        assert!(h.contains("note:line\\nbreak"));
        assert_eq!(cut_body(b"abcdef", 3), "abc…");
        assert_eq!(cut_body(b"ab", 3), "ab");
    }

    #[test]
    fn start_validates_and_stop_switches_off() {
        let t = FrameTracer::default();
        assert!(!t.is_active());
        assert_eq!(
            t.start(&TraceRequest::default()).unwrap_err(),
            TraceError::Target
        );
        let bad = TraceRequest {
            connection: Some(1),
            duration_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(t.start(&bad).unwrap_err(), TraceError::Range);
        let ok = TraceRequest {
            user: Some("alice".into()),
            ..Default::default()
        };
        let st = t.start(&ok).unwrap();
        assert!(st.active && t.is_active());
        assert_eq!(st.max_body, Some(DEFAULT_TRACE_BODY_BYTES));
        assert!(t.stop());
        assert!(!t.is_active() && !t.status().active);
    }

    #[test]
    fn expired_trace_stops_itself() {
        let t = FrameTracer::default();
        t.start(&TraceRequest {
            connection: Some(7),
            duration_secs: Some(1),
            ..Default::default()
        })
        .unwrap();
        // Pretend time passed: rewrite the deadline into the past.
        if let Some(f) = t.filter.write().unwrap().as_mut() {
            f.until = Instant::now() - Duration::from_millis(1);
        }
        assert!(!t.status().active);
        assert!(!t.is_active());
    }
}
