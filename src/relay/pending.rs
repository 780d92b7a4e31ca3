//! [`PendingLogins`]: connections per client address that have not authenticated yet.
//!
//! Every session — WebSocket or SockJS, whatever the transport — holds a [`PendingGuard`] from
//! the moment it starts until its CONNECT has passed the policy; a client address (an IPv6
//! /64) may hold at most `max_per_address` at once. Unauthenticated connections are what an
//! anonymous attacker can open for free, so this bounds what one address can make the gateway
//! hold before anyone knows who it is (each is also capped in size: see
//! [`super::PRE_AUTH_HEADER_BYTES`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::policy::address_key;

/// Unauthenticated connections per client address.
#[derive(Debug)]
pub struct PendingLogins {
    max_per_address: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One unauthenticated connection; dropping it (once authenticated, or closed) frees its place.
#[derive(Debug)]
pub struct PendingGuard {
    table: Arc<PendingLogins>,
    key: IpAddr,
}

impl PendingLogins {
    /// At most `max_per_address` unauthenticated connections per address (0: no limit).
    pub fn new(max_per_address: usize) -> Arc<Self> {
        Arc::new(PendingLogins {
            max_per_address,
            counts: Mutex::default(),
        })
    }

    /// A place for one more unauthenticated connection from `ip`; `None` when it has none left.
    pub fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Option<PendingGuard> {
        let key = address_key(ip);
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        if self.max_per_address > 0 && *n >= self.max_per_address {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(PendingGuard {
            table: self.clone(),
            key,
        })
    }

    /// Unauthenticated connections from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&address_key(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = self.table.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_frees_on_drop() {
        let t = PendingLogins::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = t.try_enter(a).unwrap();
        let _g2 = t.try_enter(a).unwrap();
        assert!(t.try_enter(a).is_none());
        assert!(t.try_enter(b).is_some());
        drop(g1);
        assert_eq!(t.count(a), 1);
        let _g3 = t.try_enter(a).unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let same64: IpAddr = "2001:db8::2".parse().unwrap();
        let _h = (t.try_enter(v6).unwrap(), t.try_enter(same64).unwrap());
        assert!(t.try_enter("2001:db8::3".parse().unwrap()).is_none());
        assert!(t.lock().len() <= 3, "freed addresses are forgotten");
    }
}
