//! TLS errors and handshake-failure classification.
//!
//! Every error says which side caused it (the client, the broker, or the configuration), so
//! logs and metrics can tell a browser speaking plaintext from a broker with an expired
//! certificate. The `Display` of the broker variants is short enough to be the `message` header
//! of the STOMP `ERROR` frame sent to the browser.

use std::io;
use std::path::PathBuf;

use rustls::{AlertDescription, CertificateError};

/// Which party a [`TlsError`] is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// The browser (or any client) on the listener.
    Client,
    /// The broker on the upstream link.
    Broker,
    /// A configuration file or setting.
    Config,
}

/// A TLS failure: configuration, client handshake, or broker handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read TLS {what} file {path}: {cause}")]
    Read {
        /// What the file holds (`certificate`, `private key`, `CA bundle`).
        what: &'static str,
        /// The path as configured.
        path: PathBuf,
        /// The underlying I/O error.
        cause: io::Error,
    },
    /// A file was read but its contents are unusable.
    #[error("invalid TLS {what} file {path}: {reason}")]
    Invalid {
        /// What the file should hold.
        what: &'static str,
        /// The path as configured.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The private key is not the one of the certificate.
    #[error("TLS private key {key} does not match certificate {cert}")]
    KeyMismatch {
        /// Certificate chain path.
        cert: PathBuf,
        /// Private key path.
        key: PathBuf,
    },
    /// rustls refused the assembled configuration.
    #[error("TLS configuration refused: {0}")]
    Config(rustls::Error),
    /// The broker TLS server name (SNI) is not a valid DNS name or IP address.
    #[error("invalid broker TLS server name {0:?}")]
    ServerName(String),
    /// A client's handshake on the listener failed (`label` is the metric label).
    #[error("client TLS handshake failed ({label}): {cause}")]
    ClientHandshake {
        /// See [`classify_handshake_error`].
        label: &'static str,
        /// The underlying error.
        cause: io::Error,
    },
    /// The broker's certificate chain does not lead to a trusted CA.
    #[error("broker certificate not trusted")]
    BrokerUntrusted {
        /// rustls' own reason, for logs.
        detail: String,
    },
    /// The broker's certificate is outside its validity period.
    #[error("broker certificate expired or not yet valid")]
    BrokerExpired {
        /// rustls' own reason, for logs.
        detail: String,
    },
    /// The broker's certificate is not valid for the expected name.
    #[error("broker certificate name mismatch (expected {name})")]
    BrokerNameMismatch {
        /// The name the certificate was checked against.
        name: String,
    },
    /// Any other failure of the TLS handshake with the broker.
    #[error("TLS handshake with broker failed: {0}")]
    BrokerHandshake(io::Error),
}

impl TlsError {
    /// Which party caused the error.
    pub fn side(&self) -> TlsSide {
        match self {
            Self::Read { .. }
            | Self::Invalid { .. }
            | Self::KeyMismatch { .. }
            | Self::Config(_)
            | Self::ServerName(_) => TlsSide::Config,
            Self::ClientHandshake { .. } => TlsSide::Client,
            Self::BrokerUntrusted { .. }
            | Self::BrokerExpired { .. }
            | Self::BrokerNameMismatch { .. }
            | Self::BrokerHandshake(_) => TlsSide::Broker,
        }
    }

    /// A metric label for handshake errors (see [`classify_handshake_error`]); `config` for
    /// configuration errors.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClientHandshake { label, .. } => label,
            Self::BrokerUntrusted { .. } => "unknown_ca",
            Self::BrokerExpired { .. } => "expired",
            Self::BrokerNameMismatch { .. } => "name_mismatch",
            Self::BrokerHandshake(e) => classify_handshake_error(e),
            _ => "config",
        }
    }

    /// Wraps a failed broker handshake into the most precise variant.
    pub(crate) fn from_broker_handshake(cause: io::Error, name: &str) -> Self {
        let detail = cause.to_string();
        match classify_handshake_error(&cause) {
            "unknown_ca" => Self::BrokerUntrusted { detail },
            "expired" => Self::BrokerExpired { detail },
            "name_mismatch" => Self::BrokerNameMismatch {
                name: name.to_owned(),
            },
            _ => Self::BrokerHandshake(cause),
        }
    }
}

/// A metric label for a failed TLS handshake, from either end:
///
/// - `plaintext_on_tls_port`: the peer did not speak TLS (e.g. `GET /` on a `wss://` port);
/// - `unknown_ca`: a certificate did not chain to a trusted CA (or the peer said so);
/// - `expired`: a certificate was outside its validity period (or the peer said so);
/// - `name_mismatch`: the server certificate does not name the host we dialled;
/// - `no_client_cert`: mutual TLS is required and the client sent no certificate;
/// - `timeout`: the handshake did not finish in time;
/// - `other`: anything else (reset, EOF, protocol or cipher mismatch).
pub fn classify_handshake_error(err: &io::Error) -> &'static str {
    if err.kind() == io::ErrorKind::TimedOut {
        return "timeout";
    }
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(e) => classify_rustls_error(e),
        None => "other",
    }
}

fn classify_rustls_error(err: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match err {
        E::InvalidMessage(_) => "plaintext_on_tls_port",
        E::InvalidCertificate(c) => classify_certificate_error(c),
        E::NoCertificatesPresented => "no_client_cert",
        E::AlertReceived(AlertDescription::UnknownCA | AlertDescription::BadCertificate) => {
            "unknown_ca"
        }
        E::AlertReceived(AlertDescription::CertificateExpired) => "expired",
        E::AlertReceived(AlertDescription::CertificateRequired) => "no_client_cert",
        _ => "other",
    }
}

fn classify_certificate_error(err: &CertificateError) -> &'static str {
    use CertificateError as C;
    match err {
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "expired"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => "name_mismatch",
        _ => "unknown_ca",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn labels_follow_rustls_errors() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown_ca",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "name_mismatch",
            ),
            (
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "plaintext_on_tls_port",
            ),
            (rustls::Error::NoCertificatesPresented, "no_client_cert"),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                "unknown_ca",
            ),
            (rustls::Error::HandshakeNotComplete, "other"),
        ];
        for (err, label) in cases {
            assert_eq!(classify_handshake_error(&wrap(err)), label);
        }
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "slow");
        assert_eq!(classify_handshake_error(&timeout), "timeout");
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_handshake_error(&reset), "other");
    }

    #[test]
    fn broker_errors_have_browser_readable_messages() {
        let untrusted = TlsError::from_broker_handshake(
            wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            "broker",
        );
        assert_eq!(untrusted.to_string(), "broker certificate not trusted");
        assert_eq!(untrusted.side(), TlsSide::Broker);
        let mismatch = TlsError::from_broker_handshake(
            wrap(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            )),
            "mq.example",
        );
        assert_eq!(
            mismatch.to_string(),
            "broker certificate name mismatch (expected mq.example)"
        );
        assert_eq!(mismatch.label(), "name_mismatch");
    }
}
