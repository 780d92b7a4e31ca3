//! The three ways policy says no: [`AuthError`] (a CONNECT is refused), [`Denied`] (a frame is
//! refused by an ACL) and [`PolicyError`] (the policy files themselves are wrong, or an
//! identity cannot be mapped to a broker identity).
//!
//! Every `Display` here may end up in a STOMP `ERROR` frame or a log line, so none of them ever
//! carries a secret: an [`AuthError`] names only the *kind* of failure, never which part of a
//! credential was wrong.

use std::fmt;
use std::path::PathBuf;

use crate::stomp::Command;

/// Why a CONNECT was not authenticated. The `Display` is the `message` header of the `ERROR`
/// frame; [`AuthError::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    /// No backend found credentials it understands.
    #[error("authentication failed: no credentials")]
    MissingCredentials,
    /// Credentials were given more than once (a repeated `login`/`passcode`, `Authorization`,
    /// cookie or query parameter): refused rather than guessed at.
    #[error("authentication failed: ambiguous credentials")]
    AmbiguousCredentials,
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("authentication failed: bad credentials")]
    BadCredentials,
    /// The token's `exp` is in the past (beyond the leeway).
    #[error("authentication failed: token expired")]
    TokenExpired,
    /// The token's `nbf` is in the future (beyond the leeway).
    #[error("authentication failed: token not yet valid")]
    TokenNotYetValid,
    /// The token is malformed, unsigned (`alg: none`), badly signed, uses an algorithm no key
    /// is pinned to, or lacks a required claim.
    #[error("authentication failed: invalid token")]
    TokenInvalid,
    /// The token names a key (`kid`) the gateway does not have.
    #[error("authentication failed: token signed by an unknown key")]
    UnknownKey,
    /// The token's `aud` does not include the configured audience.
    #[error("authentication failed: token has the wrong audience")]
    WrongAudience,
    /// The token's `iss` is not the configured issuer.
    #[error("authentication failed: token has the wrong issuer")]
    WrongIssuer,
    /// The client proved who it is but that identity is not allowed in.
    #[error("authentication failed: forbidden")]
    Forbidden,
    /// Too many failed logins from this address; try again later.
    #[error("authentication failed: too many failed attempts, try again later")]
    RateLimited,
    /// Too many password checks are running or waiting; try again later.
    #[error("authentication failed: server busy, try again later")]
    Busy,
    /// Pass-through: the broker login is on the deny list (`guest` by default).
    #[error("authentication failed: this broker login is not allowed")]
    LoginDenied,
}

impl AuthError {
    /// A short, stable label for metrics (`stompgate_auth_failures_total{reason=...}`).
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::AmbiguousCredentials => "ambiguous_credentials",
            AuthError::BadCredentials => "bad_credentials",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
            AuthError::TokenInvalid => "token_invalid",
            AuthError::UnknownKey => "unknown_key",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::Forbidden => "forbidden",
            AuthError::RateLimited => "rate_limited",
            AuthError::Busy => "busy",
            AuthError::LoginDenied => "login_denied",
        }
    }

    /// How much this error says about what the client tried; when every backend refuses, the
    /// most specific refusal is the one reported (an expired token beats "unknown user" from a
    /// static backend listed before the JWT one).
    pub(crate) fn specificity(self) -> u8 {
        match self {
            AuthError::MissingCredentials => 0,
            AuthError::BadCredentials => 1,
            AuthError::TokenInvalid | AuthError::UnknownKey => 2,
            AuthError::TokenExpired
            | AuthError::TokenNotYetValid
            | AuthError::WrongAudience
            | AuthError::WrongIssuer => 3,
            AuthError::AmbiguousCredentials
            | AuthError::Forbidden
            | AuthError::RateLimited
            | AuthError::Busy
            | AuthError::LoginDenied => 4,
        }
    }
}

/// A frame refused by the destination ACL. Its `Display` is the `ERROR` frame's `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The refused command.
    pub command: Command,
    /// The destination as the client sent it (shortened), if there was exactly one.
    pub destination: Option<String>,
    /// The guarded header at fault (shortened), for the header kinds.
    pub header: Option<String>,
    /// Why.
    pub kind: DeniedKind,
}

