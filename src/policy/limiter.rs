//! [`LoginLimiter`]: token buckets of login attempts, to slow password guessing.
//!
//! Two buckets are kept: one per (client address, user name), and a looser one per client
//! address. A login attempt takes one token from both **before** its credentials are checked
//! ([`LoginLimiter::try_take`]), so any number of attempts made in parallel can never check
//! more passwords than the buckets hold; a successful login gives both tokens back
//! ([`LoginLimiter::give_back`]), so a user who types the password right is never slowed.
//!
//! Keying the tight bucket by (address, user) means that an attacker guessing one user's
//! password locks out only that user from that address: another user behind the same NAT
//! still logs in, until the looser per-address bucket (`address_burst`, refilled faster) runs
//! dry too — which takes guessing against many user names at once.
//!
//! Each bucket holds `burst` tokens and gains one per `refill_every`. IPv6 addresses are
//! grouped by /64 (one host usually owns a whole /64, and could otherwise rotate through it).
//! Memory is bounded: at most `max_addresses` entries in each map (user names are cut to
//! [`MAX_USER_KEY_BYTES`]); when full, entries that have refilled are dropped, and if that is
//! not enough, the older half goes.
//!
//! Time is passed in (`now`), so the limiter is tested without sleeping. It is not
//! thread-safe by itself: the server keeps one behind a `Mutex` (every call is O(1) amortised).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::error::AuthError;
use super::schema::LimiterSpec;

/// Longest user name kept as a bucket key (longer ones are cut: they still count).
pub const MAX_USER_KEY_BYTES: usize = 128;

/// Limiter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    /// Failed attempts allowed in a burst per (address, user).
    pub burst: u32,
    /// One more attempt is allowed per (address, user) after each such interval.
    pub refill_every: Duration,
    /// Failed attempts allowed in a burst per address, whatever the user.
    pub address_burst: u32,
    /// One more attempt is allowed per address after each such interval.
    pub address_refill_every: Duration,
    /// Most entries tracked at once in each of the two maps.
    pub max_addresses: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            burst: 10,
            refill_every: Duration::from_secs(6),
            address_burst: 100,
            address_refill_every: Duration::from_millis(600),
            max_addresses: 65_536,
        }
    }
}

impl LimiterSettings {
    /// Settings from `[login_limit]`, defaults for what it leaves out.
    pub fn from_spec(spec: Option<&LimiterSpec>) -> LimiterSettings {
        let d = LimiterSettings::default();
        let Some(s) = spec else { return d };
        let at_least_1ms = |v: Duration| v.max(Duration::from_millis(1));
        LimiterSettings {
            burst: s.burst.unwrap_or(d.burst).max(1),
            refill_every: at_least_1ms(s.refill_every.unwrap_or(d.refill_every)),
            address_burst: s.address_burst.unwrap_or(d.address_burst).max(1),
            address_refill_every: at_least_1ms(
                s.address_refill_every.unwrap_or(d.address_refill_every),
            ),
            max_addresses: s.max_addresses.unwrap_or(d.max_addresses).max(16),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts still allowed, as of `updated`.
    tokens: f64,
    updated: Instant,
}

/// One map of buckets with the same burst and refill rate.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new() -> Self {
        Buckets {
            map: HashMap::new(),
        }
    }

    /// Tokens `k` holds at `now` (a full bucket when untracked).
    fn tokens(&self, k: &K, now: Instant, burst: u32, every: Duration) -> f64 {
        self.map
            .get(k)
            .map_or(f64::from(burst), |b| refilled(b, now, burst, every))
    }

    /// Adds `delta` tokens to `k` (negative to take), capped at `burst`; a full bucket is
    /// forgotten, since it is the same as an absent one.
    fn add(&mut self, k: &K, delta: f64, now: Instant, s: (u32, Duration, usize)) {
        let (burst, every, max) = s;
        let tokens = (self.tokens(k, now, burst, every) + delta).clamp(0.0, f64::from(burst));
        if tokens >= f64::from(burst) {
            self.map.remove(k);
            return;
        }
        if !self.map.contains_key(k) && self.map.len() >= max {
            self.evict(now, burst, every, max);
        }
        self.map.insert(
            k.clone(),
            Bucket {
                tokens,
                updated: now,
            },
        );
    }

    /// Drops refilled entries; if the map is still full, drops the older half. Halving makes
    /// the O(n log n) sort amortise to O(log n) per insert.
    fn evict(&mut self, now: Instant, burst: u32, every: Duration, max: usize) {
        let full = f64::from(burst);
        self.map
            .retain(|_, b| refilled(b, now, burst, every) < full);
        if self.map.len() < max {
            return;
        }
        let mut ages: Vec<(Instant, K)> = self
            .map
            .iter()
            .map(|(k, b)| (b.updated, k.clone()))
            .collect();
        ages.sort_unstable_by_key(|(t, _)| *t);
        for (_, k) in ages.iter().take(ages.len() / 2 + 1) {
            self.map.remove(k);
        }
    }
}

fn refilled(b: &Bucket, now: Instant, burst: u32, every: Duration) -> f64 {
    let gained = now.saturating_duration_since(b.updated).as_secs_f64() / every.as_secs_f64();
    (b.tokens + gained).min(f64::from(burst))
}

