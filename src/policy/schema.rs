//! The policy file and users file as written on disk (serde, `deny_unknown_fields`). These
//! structs are only parsed here; [`super::Policy::load`] validates them and builds the
//! immutable runtime form. `docs/policy.md` is the reference for every key.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Secret;

/// The policy file (`--policy FILE`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Authentication backends, tried in order; the first that accepts wins.
    #[serde(default)]
    pub auth: Vec<AuthSpec>,
    /// Identity → broker identity mapping.
    #[serde(default)]
    pub upstream: Option<UpstreamSpec>,
    /// Ordered destination ACL rules.
    #[serde(default)]
    pub acl: Vec<AclSpec>,
    /// `Origin` allowlist for upgrades, in addition to `Config.allowed_origins`.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// Failed-login rate limit per client address.
    #[serde(default)]
    pub login_limit: Option<LimiterSpec>,
}

/// One `[[auth]]` backend.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthSpec {
    /// CONNECT `login`/`passcode` against a users file.
    Static(UsersBackendSpec),
    /// A JWT from one of the enabled sources.
    Jwt(Box<JwtSpec>),
    /// HTTP Basic on the upgrade request against a users file.
    HttpBasic(UsersBackendSpec),
    /// The client's own credentials go to the broker.
    Passthrough(RolesOnlySpec),
    /// A verified TLS client certificate.
    ClientCert(ClientCertSpec),
}

/// `static` and `http-basic` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersBackendSpec {
    /// The users file (TOML, `[[user]]` entries).
    pub users_file: PathBuf,
    /// Roles given to every user this backend accepts, besides the user's own.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `passthrough` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesOnlySpec {
    /// Roles given to every client this backend accepts (for ACLs).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Broker logins refused (ASCII case-insensitive). Default `["guest"]`.
    #[serde(default)]
    pub deny_logins: Option<Vec<String>>,
}

/// `client-cert` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertSpec {
    /// Roles given to every certificate this backend accepts.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Certificate identities allowed in; absent means any verified certificate.
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `"x"`.
    One(String),
    /// `["x", "y"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `jwt` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// Keys from PEM files or HMAC secret files (`[[auth.key]]`).
    #[serde(default)]
    pub key: Vec<JwtKeySpec>,
    /// A JWKS file (`{"keys": [...]}`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The algorithm for JWKS keys that carry no `alg` of their own.
    #[serde(default)]
    pub jwks_alg: Option<String>,
    /// Accepted `iss` value(s); unchecked when absent.
    #[serde(default)]
    pub issuer: Option<OneOrMany>,
    /// Accepted `aud` value(s); unchecked when absent (a warning is logged).
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Clock skew allowed on `exp`/`nbf`. Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// Whether `exp` must be present. Default `true`.
    #[serde(default)]
    pub require_exp: Option<bool>,
    /// Where the token may come from; at least one must be enabled.
    pub sources: TokenSourcesSpec,
    /// Claim (dotted path) holding the user name. Default `sub`.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// Claim (dotted path) holding roles, a list or a space-separated string. Default `roles`.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Roles given to every token this backend accepts.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Token sources, each enabled explicitly.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSourcesSpec {
    /// The CONNECT `passcode` header (as RabbitMQ's OAuth 2 plugin expects).
    #[serde(default)]
    pub passcode: bool,
    /// `Authorization: Bearer` on the upgrade request.
    #[serde(default)]
    pub authorization_header: bool,
    /// A cookie on the upgrade request, by name.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A query parameter on the upgrade URL, by name (e.g. `access_token`).
    #[serde(default)]
    pub query_param: Option<String>,
}

/// One `[[auth.key]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeySpec {
    /// The one algorithm this key verifies (`RS256`, `ES256`, `EdDSA`, `HS256`, ...).
    pub alg: String,
    /// Key id; when set, only tokens with this `kid` (or none) use this key.
    #[serde(default)]
    pub kid: Option<String>,
    /// Public key (PEM) for RS*/PS*/ES*/EdDSA.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    /// HMAC secret file for HS* (raw bytes; one trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// `[upstream]`: who each identity becomes at the broker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Used when no user or role entry applies.
    #[serde(default)]
    pub default: Option<UpstreamEntrySpec>,
    /// Per user (`[[upstream.user]]`, with `user = "..."`), checked first.
    #[serde(default)]
    pub user: Vec<UpstreamEntrySpec>,
    /// Per role (`[[upstream.role]]`, with `role = "..."`), first match in file order.
    #[serde(default)]
    pub role: Vec<UpstreamEntrySpec>,
}

/// One broker identity: `login` and `vhost` are templates; `passcode` is literal.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntrySpec {
    /// The user this entry is for (only in `[[upstream.user]]`).
    #[serde(default)]
    pub user: Option<String>,
    /// The role this entry is for (only in `[[upstream.role]]`).
    #[serde(default)]
    pub role: Option<String>,
    /// Broker `login` template.
    #[serde(default)]
    pub login: Option<String>,
    /// Broker `passcode` (prefer `passcode_file`).
    #[serde(default)]
    pub passcode: Option<Secret>,
    /// File holding the broker `passcode`.
    #[serde(default)]
    pub passcode_file: Option<PathBuf>,
    /// Broker `host` (vhost) template.
    #[serde(default)]
    pub vhost: Option<String>,
}

/// One `[[acl]]` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    /// The role the rule applies to; `*` for every identity.
    pub role: String,
    /// `allow` or `deny`.
    pub action: AclAction,
    /// `SEND` and/or `SUBSCRIBE`.
    pub commands: Vec<String>,
    /// Destination glob with placeholders.
    pub destination: String,
}

/// What an ACL rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// Let the frame through.
    Allow,
    /// Refuse the frame.
    Deny,
}

/// `[login_limit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterSpec {
    /// Failed attempts allowed in a burst per (address, user). Default 10.
    #[serde(default)]
    pub burst: Option<u32>,
    /// One more failure is allowed after each such interval. Default `6s`.
    #[serde(default, with = "humantime_serde")]
    pub refill_every: Option<Duration>,
    /// Most addresses tracked at once. Default 65536.
    #[serde(default)]
    pub max_addresses: Option<usize>,
    /// Failed attempts allowed in a burst per address, whatever the user. Default 100.
    #[serde(default)]
    pub address_burst: Option<u32>,
    /// One more attempt is allowed per address after each such interval. Default `600ms`.
    #[serde(default, with = "humantime_serde")]
    pub address_refill_every: Option<Duration>,
}

/// A users file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users.
    #[serde(default)]
    pub user: Vec<UserSpec>,
}

/// One `[[user]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// The login name.
    pub name: String,
    /// argon2id PHC string (`$argon2id$...`) or bcrypt (`$2b$...`).
    pub hash: Secret,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Extra claims for templates and ACL placeholders (`{claims.tenant}`).
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}
