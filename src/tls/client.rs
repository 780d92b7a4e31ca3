//! TLS to the broker: verification against a CA bundle or the system roots, SNI from the
//! configured name (else the upstream host), an optional client certificate, and an explicit
//! `insecure` mode that accepts any certificate.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{pem, provider, TlsError, PROTOCOL_VERSIONS};
use crate::config::UpstreamTlsConfig;

/// Time allowed for the TLS handshake with the broker (the caller's connect timeout, if
/// shorter, still applies).
pub const UPSTREAM_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings for connections to the broker; build once, share behind an `Arc`.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Loads the CA bundle (or the system roots) and the optional client certificate.
    /// With `insecure`, logs a warning: the broker's certificate will not be checked.
    pub fn new(settings: &UpstreamTlsConfig) -> Result<Self, TlsError> {
        let server_name = settings
            .server_name
            .as_deref()
            .map(parse_server_name)
            .transpose()?;
        if settings.insecure {
            tracing::warn!(
                "broker TLS certificate verification is OFF (insecure); use only for tests"
            );
        }
        let config = build_client_config(settings)?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            insecure: settings.insecure,
        })
    }

    /// Whether certificate verification is switched off; the relay should log it per
    /// connection.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Runs the TLS handshake on a connected socket. `host` is the upstream host (no port),
    /// used for SNI and verification unless a server name was configured.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> Result<TlsStream<TcpStream>, TlsError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => parse_server_name(host)?,
        };
        let shown = name.to_str().into_owned();
        let handshake = self.connector.connect(name, tcp);
        let cause = match tokio::time::timeout(UPSTREAM_TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"),
        };
        Err(TlsError::from_broker_handshake(cause, &shown))
    }
}

/// The host part of an upstream address (`host:port`, `[v6]:port`, or a bare host), as
/// [`UpstreamTls::connect`] expects it.
pub fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => addr,
    }
}

/// Accepts a DNS name or an IP literal (IPv6 with or without brackets).
fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

fn build_client_config(settings: &UpstreamTlsConfig) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    } else {
        let roots = match &settings.ca {
            Some(path) => pem::load_roots(path)?,
            None => pem::load_system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    match &settings.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = pem::load_certs(cert, "client certificate")?;
            let key_der = pem::load_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    other => TlsError::Config(other),
                })
        }
    }
}

/// The `insecure` verifier: any certificate chain and name is accepted, but handshake
/// signatures are still checked so the connection is at least bound to the presented key.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_ports_and_brackets() {
        let cases = [
            ("rabbit.internal:61614", "rabbit.internal"),
            ("127.0.0.1:61614", "127.0.0.1"),
            ("[::1]:61614", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("localhost", "localhost"),
        ];
        for (addr, host) in cases {
            assert_eq!(host_of(addr), host, "{addr}");
        }
    }

    #[test]
    fn server_names_accept_dns_and_ip_literals() {
        assert!(parse_server_name("localhost").is_ok());
        assert!(parse_server_name("127.0.0.1").is_ok());
        assert!(parse_server_name("[::1]").is_ok());
        assert!(matches!(
            parse_server_name("not a name"),
            Err(TlsError::ServerName(_))
        ));
    }
}
