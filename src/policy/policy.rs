//! [`Policy`]: one immutable, validated policy file with everything it refers to (users files,
//! keys, JWKS, passcode files), and the four questions the relay asks of it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::acl::Acl;
use super::backend::{authenticate_chain, revocation, Backend, BackendLoader, Revoked};
use super::error::{AuthError, Denied, PolicyError};
use super::identity::Identity;
use super::limiter::LimiterSettings;
use super::mapping::Mapping;
use super::rewrite::UpstreamIdentity;
use super::schema::PolicyFile;
use super::sources::RequestCredentials;
use crate::stomp::{Command, Frame};
use crate::transport::ClientMeta;

/// A loaded policy. Immutable: a reload builds a new one (see [`super::PolicyHandle`]).
///
/// [`Policy::authenticate`] may verify an argon2 or bcrypt hash, which takes tens of
/// milliseconds of CPU and ~19 MiB on purpose: call it off the async runtime, on a bounded set
/// of threads (the relay's `VerifyPool`). The other methods are cheap.
pub struct Policy {
    path: PathBuf,
    backends: Vec<Backend>,
    mapping: Mapping,
    acl: Acl,
    allowed_origins: Option<Vec<String>>,
    login_limit: LimiterSettings,
    files: Vec<(PathBuf, Option<SystemTime>)>,
    fallback: Option<UpstreamIdentity>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("path", &self.path)
            .field("backends", &self.backends)
            .field("mapping", &self.mapping)
            .field("acl", &self.acl)
            .field("allowed_origins", &self.allowed_origins)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads and validates a policy file and every file it names. Relative paths inside it are
    /// resolved against the policy file's directory.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        Policy::parse(&text, path)
    }

    /// Validates policy `text` as if read from `path` (used for relative paths and messages).
    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::toml(path, text, &e))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        if file.auth.is_empty() {
            return Err(PolicyError::invalid(
                path,
                "auth",
                "add at least one [[auth]] backend",
            ));
        }
        let mut loader = BackendLoader {
            path,
            base: &base,
            users: Default::default(),
            files: vec![path.to_owned()],
        };
        let backends = file
            .auth
            .into_iter()
            .enumerate()
            .map(|(i, spec)| loader.load(i, spec))
            .collect::<Result<Vec<_>, _>>()?;
        let upstream_files = file.upstream.iter().flat_map(|u| {
            u.default
                .iter()
                .chain(&u.user)
                .chain(&u.role)
                .filter_map(|e| e.passcode_file.clone())
        });
        let mut files = loader.files;
        files.extend(upstream_files.map(|f| base.join(f)).collect::<Vec<_>>());
        let mapping = Mapping::compile(file.upstream, path, &base)?;
        let acl = Acl::compile(file.acl, path)?;
        Ok(Policy {
            path: path.to_owned(),
            backends,
            mapping,
            acl,
            allowed_origins: file.allowed_origins,
            login_limit: LimiterSettings::from_spec(file.login_limit.as_ref()),
            files: files
                .into_iter()
                .map(|f| {
                    let m = mtime(&f);
                    (f, m)
                })
                .collect(),
            fallback: None,
        })
    }

    /// Sets the broker identity used when no `[upstream]` entry applies (the static identity
    /// from `Config.upstream.identity`). Kept across [`super::PolicyHandle::reload`].
    pub fn with_fallback_upstream(mut self, fallback: Option<UpstreamIdentity>) -> Policy {
        self.fallback = fallback;
        self
    }

    /// The fallback broker identity, if one was set.
    pub fn fallback_upstream(&self) -> Option<&UpstreamIdentity> {
        self.fallback.as_ref()
    }

    /// The policy file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Authenticates a CONNECT (or STOMP) frame plus what the upgrade request showed. The
    /// first backend that accepts wins. CPU-heavy: run it off the async runtime. The caller
    /// takes a [`super::LoginLimiter`] token before and gives it back on success.
    pub fn authenticate(&self, connect: &Frame, meta: &ClientMeta) -> Result<Identity, AuthError> {
        authenticate_chain(&self.backends, connect, meta)
    }

    /// Whether a session that authenticated as `id` (under an earlier policy) is still
    /// accepted by this one; `Some(why)` when it must be closed.
    pub fn revocation(&self, id: &Identity) -> Option<Revoked> {
        revocation(&self.backends, id)
    }

    /// The broker identity for `id`; pass it to [`super::rewrite_connect`].
    pub fn upstream_for(
        &self,
        id: &Identity,
        connect: &Frame,
    ) -> Result<UpstreamIdentity, PolicyError> {
        self.mapping
            .upstream_for(id, connect, self.fallback.as_ref())
    }

    /// The destination ACL for one command and destination (only `SEND` and `SUBSCRIBE` are
    /// checked). Prefer [`Policy::check_frame`], which also refuses repeated destinations.
    pub fn check(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&str>,
    ) -> Result<(), Denied> {
        self.acl.check(id, command, destination)
    }

    /// The destination ACL for a whole client frame; a repeated `destination` header is
    /// refused.
    pub fn check_frame(&self, id: &Identity, frame: &Frame) -> Result<(), Denied> {
        self.acl.check_frame(id, frame)
    }

    /// The destination ACL for a frame's `destination` as found by a caller that has already
    /// refused a repeated one (the relay: one pass over the header lines for both).
    pub fn check_destination(
        &self,
        id: &Identity,
        command: Command,
        destination: Option<&[u8]>,
    ) -> Result<(), Denied> {
        self.acl.check_raw(id, command, destination)
    }

    /// Whether an upgrade's `Origin` passes the policy's `allowed_origins` (exact match,
    /// ASCII case-insensitive, or `*`). No list in the policy, or no `Origin` header (not a
    /// browser), passes; `Config.allowed_origins` is checked separately by the transport.
    pub fn check_origin(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (None, _) | (_, None) => true,
            (Some(list), Some(o)) => list.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
        }
    }

    /// The credentials the backends read from the HTTP request itself (see
    /// [`RequestCredentials`]).
    pub fn request_credentials(&self) -> RequestCredentials {
        RequestCredentials::of(&self.backends)
    }

    /// The failed-login limit settings from `[login_limit]` (defaults when absent).
    pub fn login_limit(&self) -> LimiterSettings {
        self.login_limit
    }

    /// Every file this policy was built from (the policy file first): what a watcher polls.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Whether any of [`Policy::files`] has a different modification time (or appeared or
    /// vanished) since this policy was loaded.
    pub fn changed_on_disk(&self) -> bool {
        self.files.iter().any(|(p, m)| mtime(p) != *m)
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
