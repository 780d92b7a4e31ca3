//! The broker addresses as a set of members: new sessions are spread round-robin over the
//! healthy ones, and a member that refused, reset or timed out is skipped for a back-off
//! period. A name that resolves to several addresses (a Kubernetes headless Service) is several
//! members; names are resolved for every new session, so members follow DNS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::UpstreamError;

/// Most members whose health is tracked (and labelled in metrics): a name resolving to more
/// addresses than this still works, its extra members are just not remembered as down.
pub const MAX_TRACKED_MEMBERS: usize = 256;

/// How long resolved addresses are reused: a reconnect storm costs one DNS lookup per name
/// every few seconds, not one per session, and members still follow DNS changes.
pub const RESOLVE_TTL: Duration = Duration::from_secs(5);

/// One address to try: the configured entry it came from (for TLS names) and where it points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the `--upstream` entry this address came from.
    pub entry: usize,
    /// The resolved address.
    pub addr: SocketAddr,
}

/// The upstream members, their health, and the round-robin cursor; shared by all sessions.
pub struct Members {
    entries: Vec<String>,
    down_for: Duration,
    next: AtomicUsize,
    /// Each member seen: healthy (`None`) or down until a time (at most
    /// [`MAX_TRACKED_MEMBERS`] entries).
    health: Mutex<HashMap<SocketAddr, Option<Instant>>>,
    metrics: Option<MemberMetrics>,
    /// The last resolution that found members, and when it was made.
    resolved: Mutex<Option<(Instant, Vec<Candidate>)>>,
}

/// `stompgate_upstream_member_up{member}` and `stompgate_upstream_member_down_total{member}`.
struct MemberMetrics {
    up: IntGaugeVec,
    down: IntCounterVec,
}

impl MemberMetrics {
    fn register(registry: &Registry) -> Option<MemberMetrics> {
        let up = IntGaugeVec::new(
            Opts::new(
                "stompgate_upstream_member_up",
                "1 while an upstream member is considered healthy, 0 while it is skipped",
            ),
            &["member"],
        )
        .ok()?;
        let down = IntCounterVec::new(
            Opts::new(
                "stompgate_upstream_member_down_total",
                "Times an upstream member was marked down (refused, reset, timed out)",
            ),
            &["member"],
        )
        .ok()?;
        registry.register(Box::new(up.clone())).ok()?;
        registry.register(Box::new(down.clone())).ok()?;
        Some(MemberMetrics { up, down })
    }
}

impl Members {
    /// Members for the `--upstream` entries; metrics go to `registry` when given.
    pub fn new(entries: Vec<String>, down_for: Duration, registry: Option<&Registry>) -> Members {
        Members {
            entries,
            down_for,
            next: AtomicUsize::new(0),
            health: Mutex::new(HashMap::new()),
            metrics: registry.and_then(MemberMetrics::register),
            resolved: Mutex::new(None),
        }
    }

    /// The configured entry (`host:port`) at `index`.
    pub fn entry(&self, index: usize) -> &str {
        &self.entries[index]
    }

    /// Connects to a member: healthy ones first, starting at the round-robin cursor; members
    /// that are down only when no healthy one answered. Each attempt is bounded by `timeout`.
    pub async fn connect_tcp(
        &self,
        timeout: Duration,
    ) -> Result<(TcpStream, Candidate), UpstreamError> {
        let (candidates, mut last) = self.resolve_cached(timeout).await;
        for c in self.order(candidates, Instant::now()) {
            match tokio::time::timeout(timeout, TcpStream::connect(c.addr)).await {
                Ok(Ok(stream)) => {
                    // Small frames (ACKs, heart-beats) must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    self.mark_up(c.addr);
                    return Ok((stream, c));
                }
                Ok(Err(e)) => last = format!("{}: {e}", c.addr),
                Err(_) => last = format!("{}: no answer within {timeout:?}", c.addr),
            }
            self.mark_down(c.addr, &last);
        }
        Err(UpstreamError::Unreachable(last))
    }