/// The kinds of ACL refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    /// No rule allowed it, or a rule denied it.
    NotAllowed,
    /// The frame had no `destination` header.
    MissingDestination,
    /// The frame had more than one `destination` header (docs/ARCHITECTURE.md invariant 3).
    AmbiguousDestination,
    /// The broker dialect has no such destination (unknown prefix, empty name).
    UnknownDestination,
    /// A header that reaches another broker resource, not allowed by the deciding rule.
    HeaderNotAllowed,
    /// A guarded header repeated, or in another letter case than the broker's.
    AmbiguousHeader,
}

impl Denied {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            DeniedKind::NotAllowed => "acl_denied",
            DeniedKind::MissingDestination => "missing_destination",
            DeniedKind::AmbiguousDestination => "ambiguous_destination",
            DeniedKind::UnknownDestination => "unknown_destination",
            DeniedKind::HeaderNotAllowed => "header_denied",
            DeniedKind::AmbiguousHeader => "ambiguous_header",
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.destination) {
            (DeniedKind::NotAllowed, Some(d)) => {
                write!(f, "access refused: {} to {d} is not allowed", self.command)
            }
            (DeniedKind::NotAllowed, None) => {
                write!(f, "access refused: {} is not allowed", self.command)
            }
            (DeniedKind::MissingDestination, _) => {
                write!(f, "access refused: {} without a destination", self.command)
            }
            (DeniedKind::AmbiguousDestination, _) => write!(
                f,
                "access refused: {} with more than one destination header",
                self.command
            ),
            (DeniedKind::UnknownDestination, d) => write!(
                f,
                "access refused: {} to {}: not a destination this broker has",
                self.command,
                d.as_deref().unwrap_or("")
            ),
            (DeniedKind::HeaderNotAllowed, _) => write!(
                f,
                "access refused: {} with header `{}` is not allowed",
                self.command,
                self.header.as_deref().unwrap_or("")
            ),
            (DeniedKind::AmbiguousHeader, _) => write!(
                f,
                "access refused: {} with a repeated or odd-case `{}` header",
                self.command,
                self.header.as_deref().unwrap_or("")
            ),
        }
    }
}

impl std::error::Error for Denied {}

/// A problem with the policy files (a configuration error) or with mapping an identity to a
/// broker identity. Never carries a secret value: parse errors that could echo a value are
/// redacted (see [`redact_value`]).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be parsed.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (values redacted).
        message: String,
    },
    /// A file parsed but says something invalid; `field` names the key at fault.
    #[error("{}: `{field}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key at fault.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No `[upstream]` mapping applies to this identity and no fallback was configured.
    #[error("no broker identity is configured for user `{0}`")]
    NoUpstream(String),
    /// A template placeholder could not be filled for this identity.
    #[error("cannot build the broker identity: {0}")]
    Template(String),
    /// `hash-password` failed.
    #[error("hash-password: {0}")]
    Hash(String),
}

impl PolicyError {
    pub(crate) fn invalid(
        path: &std::path::Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError::Invalid {
            path: path.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        PolicyError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A TOML parse error, with its line and a message that cannot echo a secret value.
    pub(crate) fn toml(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let message = redact_value(e.message());
        PolicyError::Parse {
            path: path.to_owned(),
            message: match line {
                Some(l) => format!("line {l}: {message}"),
                None => message,
            },
        }
    }
}

/// serde's "invalid type/value/length" messages quote the offending value, which may be a
/// passcode or a hash; replace every quoted run in them with `…`. Other messages (unknown
/// field, missing field) quote only key names and are kept whole.
pub(crate) fn redact_value(msg: &str) -> String {
    if !(msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length"))
    {
        return msg.to_owned();
    }
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quote = Some(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_quoted_values_only_in_value_errors() {
        assert_eq!(
            redact_value("invalid type: string \"hunter2\", expected a sequence"),
            "invalid type: string \"…\", expected a sequence"
        );
        assert_eq!(
            redact_value("invalid type: integer `1234`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            redact_value("unknown field `pasword`, expected `passcode`"),
            "unknown field `pasword`, expected `passcode`"
        );
    }

    #[test]
    fn denied_names_command_and_destination() {
        let d = Denied {
            command: Command::Send,
            destination: Some("/queue/x".into()),
            header: None,
            kind: DeniedKind::NotAllowed,
        };
        assert_eq!(
            d.to_string(),
            "access refused: SEND to /queue/x is not allowed"
        );
    }
}
