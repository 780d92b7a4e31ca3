//! The JWT backend: keys pinned to one algorithm each, from PEM files, HMAC secret files or a
//! JWKS file; `iss`/`aud`/`exp`/`nbf` checked with a leeway; the token taken from the sources
//! the policy enables explicitly.
//!
//! Algorithm confusion is impossible by construction: a key verifies only the one `alg` it is
//! configured with, the key's type is checked against that `alg` at load (an RSA PEM can never
//! become an HMAC secret), and `alg: none` does not parse.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::credentials::{self, MAX_TOKEN_BYTES};
use super::error::{AuthError, PolicyError};
use super::identity::{AuthSource, Identity};
use super::schema::{JwtKeySpec, JwtSpec, TokenSourcesSpec};
use crate::config::Secret;
use crate::stomp::Frame;
use crate::transport::ClientMeta;

/// Most keys tried for one token (bounds the CPU a token with no `kid` can cost).
const MAX_KEYS_TRIED: usize = 8;

/// Default clock skew on `exp`/`nbf`, in seconds.
const DEFAULT_LEEWAY_SECS: u64 = 60;

/// One verification key, pinned to one algorithm.
struct PinnedKey {
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// A configured `jwt` backend.
pub struct JwtBackend {
    keys: Vec<PinnedKey>,
    issuer: Option<Vec<String>>,
    audience: Option<Vec<String>>,
    leeway_secs: u64,
    require_exp: bool,
    sources: TokenSourcesSpec,
    user_claim: Vec<String>,
    roles_claim: Vec<String>,
    roles: Vec<String>,
}

impl fmt::Debug for JwtBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{:?}/{}", k.alg, k.kid.as_deref().unwrap_or("-")))
            .collect();
        f.debug_struct("JwtBackend")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// Which family a key must belong to for `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(s).map_err(|_| {
        format!("`{s}` is not a supported algorithm (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA; never `none`)")
    })
}

impl JwtBackend {
    /// Builds the backend; relative paths are resolved against `base` (the policy file's
    /// directory) by the caller. `field` prefixes error field names (e.g. `auth[1]`).
    pub fn load(spec: JwtSpec, path: &Path, field: &str, base: &Path) -> Result<Self, PolicyError> {
        let inv = |f: &str, m: String| PolicyError::invalid(path, format!("{field}.{f}"), m);
        let mut keys = Vec::new();
        for (i, k) in spec.key.iter().enumerate() {
            keys.push(load_key(k, base).map_err(|m| inv(&format!("key[{i}]"), m))?);
        }
        if let Some(jwks) = &spec.jwks_file {
            let default_alg = spec.jwks_alg.as_deref().map(parse_alg).transpose();
            let default_alg = default_alg.map_err(|m| inv("jwks_alg", m))?;
            let jwks = base.join(jwks);
            keys.extend(load_jwks(&jwks, default_alg).map_err(|m| inv("jwks_file", m))?);
        }
        if keys.is_empty() {
            return Err(inv(
                "key",
                "a jwt backend needs at least one key or a jwks_file".into(),
            ));
        }
        let s = &spec.sources;
        if !(s.passcode || s.authorization_header || s.cookie.is_some() || s.query_param.is_some())
        {
            return Err(inv(
                "sources",
                "enable at least one of passcode, authorization_header, cookie, query_param".into(),
            ));
        }
        if spec.audience.is_none() {
            tracing::warn!(
                policy = %path.display(),
                backend = field,
                "jwt backend has no `audience`: tokens issued for any other service are accepted"
            );
        }
        Ok(JwtBackend {
            keys,
            issuer: spec.issuer.map(|v| v.into_vec()),
            audience: spec.audience.map(|v| v.into_vec()),
            leeway_secs: spec.leeway.map_or(DEFAULT_LEEWAY_SECS, |d| d.as_secs()),
            require_exp: spec.require_exp.unwrap_or(true),
            sources: spec.sources,
            user_claim: claim_path(spec.user_claim.as_deref().unwrap_or("sub")),
            roles_claim: claim_path(spec.roles_claim.as_deref().unwrap_or("roles")),
            roles: spec.roles,
        })
    }

    /// The sources this backend takes its token from.
    pub fn sources(&self) -> &TokenSourcesSpec {
        &self.sources
    }

    /// Finds the token in the enabled sources (in the order `Authorization` header, cookie,
    /// query parameter, CONNECT `passcode`; the first present is used) and verifies it.
    pub fn authenticate(&self, connect: &Frame, meta: &ClientMeta) -> Result<Identity, AuthError> {
        let token = self
            .find_token(connect, meta)?
            .ok_or(AuthError::MissingCredentials)?;
        let claims = self.verify(&token)?;
        self.identity(claims)
    }

    fn find_token(&self, connect: &Frame, meta: &ClientMeta) -> Result<Option<String>, AuthError> {
        let s = &self.sources;
        if s.authorization_header {
            if let Some(t) = credentials::bearer(meta)? {
                return Ok(Some(t.to_owned()));
            }
        }
        if let Some(name) = &s.cookie {
            if let Some(t) = credentials::cookie(meta, name)? {
                return Ok(Some(t));
            }
        }
        if let Some(name) = &s.query_param {
            if let Some(t) = credentials::query_param(meta, name)? {
                return Ok(Some(t));
            }
        }
        if s.passcode {
            // A passcode that is not JWT-shaped is a password for another backend, not a
            // broken token: stepping aside lets "bad credentials" be the answer.
            let token = credentials::connect_passcode(connect)?.filter(|t| looks_like_jwt(t));
            return Ok(token.map(str::to_owned));
        }
        Ok(None)
    }