    /// [`Members::resolve`], reusing a result younger than [`RESOLVE_TTL`] that found members.
    async fn resolve_cached(&self, timeout: Duration) -> (Vec<Candidate>, String) {
        let lock = || self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, candidates)) = lock().as_ref() {
            if at.elapsed() < RESOLVE_TTL {
                return (candidates.clone(), String::from("no member answered"));
            }
        }
        let (candidates, last) = self.resolve(timeout).await;
        if !candidates.is_empty() {
            *lock() = Some((Instant::now(), candidates.clone()));
        }
        (candidates, last)
    }

    /// Every address of every entry, in configuration order; and the last resolution error.
    async fn resolve(&self, timeout: Duration) -> (Vec<Candidate>, String) {
        let mut out = Vec::new();
        let mut last = String::from("no upstream address configured");
        for (entry, name) in self.entries.iter().enumerate() {
            match tokio::time::timeout(timeout, tokio::net::lookup_host(name.as_str())).await {
                Ok(Ok(addrs)) => out.extend(addrs.map(|addr| Candidate { entry, addr })),
                Ok(Err(e)) => last = format!("{name}: {e}"),
                Err(_) => last = format!("{name}: not resolved within {timeout:?}"),
            }
        }
        // One address listed twice (or by two names) is one member.
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(c.addr));
        (out, last)
    }

    /// The order to try `candidates` in: the healthy ones rotated by the cursor (so they share
    /// new sessions evenly), then the ones that are down.
    fn order(&self, candidates: Vec<Candidate>, now: Instant) -> Vec<Candidate> {
        let (mut up, down): (Vec<_>, Vec<_>) = {
            let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            candidates
                .into_iter()
                .partition(|c| !matches!(health.get(&c.addr), Some(Some(until)) if *until > now))
        };
        if !up.is_empty() {
            let start = self.next.fetch_add(1, Relaxed) % up.len();
            up.rotate_left(start);
        }
        up.extend(down);
        up
    }

    /// Skips `addr` for the back-off period (logged and counted when it was not down).
    pub fn mark_down(&self, addr: SocketAddr, cause: &str) {
        let until = Instant::now() + self.down_for;
        if matches!(
            self.set_health(addr, Some(until)),
            Was::Down | Was::Untracked
        ) {
            return;
        }
        warn!(member = %addr, cause, down_for = ?self.down_for, "upstream member marked down");
        if let Some(m) = &self.metrics {
            m.up.with_label_values(&[&addr.to_string()]).set(0);
            m.down.with_label_values(&[&addr.to_string()]).inc();
        }
    }

    /// Counts `addr` as healthy (again).
    pub fn mark_up(&self, addr: SocketAddr) {
        match self.set_health(addr, None) {
            Was::Up | Was::Untracked => return,
            Was::Down => info!(member = %addr, "upstream member up again"),
            Was::New => {}
        }
        if let Some(m) = &self.metrics {
            m.up.with_label_values(&[&addr.to_string()]).set(1);
        }
    }

    /// Records `addr`'s health (`None`: healthy) and says what it was.
    fn set_health(&self, addr: SocketAddr, down_until: Option<Instant>) -> Was {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if !health.contains_key(&addr) && health.len() >= MAX_TRACKED_MEMBERS {
            return Was::Untracked;
        }
        match health.insert(addr, down_until) {
            None => Was::New,
            Some(None) => Was::Up,
            Some(Some(_)) => Was::Down,
        }
    }
}

