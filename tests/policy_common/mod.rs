//! Helpers shared by the `tests/policy_*.rs` tests: a self-cleaning temporary directory, fast
//! test password hashes, request metadata, CONNECT frames and JWT signing keys (RSA from the
//! test-only fixtures, EC and Ed25519 generated per run with rcgen).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use stompgate::policy::{hash_password_with, test_params, Policy};
use stompgate::stomp::{Command, Frame};
use stompgate::transport::{ClientMeta, TransportKind};

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "stompgate-policy-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `name` and returns its path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `policy.toml` and loads it.
    pub fn policy(&self, text: &str) -> Policy {
        let p = self.write("policy.toml", text);
        Policy::load(&p).unwrap_or_else(|e| panic!("policy should load: {e}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fast (test-only parameters) argon2id hash.
pub fn fast_hash(password: &str) -> String {
    hash_password_with(password.as_bytes(), test_params()).unwrap()
}

/// A users file: `(name, password, roles, extra TOML lines)`.
pub fn users_toml(users: &[(&str, &str, &[&str], &str)]) -> String {
    let mut s = String::new();
    for (name, pw, roles, extra) in users {
        let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
        s.push_str(&format!(
            "[[user]]\nname = {name:?}\nhash = {:?}\nroles = [{}]\n{extra}\n",
            fast_hash(pw),
            roles.join(", ")
        ));
    }
    s
}

/// Request metadata with these upgrade headers, query string and client certificate.
pub fn meta_with(headers: &[(&str, &str)], query: Option<&str>, cert: Option<&str>) -> ClientMeta {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    ClientMeta {
        peer: "127.0.0.1:40000".parse().unwrap(),
        transport: TransportKind::WebSocket,
        tls: cert.is_some(),
        headers: map,
        query: query.map(str::to_owned),
        client_cert: cert.map(str::to_owned),
    }
}

/// Request metadata with nothing in it.
pub fn meta() -> ClientMeta {
    meta_with(&[], None, None)
}

/// A CONNECT frame with these headers (after `accept-version`).
pub fn connect(headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(Command::Connect).with_header("accept-version", "1.2");
    for (k, v) in headers {
        f.push_header(k.to_string(), v.to_string());
    }
    f
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policy")
        .join(name)
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signing key and the PEM of its public half.
pub struct SigningKey {
    pub alg: Algorithm,
    pub key: EncodingKey,
    pub public_pem: String,
    /// The raw public key (EC: uncompressed point; Ed25519: 32 bytes); empty for RSA.
    pub public_raw: Vec<u8>,
}

pub fn rsa_key() -> SigningKey {
    let private = std::fs::read(fixture("test-only-rsa-private.pem")).unwrap();
    SigningKey {
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(&private).unwrap(),
        public_pem: std::fs::read_to_string(fixture("test-only-rsa-public.pem")).unwrap(),
        public_raw: Vec::new(),
    }
}

pub fn generated_key(alg: Algorithm) -> SigningKey {
    let rc = match alg {
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        other => panic!("no generator for {other:?}"),
    };
    let kp = rcgen::KeyPair::generate_for(rc).unwrap();
    let private = kp.serialize_pem();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
    };
    SigningKey {
        alg,
        key,
        public_pem: kp.public_key_pem(),
        public_raw: kp.public_key_raw().to_vec(),
    }
}

/// Signs `claims` with `key` (and `kid`, if given).
pub fn sign(key: &SigningKey, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &key.key).unwrap()
}

/// Signs with an HMAC secret.
pub fn sign_hs(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An unsigned `alg: none` token.
pub fn unsigned(claims: &serde_json::Value) -> String {
    let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.",
        b(br#"{"alg":"none","typ":"JWT"}"#),
        b(claims.to_string().as_bytes())
    )
}

/// Good claims: for `user`, issuer `https://idp.test`, audience `stompgate`, valid for an hour.
pub fn claims(user: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": user,
        "iss": "https://idp.test",
        "aud": "stompgate",
        "iat": now(),
        "exp": now() + 3600,
        "roles": ["reader"],
        "tenant": "acme",
    })
}

/// A JWK (public) for a generated EC or Ed25519 key.
pub fn jwk(key: &SigningKey, kid: &str, with_alg: bool) -> serde_json::Value {
    let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let raw = &key.public_raw;
    let mut j = match key.alg {
        Algorithm::EdDSA => serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b(raw)}),
        Algorithm::ES256 | Algorithm::ES384 => {
            let n = (raw.len() - 1) / 2;
            let crv = if key.alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            serde_json::json!({"kty": "EC", "crv": crv, "x": b(&raw[1..=n]), "y": b(&raw[n + 1..])})
        }
        other => panic!("no JWK for {other:?}"),
    };
    j["kid"] = kid.into();
    if with_alg {
        j["alg"] = format!("{:?}", key.alg).into();
    }
    j
}