    /// Verifies a token's signature and claims; returns its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
        let candidates: Vec<&PinnedKey> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
            .take(MAX_KEYS_TRIED)
            .collect();
        if candidates.is_empty() {
            let alg_known = self.keys.iter().any(|k| k.alg == header.alg);
            return Err(if alg_known {
                AuthError::UnknownKey
            } else {
                AuthError::TokenInvalid
            });
        }
        let mut last = AuthError::TokenInvalid;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &key.key,
                &self.validation(key.alg),
            ) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    last = map_error(e.kind());
                    if last != AuthError::TokenInvalid {
                        // The signature verified; the claims are what is wrong.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.leeway_secs;
        v.validate_nbf = true;
        let mut required: Vec<&str> = Vec::new();
        // A present `exp` is always checked; `require_exp = false` only lets it be absent.
        v.validate_exp = true;
        if self.require_exp {
            required.push("exp");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(aud);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(iss);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, AuthError> {
        let user = lookup(&claims, &self.user_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::TokenInvalid)?
            .to_owned();
        let mut roles = self.roles.clone();
        match lookup(&claims, &self.roles_claim) {
            Some(Value::Array(a)) => {
                roles.extend(a.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            Some(Value::String(s)) => roles.extend(s.split_whitespace().map(str::to_owned)),
            _ => {}
        }
        // The session ends when the token would no longer be accepted.
        let valid_until_unix = match claims.get("exp") {
            None => None,
            Some(exp) => {
                // An `exp` that is not a whole number was not checked by the library: refuse.
                let exp = exp.as_u64().ok_or(AuthError::TokenInvalid)?;
                Some(exp.saturating_add(self.leeway_secs))
            }
        };
        Ok(Identity {
            user,
            roles,
            claims,
            source: AuthSource::Jwt,
            valid_until_unix,
        })
    }
}

/// Three non-empty base64url segments (`none` tokens have an empty third one and are caught
/// later as invalid, so an empty signature still counts as JWT-shaped).
fn looks_like_jwt(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

fn claim_path(s: &str) -> Vec<String> {
    s.split('.').map(str::to_owned).collect()
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(claims.get(first)?, |v, k| v.as_object()?.get(k))
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::TokenExpired,
        ErrorKind::ImmatureSignature => AuthError::TokenNotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        _ => AuthError::TokenInvalid,
    }
}

fn load_key(k: &JwtKeySpec, base: &Path) -> Result<PinnedKey, String> {
    let alg = parse_alg(&k.alg)?;
    let key = match (family(alg), &k.pem_file, &k.secret_file) {
        (Family::Hmac, None, Some(file)) => {
            let secret = Secret::from_file(&base.join(file))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if secret.expose().len() < 32 {
                return Err("HMAC secrets must be at least 32 bytes".into());
            }
            DecodingKey::from_secret(secret.expose().as_bytes())
        }
        (Family::Hmac, _, _) => {
            return Err(format!("{} needs `secret_file` (and no `pem_file`)", k.alg))
        }
        (fam, Some(file), None) => {
            let pem = std::fs::read(base.join(file))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let parsed = match fam {
                Family::Rsa => DecodingKey::from_rsa_pem(&pem),
                Family::Ec => DecodingKey::from_ec_pem(&pem),
                _ => DecodingKey::from_ed_pem(&pem),
            };
            parsed.map_err(|_| format!("{} is not a {} public key (PEM)", file.display(), k.alg))?
        }
        _ => return Err(format!("{} needs `pem_file` (and no `secret_file`)", k.alg)),
    };
    Ok(PinnedKey {
        alg,
        kid: k.kid.clone(),
        key,
    })
}

fn load_jwks(path: &Path, default_alg: Option<Algorithm>) -> Result<Vec<PinnedKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a JWKS: line {}", path.display(), e.line()))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        if is_encryption_key(jwk) {
            continue;
        }
        let own = jwk
            .common
            .key_algorithm
            .map(|a| parse_alg(&format!("{a:?}")))
            .transpose()?;
        let alg = match (own, default_alg) {
            (Some(a), Some(d)) if a != d => {
                return Err(format!(
                    "key {i}: its alg {a:?} differs from jwks_alg {d:?}"
                ))
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Err(format!("key {i} has no `alg`: set `jwks_alg` to pin one")),
        };
        let fam = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            AlgorithmParameters::OctetKey(_) => Family::Hmac,
        };
        if fam != family(alg) {
            return Err(format!("key {i}: a {fam:?} key cannot verify {alg:?}"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|_| format!("key {i} is not a valid JWK"))?;
        keys.push(PinnedKey {
            alg,
            kid: jwk.common.key_id.clone(),
            key,
        });
    }
    Ok(keys)
}

/// JWKS files often carry encryption keys beside signing keys; those are skipped, not errors.
fn is_encryption_key(jwk: &jsonwebtoken::jwk::Jwk) -> bool {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
        || matches!(
            jwk.common.key_algorithm,
            Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256)
        )
}
