//! The authentication backends and the chain that tries them in order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::credentials;
use super::error::{AuthError, PolicyError};
use super::identity::{AuthSource, Identity};
use super::jwt::JwtBackend;
use super::schema::{AuthSpec, UsersBackendSpec};
use super::users::UserDb;
use crate::stomp::Frame;
use crate::transport::ClientMeta;

/// One configured backend.
#[derive(Debug)]
pub enum Backend {
    /// CONNECT `login`/`passcode` against users.
    Static(UsersBackend),
    /// HTTP Basic on the upgrade against users.
    HttpBasic(UsersBackend),
    /// A JWT.
    Jwt(JwtBackend),
    /// The client's own credentials.
    Passthrough {
        /// Roles for every client.
        roles: Vec<String>,
        /// Broker logins refused.
        deny_logins: Vec<String>,
    },
    /// A verified client certificate.
    ClientCert {
        /// Roles for every certificate.
        roles: Vec<String>,
        /// Allowed identities (any when `None`).
        allowed: Option<Vec<String>>,
    },
}

/// A users file plus the backend's fixed roles.
#[derive(Debug)]
pub struct UsersBackend {
    users: Arc<UserDb>,
    roles: Vec<String>,
}

impl UsersBackend {
    fn check(
        &self,
        name: &str,
        password: &[u8],
        source: AuthSource,
    ) -> Result<Identity, AuthError> {
        let u = self.users.verify(name, password)?;
        let mut roles = self.roles.clone();
        roles.extend(u.roles.iter().cloned());
        Ok(Identity {
            user: u.name.clone(),
            roles,
            claims: u.claims.clone(),
            source,
            valid_until_unix: None,
        })
    }
}

/// Builds backends from their specs. Users files are read once per path even when several
/// backends share them; every file read is recorded in `files`.
pub struct BackendLoader<'a> {
    /// The policy file (for error messages).
    pub path: &'a Path,
    /// Its directory (for relative paths).
    pub base: &'a Path,
    /// Users files already read.
    pub users: HashMap<PathBuf, Arc<UserDb>>,
    /// Every file read.
    pub files: Vec<PathBuf>,
}

impl BackendLoader<'_> {
    /// Builds backend number `i`.
    pub fn load(&mut self, i: usize, spec: AuthSpec) -> Result<Backend, PolicyError> {
        let field = format!("auth[{i}]");
        Ok(match spec {
            AuthSpec::Static(s) => Backend::Static(self.users_backend(s)?),
            AuthSpec::HttpBasic(s) => Backend::HttpBasic(self.users_backend(s)?),
            AuthSpec::Jwt(s) => {
                if let Some(j) = &s.jwks_file {
                    self.files.push(self.base.join(j));
                }
                for k in &s.key {
                    self.files.extend(
                        k.pem_file
                            .iter()
                            .chain(&k.secret_file)
                            .map(|f| self.base.join(f)),
                    );
                }
                Backend::Jwt(JwtBackend::load(*s, self.path, &field, self.base)?)
            }
            AuthSpec::Passthrough(s) => {
                tracing::warn!(
                    policy = %self.path.display(),
                    backend = %field,
                    "passthrough authentication: clients' own credentials go to the broker, which alone decides who they are"
                );
                Backend::Passthrough {
                    roles: s.roles,
                    deny_logins: s.deny_logins.unwrap_or_else(|| vec!["guest".to_owned()]),
                }
            }
            AuthSpec::ClientCert(s) => Backend::ClientCert {
                roles: s.roles,
                allowed: s.allowed,
            },
        })
    }

    fn users_backend(&mut self, s: UsersBackendSpec) -> Result<UsersBackend, PolicyError> {
        let file = self.base.join(&s.users_file);
        let users = match self.users.get(&file) {
            Some(db) => db.clone(),
            None => {
                let db = Arc::new(UserDb::load(&file)?);
                self.users.insert(file.clone(), db.clone());
                self.files.push(file);
                db
            }
        };
        Ok(UsersBackend {
            users,
            roles: s.roles,
        })
    }
}

