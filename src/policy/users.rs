//! Static users: a TOML users file with argon2id (or imported bcrypt) password hashes, and the
//! hashing behind `stompgate hash-password`.
//!
//! Verification is deliberately slow and memory-hungry (that is the point of argon2): callers
//! on an async runtime must run [`super::Policy::authenticate`] off it — the relay uses a few
//! threads of its own (`relay::VerifyPool`), each reusing one argon2 working memory.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::error::{AuthError, PolicyError};
use super::schema::UsersFile;
use crate::config::Secret;

/// Longest password hashed; longer ones are refused without hashing (argon2 cost grows with
/// input length, and bcrypt would silently truncate at 72 bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest argon2 memory cost accepted in a users file, in KiB (a typo must not make every
/// login allocate gigabytes).
const MAX_ARGON2_M_COST_KIB: u32 = 1024 * 1024;

/// Largest argon2 time cost (passes) accepted in a users file.
const MAX_ARGON2_T_COST: u32 = 64;

/// A stored password hash.
#[derive(Clone)]
enum StoredHash {
    Argon2(Secret),
    Bcrypt(Secret),
}

impl StoredHash {
    fn parse(hash: Secret) -> Result<StoredHash, String> {
        let s = hash.expose();
        if s.starts_with("$argon2id$") {
            let parsed = PasswordHash::new(s).map_err(|_| "not a valid argon2id PHC string")?;
            let params = Params::try_from(&parsed).map_err(|_| "bad argon2 parameters")?;
            if params.m_cost() > MAX_ARGON2_M_COST_KIB || params.t_cost() > MAX_ARGON2_T_COST {
                return Err("argon2 cost too high (at most m=1 GiB, t=64)".into());
            }
            Ok(StoredHash::Argon2(hash))
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) {
            if s.len() != 60 {
                return Err("not a valid bcrypt hash".into());
            }
            Ok(StoredHash::Bcrypt(hash))
        } else {
            Err(
                "use an argon2id PHC string (`stompgate hash-password`) or a bcrypt `$2b$` hash"
                    .into(),
            )
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2(h) => verify_argon2(password, h.expose()),
            StoredHash::Bcrypt(h) => {
                bcrypt::non_truncating_verify(password, h.expose()).unwrap_or(false)
            }
        }
    }
}

thread_local! {
    /// This thread's argon2 working memory, reused by every check it runs. Left to the
    /// library, each check allocates (and touches) its ~19 MiB afresh, and the allocator keeps
    /// much of it: ten checks in a row grew the process by ~190 MiB. Reused, the credential
    /// threads (`relay::VerifyPool`) hold one hash's memory each, and no more.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks `password` against an argon2id PHC string, in this thread's reused memory.
fn verify_argon2(password: &[u8], phc: &str) -> bool {
    let Ok(ph) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&ph.salt, &ph.hash) else {
        return false;
    };
    let (Ok(params), Ok(version)) = (
        Params::try_from(&ph),
        Version::try_from(ph.version.unwrap_or(0x13)),
    ) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        argon
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .is_ok()
    });
    computed && constant_time_eq(&out, expected.as_bytes())
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One user from the file.
#[derive(Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    hash: StoredHash,
    /// Roles.
    pub roles: Vec<String>,
    /// Claims for templates.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("hash", &"***")
            .field("roles", &self.roles)
            .finish()
    }
}

/// The users of one users file.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: HashMap<String, User>,
    /// A hash checked when the user is unknown, so unknown and known users take the same time.
    decoy: Option<StoredHash>,
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl UserDb {
    /// Reads and validates a users file.
    pub fn load(path: &Path) -> Result<UserDb, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        let file: UsersFile =
            toml::from_str(&text).map_err(|e| PolicyError::toml(path, &text, &e))?;
        let mut users = HashMap::with_capacity(file.user.len());
        let mut decoy = None;
        for (i, u) in file.user.into_iter().enumerate() {
            if u.name.is_empty() || users.contains_key(&u.name) {
                return Err(PolicyError::invalid(
                    path,
                    format!("user[{i}].name"),
                    "user names must be non-empty and unique",
                ));
            }
            let hash = StoredHash::parse(u.hash)
                .map_err(|m| PolicyError::invalid(path, format!("user[{i}].hash"), m))?;
            decoy.get_or_insert_with(|| hash.clone());
            let user = User {
                name: u.name.clone(),
                hash,
                roles: u.roles,
                claims: u.claims,
            };
            users.insert(u.name, user);
        }
        Ok(UserDb { users, decoy })
    }

    /// Whether a user of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// Checks a name and password. An unknown user still costs one hash verification, and
    /// both failures are the same [`AuthError::BadCredentials`].
    pub fn verify(&self, name: &str, password: &[u8]) -> Result<&User, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::BadCredentials);
        }
        match self.users.get(name) {
            Some(u) if u.hash.verify(password) => Ok(u),
            Some(_) => Err(AuthError::BadCredentials),
            None => {
                if let Some(d) = &self.decoy {
                    let _ = d.verify(password);
                }
                Err(AuthError::BadCredentials)
            }
        }
    }
}

/// Hashes a password as an argon2id PHC string with the given parameters (use
/// [`Params::default`] for real users; tests use tiny ones to stay fast).
pub fn hash_password_with(password: &[u8], params: Params) -> Result<String, PolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyError::Hash(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| PolicyError::Hash(e.to_string()))
}

/// Hashes a password as an argon2id PHC string with the default (OWASP) parameters.
pub fn hash_password(password: &[u8]) -> Result<String, PolicyError> {
    hash_password_with(password, Params::default())
}

/// Tiny argon2 parameters for tests only (8 KiB, one pass): fast, and far too weak for real
/// passwords.
pub fn test_params() -> Params {
    Params::new(8, 1, 1, None).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_and_bcrypt_verify() {
        let h = hash_password_with(b"pw", test_params()).unwrap();
        assert!(h.starts_with("$argon2id$"));
        let a = StoredHash::parse(Secret::new(h)).unwrap();
        assert!(a.verify(b"pw"));
        assert!(!a.verify(b"pW"));
        let b = bcrypt::hash("pw", 4).unwrap();
        let b = StoredHash::parse(Secret::new(b)).unwrap();
        assert!(b.verify(b"pw"));
        assert!(!b.verify(b"px"));
    }

    #[test]
    fn refuses_unknown_hash_formats() {
        for bad in [
            "plain",
            "$argon2id$v=19$m=8,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$2b$short",
            "$argon2id$junk",
        ] {
            assert!(StoredHash::parse(Secret::new(bad)).is_err(), "{bad}");
        }
    }
}
