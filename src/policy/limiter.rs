//! [`LoginLimiter`]: a per-address token bucket of failed logins, to slow password guessing.
//!
//! Each address may fail `burst` times in a row; one more failure is allowed per
//! `refill_every`. Only failures spend tokens, so a user who types the password right is never
//! slowed. IPv6 addresses are grouped by /64 (one host usually owns a whole /64, and could
//! otherwise rotate through it). Memory is bounded: at most `max_addresses` entries; when full,
//! entries that have refilled are dropped, and if that is not enough, the older half goes.
//!
//! Time is passed in (`now`), so the limiter is tested without sleeping. It is not
//! thread-safe by itself: the server keeps one behind a `Mutex` (every call is O(1) amortised).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::error::AuthError;
use super::schema::LimiterSpec;

/// Limiter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// One more failure is allowed after each such interval.
    pub refill_every: Duration,
    /// Most addresses tracked at once.
    pub max_addresses: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            burst: 10,
            refill_every: Duration::from_secs(6),
            max_addresses: 65_536,
        }
    }
}

impl LimiterSettings {
    /// Settings from `[login_limit]`, defaults for what it leaves out.
    pub fn from_spec(spec: Option<&LimiterSpec>) -> LimiterSettings {
        let d = LimiterSettings::default();
        let Some(s) = spec else { return d };
        LimiterSettings {
            burst: s.burst.unwrap_or(d.burst).max(1),
            refill_every: s
                .refill_every
                .unwrap_or(d.refill_every)
                .max(Duration::from_millis(1)),
            max_addresses: s.max_addresses.unwrap_or(d.max_addresses).max(16),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, as of `updated`.
    tokens: f64,
    updated: Instant,
}

/// Per-address failed-login limiter.
#[derive(Debug)]
pub struct LoginLimiter {
    settings: LimiterSettings,
    buckets: HashMap<IpAddr, Bucket>,
}

impl LoginLimiter {
    /// An empty limiter.
    pub fn new(settings: LimiterSettings) -> Self {
        LoginLimiter {
            settings,
            buckets: HashMap::new(),
        }
    }

    /// Replaces the settings (after a policy reload); tracked addresses are kept.
    pub fn set_settings(&mut self, settings: LimiterSettings) {
        self.settings = settings;
    }

    /// How many addresses are tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// `Err(RateLimited)` when `ip` has no failures left; call before authenticating.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), AuthError> {
        match self.buckets.get(&key(ip)) {
            Some(b) if self.refilled(b, now) < 1.0 => Err(AuthError::RateLimited),
            _ => Ok(()),
        }
    }

    /// Spends one failure for `ip`; call after a failed authentication.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        let k = key(ip);
        if !self.buckets.contains_key(&k) && self.buckets.len() >= self.settings.max_addresses {
            self.evict(now);
        }
        let full = f64::from(self.settings.burst);
        let tokens = self.buckets.get(&k).map_or(full, |b| self.refilled(b, now));
        self.buckets.insert(
            k,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                updated: now,
            },
        );
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        let gained = elapsed / self.settings.refill_every.as_secs_f64();
        (b.tokens + gained).min(f64::from(self.settings.burst))
    }

    /// Drops refilled entries (they are the same as absent); if the map is still full, drops
    /// the older half. Halving makes the O(n log n) sort amortise to O(log n) per insert.
    fn evict(&mut self, now: Instant) {
        let full = f64::from(self.settings.burst);
        let settings = self.settings;
        self.buckets.retain(|_, b| {
            let gained = now.saturating_duration_since(b.updated).as_secs_f64()
                / settings.refill_every.as_secs_f64();
            b.tokens + gained < full
        });
        if self.buckets.len() < self.settings.max_addresses {
            return;
        }
        let mut ages: Vec<(Instant, IpAddr)> = self
            .buckets
            .iter()
            .map(|(ip, b)| (b.updated, *ip))
            .collect();
        ages.sort_unstable();
        for (_, ip) in ages.iter().take(ages.len() / 2 + 1) {
            self.buckets.remove(ip);
        }
    }
}

/// The bucket key: the address itself for IPv4, its /64 for IPv6 (IPv4-mapped IPv6 addresses
/// count as IPv4).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}