impl Backend {
    /// `Err(MissingCredentials)` means "not for me": the chain moves on.
    pub fn authenticate(&self, connect: &Frame, meta: &ClientMeta) -> Result<Identity, AuthError> {
        match self {
            Backend::Static(u) => {
                let (login, pass) =
                    credentials::connect_login(connect)?.ok_or(AuthError::MissingCredentials)?;
                u.check(login, pass, AuthSource::Static)
            }
            Backend::HttpBasic(u) => {
                let (login, pass) =
                    credentials::basic(meta)?.ok_or(AuthError::MissingCredentials)?;
                u.check(&login, &pass, AuthSource::HttpBasic)
            }
            Backend::Jwt(j) => j.authenticate(connect, meta),
            Backend::Passthrough { roles, deny_logins } => {
                // Without a login the broker would apply its default user (RabbitMQ: `guest`,
                // which it allows over the gateway's loopback link): never pass that on.
                let login = credentials::connect_login(connect)?
                    .map(|(l, _)| l)
                    .filter(|l| !l.is_empty())
                    .ok_or(AuthError::MissingCredentials)?;
                if login_denied(deny_logins, login) {
                    return Err(AuthError::LoginDenied);
                }
                Ok(Identity::new(login, roles.clone(), AuthSource::Passthrough))
            }
            Backend::ClientCert { roles, allowed } => {
                let cert = meta
                    .client_cert
                    .as_deref()
                    .ok_or(AuthError::MissingCredentials)?;
                match allowed {
                    Some(list) if !list.iter().any(|a| a == cert) => Err(AuthError::Forbidden),
                    _ => Ok(Identity::new(cert, roles.clone(), AuthSource::ClientCert)),
                }
            }
        }
    }
}

/// Whether `login` is on a pass-through deny list (ASCII case-insensitive: a broker that
/// folds case must not let `GUEST` through where `guest` is refused).
pub fn login_denied(deny: &[String], login: &str) -> bool {
    deny.iter().any(|d| d.eq_ignore_ascii_case(login))
}

/// Why a live session's identity is no longer accepted after a policy reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The user is no longer in any users file of its backend kind.
    UserRemoved,
    /// No backend of its kind accepts the identity any more (backend removed, certificate
    /// no longer allowed, login now denied).
    NoLongerAccepted,
}

impl Revoked {
    /// The `ERROR` message the session is closed with.
    pub fn message(self) -> &'static str {
        match self {
            Revoked::UserRemoved => "authentication failed: user removed",
            Revoked::NoLongerAccepted => "authentication failed: no longer accepted",
        }
    }

    /// The close reason label.
    pub fn reason(self) -> &'static str {
        match self {
            Revoked::UserRemoved => "user_removed",
            Revoked::NoLongerAccepted => "identity_revoked",
        }
    }
}

impl Backend {
    /// Whether this backend would still accept `id` without seeing its credentials again:
    /// `None` when `id` came from another kind of backend. A JWT is not re-verified (the
    /// gateway keeps no token); its session ends at `exp` instead.
    fn still_accepts(&self, id: &Identity) -> Option<bool> {
        let accepts = match (self, id.source) {
            (Backend::Static(u), AuthSource::Static)
            | (Backend::HttpBasic(u), AuthSource::HttpBasic) => u.users.contains(&id.user),
            (Backend::Jwt(_), AuthSource::Jwt) => true,
            (Backend::Passthrough { deny_logins, .. }, AuthSource::Passthrough) => {
                !login_denied(deny_logins, &id.user)
            }
            (Backend::ClientCert { allowed, .. }, AuthSource::ClientCert) => allowed
                .as_ref()
                .is_none_or(|list| list.iter().any(|a| a == &id.user)),
            _ => return None,
        };
        Some(accepts)
    }
}

/// Whether a session authenticated as `id` may go on under `backends` (a reloaded policy).
pub fn revocation(backends: &[Backend], id: &Identity) -> Option<Revoked> {
    let verdicts: Vec<bool> = backends
        .iter()
        .filter_map(|b| b.still_accepts(id))
        .collect();
    if verdicts.contains(&true) {
        return None;
    }
    let users_file = matches!(id.source, AuthSource::Static | AuthSource::HttpBasic);
    Some(if users_file && !verdicts.is_empty() {
        Revoked::UserRemoved
    } else {
        Revoked::NoLongerAccepted
    })
}

/// Tries each backend in order; the first that accepts wins. When all refuse, the most
/// specific refusal is returned (see `AuthError::specificity`); with no backend at all, the
/// answer is `MissingCredentials`. Ambiguous credentials stop the chain at once.
pub fn authenticate_chain(
    backends: &[Backend],
    connect: &Frame,
    meta: &ClientMeta,
) -> Result<Identity, AuthError> {
    let mut worst = AuthError::MissingCredentials;
    for b in backends {
        match b.authenticate(connect, meta) {
            Ok(id) => return Ok(id),
            // A repeated credential anywhere refuses the CONNECT outright (invariant 3).
            Err(AuthError::AmbiguousCredentials) => return Err(AuthError::AmbiguousCredentials),
            Err(e) if e.specificity() > worst.specificity() => worst = e,
            Err(_) => {}
        }
    }
    Err(worst)
}
