//! Who may open and use a SockJS session, decided before any STOMP is read: the shape of
//! session ids, the browser rules that apply when a credential travels on its own (a cookie or
//! cached HTTP Basic: [`RequestCredentials::ambient`]), the binding of a session to whoever
//! opened it, and the per-address session count.
//!
//! The binding is a keyed hash (HMAC-SHA-256 under a per-process random key) of the
//! credential-bearing cookies and `Authorization` values the policy reads, or, when the
//! request carries none, of the client address. Every later request to the session must hash
//! to the same value (compared in constant time) or is answered as if the session did not
//! exist. The key keeps the stored fingerprints useless to anyone who reads memory or logs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http::header::{HeaderMap, AUTHORIZATION, COOKIE, ORIGIN};
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::policy::RequestCredentials;

/// Longest session (and server) id segment. sockjs-client uses 8 characters, Spring's client
/// 32; a longer one only costs memory.
pub const MAX_SESSION_ID_BYTES: usize = 64;

/// Whether a server or session id segment is short and made of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether a browser says the request came from a page on the gateway's own origin. Pages
/// cannot set `Sec-Fetch-*` headers, and a same-origin `GET` (an `eventsource`) carries no
/// `Origin`, so this is how such a request is told from a cross-site `<script src>`.
fn same_origin_fetch(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"))
}

/// With credentials a browser sends on its own, whether a session request may proceed: it must
/// carry an `Origin` (checked against the allowlist elsewhere) or come from the gateway's own
/// origin. A cross-site request without `Origin` (`<script>`, `<img>`, `<iframe>`) is refused.
pub fn browser_request_allowed(headers: &HeaderMap) -> bool {
    headers.contains_key(ORIGIN) || same_origin_fetch(headers)
}

/// A session's creator: the keyed hash of its credential or address.
#[derive(Clone)]
pub struct Binding([u8; 32]);

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Binding(***)")
    }
}

impl Binding {
    /// Whether `other` is the same creator, in constant time.
    pub fn matches(&self, other: &Binding) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Computes [`Binding`]s under one random key.
pub struct Binder {
    key: hmac::Key,
}

impl Binder {
    /// A binder with a fresh random key.
    pub fn new() -> Binder {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // No OS randomness: fall back to the per-process random hasher seeds.
            use std::hash::{BuildHasher, Hasher};
            let mut seed = Vec::with_capacity(32);
            for _ in 0..4 {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u8(0);
                seed.extend_from_slice(&h.finish().to_le_bytes());
            }
            hmac::Key::new(hmac::HMAC_SHA256, &seed)
        });
        Binder { key }
    }

    /// The binding of a request: its credentials as `creds` describes them, else `client`.
    pub fn bind(&self, creds: &RequestCredentials, headers: &HeaderMap, client: IpAddr) -> Binding {
        let mut ctx = hmac::Context::with_key(&self.key);
        let mut any = false;
        let mut feed = |tag: &[u8], value: &[u8]| {
            ctx.update(tag);
            ctx.update(&(value.len() as u64).to_be_bytes());
            ctx.update(value);
        };
        for name in &creds.cookies {
            for value in cookie_values(headers, name) {
                feed(b"cookie", name.as_bytes());
                feed(b"value", value.as_bytes());
                any = true;
            }
        }
        if creds.reads_authorization() {
            for value in headers.get_all(AUTHORIZATION) {
                feed(b"authorization", value.as_bytes());
                any = true;
            }
        }
        if !any {
            let octets = match client {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            feed(b"address", &octets);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(&tag.as_ref()[..32]);
        Binding(out)
    }
}

/// Every value of cookie `name` in the request, in order.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The address a per-address limit counts (the login limiter's and the pending-login count's
/// key): IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64, which one subscriber usually
/// holds whole.
pub use crate::policy::address_key;

/// Open sessions per client address, under a cap.
pub struct AddressCounts {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One session's place in [`AddressCounts`], given back when dropped.
pub struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: IpAddr,
}

impl AddressCounts {
    /// Counts with at most `cap` sessions per address.
    pub fn new(cap: usize) -> Arc<AddressCounts> {
        Arc::new(AddressCounts {
            cap: cap.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more session from `ip`, unless the address is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }

    /// Sessions open from `ip`'s address now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&address_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn cookie_creds() -> RequestCredentials {
        RequestCredentials {
            cookies: vec!["tok".into()],
            basic: true,
            bearer: false,
        }
    }

    #[test]
    fn ids() {
        assert!(valid_id("abc_DEF-09"));
        assert!(valid_id(&"a".repeat(MAX_SESSION_ID_BYTES)));
        for bad in ["", "a.b", "a b", "a%20", "ä", "a/b"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(!valid_id(&"a".repeat(MAX_SESSION_ID_BYTES + 1)));
    }

    #[test]
    fn binding_follows_the_credential_not_other_cookies() {
        let b = Binder::new();
        let c = cookie_creds();
        let ip1: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        let victim = b.bind(&c, &headers(&[("cookie", "a=1; tok=v")]), ip1);
        let same = b.bind(&c, &headers(&[("cookie", "tok=v; a=2")]), ip2);
        assert!(
            victim.matches(&same),
            "other cookies and the address do not matter"
        );
        let other = b.bind(&c, &headers(&[("cookie", "tok=w")]), ip1);
        assert!(!victim.matches(&other));
        let none = b.bind(&c, &HeaderMap::new(), ip1);
        assert!(!victim.matches(&none));
        let basic = b.bind(&c, &headers(&[("authorization", "Basic eDp5")]), ip1);
        assert!(!basic.matches(&none) && !basic.matches(&victim));
        // Without a credential, the address decides.
        assert!(none.matches(&b.bind(&c, &HeaderMap::new(), ip1)));
        assert!(!none.matches(&b.bind(&c, &HeaderMap::new(), ip2)));
        // Another process (key) never matches.
        assert!(!victim.matches(&Binder::new().bind(&c, &headers(&[("cookie", "tok=v")]), ip1)));
    }

    #[test]
    fn authorization_counts_only_when_a_backend_reads_it() {
        let b = Binder::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let none = RequestCredentials::default();
        let h = headers(&[("authorization", "Bearer x")]);
        assert!(b
            .bind(&none, &h, ip)
            .matches(&b.bind(&none, &HeaderMap::new(), ip)));
        let bearer = RequestCredentials {
            bearer: true,
            ..RequestCredentials::default()
        };
        assert!(!b
            .bind(&bearer, &h, ip)
            .matches(&b.bind(&bearer, &HeaderMap::new(), ip)));
    }

    #[test]
    fn browser_rules() {
        assert!(!browser_request_allowed(&HeaderMap::new()));
        assert!(!browser_request_allowed(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(!browser_request_allowed(&headers(&[(
            "sec-fetch-site",
            "same-site"
        )])));
        assert!(browser_request_allowed(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(browser_request_allowed(&headers(&[("origin", "null")])));
    }

    #[test]
    fn address_counts_cap_and_release_per_v6_prefix() {
        let counts = AddressCounts::new(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db9::1".parse().unwrap();
        let s1 = counts.admit(a).unwrap();
        let _s2 = counts.admit(b).unwrap();
        assert!(counts.admit(a).is_none(), "same /64");
        assert!(counts.admit(other).is_some());
        drop(s1);
        assert_eq!(counts.count(a), 1);
        assert!(counts.admit(b).is_some());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
