//! [`Identity`]: who an authenticated client is, as the rest of the policy sees it.

use std::fmt;

/// Which backend authenticated a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthSource {
    /// A user from a static users file, via CONNECT `login`/`passcode`.
    Static,
    /// A verified JWT.
    Jwt,
    /// HTTP Basic on the upgrade request, checked against a static users file.
    HttpBasic,
    /// The client's own broker credentials, forwarded as they are.
    Passthrough,
    /// A verified TLS client certificate.
    ClientCert,
}

impl AuthSource {
    /// A short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthSource::Static => "static",
            AuthSource::Jwt => "jwt",
            AuthSource::HttpBasic => "http-basic",
            AuthSource::Passthrough => "passthrough",
            AuthSource::ClientCert => "client-cert",
        }
    }
}

impl fmt::Display for AuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated client. A live session keeps the `Identity` it connected with, even when
/// the policy is reloaded underneath it. Holds no secret (no passcode, no token).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user name (static user, JWT `user_claim`, certificate identity, or the client's login
    /// in pass-through).
    pub user: String,
    /// Roles (static `roles`, the JWT `roles_claim`, plus each backend's fixed `roles`).
    pub roles: Vec<String>,
    /// JWT claims (or a static user's `claims` table), for templates and ACL placeholders.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The backend that accepted the client.
    pub source: AuthSource,
    /// When the credential stops being valid, in seconds since the Unix epoch, leeway
    /// included (a JWT's `exp`): the relay ends the session then. `None`: no end.
    pub valid_until_unix: Option<u64>,
}

impl Identity {
    /// An identity with no claims.
    pub fn new(user: impl Into<String>, roles: Vec<String>, source: AuthSource) -> Self {
        Identity {
            user: user.into(),
            roles,
            claims: serde_json::Map::new(),
            source,
            valid_until_unix: None,
        }
    }

    /// Whether the identity holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The value of a claim at a dotted path (`tenant`, `realm_access.name`), as text. Strings
    /// come as they are, numbers and booleans in JSON spelling; objects, arrays and null give
    /// `None`.
    pub fn claim_text(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let mut v = self.claims.get(first)?;
        for key in rest {
            v = v.as_object()?.get(key)?;
        }
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}
