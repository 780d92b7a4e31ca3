//! The registry of polling and streaming sessions by id, and their expiry: a session with no
//! receiving request for `disconnect_delay` is removed and ended. WebSocket sessions are not
//! registered (no other request can reach them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::link::{SockjsRx, SockjsTx};
use super::session::{Owner, Session, SessionLimits};

/// The registry of polling and streaming sessions by session id.
pub(crate) struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    live: Arc<AtomicUsize>,
}

/// A session looked up or created by [`Registry::get_or_create`].
pub(crate) enum Lookup {
    /// It existed.
    Existing(Arc<Session>),
    /// It was created; the relay's halves are here for the sink.
    Created(Arc<Session>, SockjsRx, SockjsTx),
    /// The session cap is reached.
    Full,
    /// The creator's address has its most sessions.
    AddressFull,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry {
            sessions: Mutex::new(HashMap::new()),
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions alive now (registered ones and WebSocket ones, until the relay drops them).
    pub fn live(&self) -> &Arc<AtomicUsize> {
        &self.live
    }

    /// The registered session `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map().get(id).cloned()
    }

    /// The session `id`, created (and watched for expiry) when unknown and under `max`, for
    /// the creator `owner` gives (`None`: its address is at its cap).
    pub fn get_or_create(
        self: &Arc<Self>,
        id: &str,
        limits: &SessionLimits,
        max: usize,
        owner: impl FnOnce() -> Option<Owner>,
    ) -> Lookup {
        let mut map = self.map();
        if let Some(s) = map.get(id) {
            return Lookup::Existing(s.clone());
        }
        if self.live.load(Ordering::Relaxed) >= max {
            return Lookup::Full;
        }
        let Some(owner) = owner() else {
            return Lookup::AddressFull;
        };
        let (session, rx, tx) = Session::owned(limits.clone(), &self.live, owner);
        map.insert(id.to_owned(), session.clone());
        drop(map);
        tokio::spawn(watch_expiry(self.clone(), id.to_owned(), session.clone()));
        Lookup::Created(session, rx, tx)
    }

    fn remove(&self, id: &str, session: &Arc<Session>) {
        let mut map = self.map();
        if map.get(id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(id);
        }
    }
}

/// Expires `session` once it has had no receiver for the disconnect delay.
async fn watch_expiry(registry: Arc<Registry>, id: String, session: Arc<Session>) {
    let mut changes = session.subscribe();
    loop {
        changes.borrow_and_update();
        match session.expiry() {
            Some(at) if at <= Instant::now() => break,
            Some(at) => {
                tokio::select! {
                    _ = changes.changed() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::debug!(session = %id, "sockjs session expired");
    registry.remove(&id, &session);
    session.expire();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transport::sockjs::session::test_support::limits;
    use crate::transport::sockjs::session::Attach;
    use crate::transport::ClientRx;

    #[tokio::test(start_paused = true)]
    async fn registry_expires_sessions_without_receiver() {
        let reg = Registry::new();
        let Lookup::Created(s, mut rx, _tx) =
            reg.get_or_create("id", &limits(4, false), 10, || Some(Owner::default()))
        else {
            panic!("must create")
        };
        let Attach::Attached(id) = s.attach() else {
            panic!("must attach")
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(reg.get("id").is_some(), "attached sessions do not expire");
        s.detach(id, false);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(reg.get("id").is_none());
        assert_eq!(rx.recv().await.unwrap(), None);
        assert!(matches!(
            reg.get_or_create("other", &limits(4, false), 0, || Some(Owner::default())),
            Lookup::Full
        ));
    }
}
