//! [`PolicyHandle`]: the live policy, swapped atomically on reload.
//!
//! Readers take a cheap snapshot ([`PolicyHandle::current`]) per decision; a reload builds a
//! whole new [`Policy`] and swaps it in only if it is valid, so a bad file never replaces a
//! good one. Live sessions keep the [`super::Identity`] they connected with: a reload changes
//! ACL decisions for their later frames, never who they are or which broker user they became.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::error::PolicyError;
use super::policy::Policy;
use super::rewrite::UpstreamIdentity;

/// A shared, reloadable policy. Cloning shares the same policy.
#[derive(Clone)]
pub struct PolicyHandle {
    inner: Arc<ArcSwap<Policy>>,
}

impl std::fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PolicyHandle")
            .field(&self.current().path())
            .finish()
    }
}

impl PolicyHandle {
    /// Wraps an already loaded policy.
    pub fn new(policy: Policy) -> Self {
        PolicyHandle {
            inner: Arc::new(ArcSwap::from_pointee(policy)),
        }
    }

    /// Loads `path` with an optional fallback broker identity (see
    /// [`Policy::with_fallback_upstream`]).
    pub fn load(
        path: &std::path::Path,
        fallback: Option<UpstreamIdentity>,
    ) -> Result<Self, PolicyError> {
        Ok(PolicyHandle::new(
            Policy::load(path)?.with_fallback_upstream(fallback),
        ))
    }

    /// The policy in force now, to keep (a session's CONNECT holds it across an `await`).
    pub fn current(&self) -> Arc<Policy> {
        self.inner.load_full()
    }

    /// The policy in force now, for one decision: no reference count is taken (the per-frame
    /// ACL check uses this). Do not hold it across an `await` or a reload of this handle.
    pub fn peek(&self) -> impl std::ops::Deref<Target = Arc<Policy>> + '_ {
        self.inner.load()
    }

    /// Re-reads the policy file (and everything it names). On success the new policy is in
    /// force and returned; on error the old one stays in force and the error is returned for
    /// the caller to log. Blocking file I/O and hashing-free, but call it off the async
    /// runtime's hot path (`spawn_blocking`) all the same.
    pub fn reload(&self) -> Result<Arc<Policy>, PolicyError> {
        let old = self.current();
        let new = Arc::new(
            Policy::load(old.path())?.with_fallback_upstream(old.fallback_upstream().cloned()),
        );
        self.inner.store(new.clone());
        Ok(new)
    }

    /// [`PolicyHandle::reload`] only when a file changed on disk; `None` when nothing did.
    pub fn reload_if_changed(&self) -> Option<Result<Arc<Policy>, PolicyError>> {
        self.current().changed_on_disk().then(|| self.reload())
    }
}