/// A member's health before [`Members::set_health`].
enum Was {
    /// Not seen before.
    New,
    /// Healthy.
    Up,
    /// Marked down (its back-off may have ended).
    Down,
    /// Not tracked: the table holds [`MAX_TRACKED_MEMBERS`] already.
    Untracked,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(entry: usize, port: u16) -> Candidate {
        Candidate {
            entry,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn new_sessions_rotate_over_members() {
        let m = Members::new(vec![], Duration::from_secs(5), None);
        let all = vec![cand(0, 1), cand(1, 2), cand(2, 3)];
        let now = Instant::now();
        let firsts: Vec<u16> = (0..6)
            .map(|_| m.order(all.clone(), now)[0].addr.port())
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn a_down_member_goes_last_until_its_back_off_ends() {
        let m = Members::new(vec![], Duration::from_secs(5), None);
        let all = vec![cand(0, 1), cand(1, 2)];
        m.mark_down(all[0].addr, "refused");
        let now = Instant::now();
        for _ in 0..4 {
            let order = m.order(all.clone(), now);
            assert_eq!(order[0].addr.port(), 2, "{order:?}");
            assert_eq!(order.len(), 2, "a down member is still a last resort");
        }
        let later = now + Duration::from_secs(6);
        let firsts: Vec<u16> = (0..2)
            .map(|_| m.order(all.clone(), later)[0].addr.port())
            .collect();
        assert!(
            firsts.contains(&1),
            "back in rotation after the back-off: {firsts:?}"
        );
    }

    #[test]
    fn the_healthy_members_share_evenly_while_one_is_down() {
        let m = Members::new(vec![], Duration::from_secs(5), None);
        let all = vec![cand(0, 1), cand(1, 2), cand(2, 3)];
        m.mark_down(all[0].addr, "refused");
        let now = Instant::now();
        let firsts: Vec<u16> = (0..4)
            .map(|_| m.order(all.clone(), now)[0].addr.port())
            .collect();
        assert_eq!(firsts, [2, 3, 2, 3]);
    }

    #[test]
    fn metrics_follow_member_health() {
        let registry = Registry::new();
        let m = Members::new(vec![], Duration::from_secs(5), Some(&registry));
        let addr = cand(0, 7).addr;
        m.mark_up(addr);
        m.mark_down(addr, "refused");
        m.mark_down(addr, "refused again (already down: not a new transition)");
        let metrics = m.metrics.as_ref().unwrap();
        let member = addr.to_string();
        assert_eq!(metrics.up.with_label_values(&[&member]).get(), 0);
        assert_eq!(metrics.down.with_label_values(&[&member]).get(), 1);
        m.mark_up(addr);
        assert_eq!(metrics.up.with_label_values(&[&member]).get(), 1);
    }

    #[tokio::test]
    async fn a_name_resolving_to_several_addresses_is_several_members() {
        // `localhost` resolves to 127.0.0.1 and (usually) ::1; two literal entries stand in for
        // a headless Service's records where it does not.
        let m = Members::new(
            vec![
                "localhost:5".into(),
                "127.0.0.2:5".into(),
                "127.0.0.1:5".into(),
            ],
            Duration::from_secs(5),
            None,
        );
        let (c, _) = m.resolve(Duration::from_secs(2)).await;
        let addrs: Vec<String> = c.iter().map(|c| c.addr.to_string()).collect();
        assert!(addrs.contains(&"127.0.0.1:5".to_owned()), "{addrs:?}");
        assert!(addrs.contains(&"127.0.0.2:5".to_owned()), "{addrs:?}");
        assert_eq!(
            addrs.iter().filter(|a| *a == "127.0.0.1:5").count(),
            1,
            "the same address twice is one member: {addrs:?}"
        );
    }

    #[tokio::test]
    async fn falls_through_to_a_member_that_answers_and_marks_the_refusing_one_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // Port 1 on loopback refuses at once.
        let m = Members::new(
            vec!["127.0.0.1:1".into(), good.to_string()],
            Duration::from_secs(60),
            None,
        );
        for _ in 0..3 {
            let (_s, c) = m.connect_tcp(Duration::from_secs(2)).await.unwrap();
            assert_eq!(c.addr, good);
        }
        let health = m.health.lock().unwrap();
        let refusing = SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(matches!(health.get(&refusing), Some(Some(_))), "{health:?}");
    }
}