/// Login attempts per (address, user) and per address.
#[derive(Debug)]
pub struct LoginLimiter {
    settings: LimiterSettings,
    pairs: Buckets<(IpAddr, String)>,
    addresses: Buckets<IpAddr>,
}

impl LoginLimiter {
    /// An empty limiter.
    pub fn new(settings: LimiterSettings) -> Self {
        LoginLimiter {
            settings,
            pairs: Buckets::new(),
            addresses: Buckets::new(),
        }
    }

    /// Replaces the settings (after a policy reload); tracked entries are kept.
    pub fn set_settings(&mut self, settings: LimiterSettings) {
        self.settings = settings;
    }

    /// How many (address, user) pairs are tracked.
    pub fn len(&self) -> usize {
        self.pairs.map.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.pairs.map.is_empty() && self.addresses.map.is_empty()
    }

    /// How many addresses are tracked.
    pub fn addresses_len(&self) -> usize {
        self.addresses.map.len()
    }

    /// Takes one attempt for `user` at `ip`; call **before** checking the credentials.
    /// `Err(RateLimited)` (and nothing taken) when either bucket is empty.
    pub fn try_take(&mut self, ip: IpAddr, user: &str, now: Instant) -> Result<(), AuthError> {
        let (pair, addr) = (pair_key(ip, user), address_key(ip));
        let (ps, as_) = (self.pair_settings(), self.address_settings());
        if self.pairs.tokens(&pair, now, ps.0, ps.1) < 1.0
            || self.addresses.tokens(&addr, now, as_.0, as_.1) < 1.0
        {
            return Err(AuthError::RateLimited);
        }
        self.pairs.add(&pair, -1.0, now, ps);
        self.addresses.add(&addr, -1.0, now, as_);
        Ok(())
    }

    /// Gives back the attempt [`LoginLimiter::try_take`] took: the login succeeded.
    pub fn give_back(&mut self, ip: IpAddr, user: &str, now: Instant) {
        let (ps, as_) = (self.pair_settings(), self.address_settings());
        self.pairs.add(&pair_key(ip, user), 1.0, now, ps);
        self.addresses.add(&address_key(ip), 1.0, now, as_);
    }

    fn pair_settings(&self) -> (u32, Duration, usize) {
        let s = &self.settings;
        (s.burst, s.refill_every, s.max_addresses)
    }

    fn address_settings(&self) -> (u32, Duration, usize) {
        let s = &self.settings;
        (s.address_burst, s.address_refill_every, s.max_addresses)
    }
}

fn pair_key(ip: IpAddr, user: &str) -> (IpAddr, String) {
    let mut end = user.len().min(MAX_USER_KEY_BYTES);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    (address_key(ip), user[..end].to_owned())
}

/// The address key: the address itself for IPv4, its /64 for IPv6 (IPv4-mapped IPv6 addresses
/// count as IPv4).
pub fn address_key(ip: IpAddr) -> IpAddr {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimiterSettings {
        LimiterSettings {
            burst: 3,
            refill_every: Duration::from_secs(10),
            address_burst: 5,
            address_refill_every: Duration::from_secs(1),
            max_addresses: 100,
        }
    }

    #[test]
    fn a_success_gives_its_token_back() {
        let mut l = LoginLimiter::new(settings());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..50 {
            l.try_take(ip, "alice", t0).unwrap();
            l.give_back(ip, "alice", t0);
        }
        assert!(l.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn per_user_lockout_leaves_other_users_at_the_address_alone() {
        let mut l = LoginLimiter::new(settings());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.try_take(ip, "alice", t0).unwrap();
        }
        assert_eq!(l.try_take(ip, "alice", t0), Err(AuthError::RateLimited));
        // A refusal takes nothing from the address: bob still has the address's other 2.
        for _ in 0..100 {
            let _ = l.try_take(ip, "alice", t0);
        }
        l.try_take(ip, "bob", t0).unwrap();
        l.give_back(ip, "bob", t0);
        // Spraying user names drains the looser address bucket (5) at last.
        l.try_take(ip, "carol", t0).unwrap();
        l.try_take(ip, "dave", t0).unwrap();
        assert_eq!(l.try_take(ip, "erin", t0), Err(AuthError::RateLimited));
        assert_eq!(l.try_take(ip, "bob", t0), Err(AuthError::RateLimited));
        // The address refills faster than the pair.
        let t1 = t0 + Duration::from_secs(1);
        l.try_take(ip, "bob", t1).unwrap();
        assert_eq!(l.try_take(ip, "alice", t1), Err(AuthError::RateLimited));
        let t2 = t0 + Duration::from_secs(10);
        l.try_take(ip, "alice", t2).unwrap();
    }

    #[test]
    fn ipv6_hosts_count_per_64_and_memory_stays_bounded() {
        let mut l = LoginLimiter::new(settings());
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        for _ in 0..3 {
            l.try_take(a, "u", t0).unwrap();
        }
        assert_eq!(l.try_take(b, "u", t0), Err(AuthError::RateLimited));
        l.try_take("2001:db8:1:3::1".parse().unwrap(), "u", t0)
            .unwrap();
        for i in 0..10_000u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            let _ = l.try_take(IpAddr::from(i.to_be_bytes()), &"x".repeat(1000), t);
            assert!(l.len() <= 100 && l.addresses_len() <= 100);
        }
    }
}
