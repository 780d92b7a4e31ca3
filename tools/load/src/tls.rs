//! The TLS client side (`wss://`, `sockjs+wss://`, `sockjs+xhrs://`): a rustls (ring) client
//! configuration trusting the CA bundle given with `--ca`, SNI from the URL's host or
//! `--server-name`, ALPN `http/1.1`, and the [`Stream`] a WebSocket or an HTTP connection runs
//! over (plain TCP or TLS).
//!
//! Session resumption is off unless asked for, so every handshake the `handshake` scenario
//! counts is a full one (the costly case a server sees after a restart or a reconnect storm).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The largest CA file read.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Which TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsVersion {
    /// TLS 1.3 and 1.2 (the server picks; 1.3 with rustls).
    #[default]
    Any,
    /// TLS 1.2 only.
    #[value(name = "1.2")]
    V12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    V13,
}

impl TlsVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static ANY: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static V12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
        static V13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            TlsVersion::Any => ANY,
            TlsVersion::V12 => V12,
            TlsVersion::V13 => V13,
        }
    }
}

/// What the TLS client is built from (the command line's `--ca`, `--server-name`, ...).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM bundle of the CA(s) to trust.
    pub ca: Option<PathBuf>,
    /// SNI and verified name (default: the URL's host).
    pub server_name: Option<String>,
    /// Offered versions.
    pub version: TlsVersion,
    /// Allow session resumption (off: every handshake is a full one).
    pub resume: bool,
}

/// Why the TLS client could not be set up or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `wss://` without `--ca`.
    #[error("a wss:// or sockjs+xhrs:// target needs --ca FILE (the CA that signed the gateway's certificate)")]
    NoCa,
    /// The CA file could not be read.
    #[error("CA file {0}: {1}")]
    Read(PathBuf, io::Error),
    /// The CA file holds no usable certificate.
    #[error("CA file {0}: {1}")]
    BadCa(PathBuf, String),
    /// Not a DNS name or IP address.
    #[error("bad TLS server name `{0}`")]
    BadName(String),
    /// The configuration was refused by rustls.
    #[error("TLS config: {0}")]
    Config(#[from] rustls::Error),
}

/// A shareable TLS client: the connector and the name to ask for.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Builds the client; `url_host` is the target URL's host, used when no server name is set.
    pub fn new(settings: &TlsSettings, url_host: &str) -> Result<Self, TlsError> {
        let ca = settings.ca.as_deref().ok_or(TlsError::NoCa)?;
        let roots = load_roots(ca)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(settings.version.versions())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !settings.resume {
            config.resumption = Resumption::disabled();
        }
        let name = server_name(settings.server_name.as_deref().unwrap_or(url_host))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// Runs the TLS handshake on a connected socket.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// Parses a DNS name or IP address (brackets around IPv6 are dropped).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadName(host.to_owned()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut pem = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE_BYTES).read_to_end(&mut pem))
        .map_err(|e| TlsError::Read(path.to_owned(), e))?;
    let bad = |why: String| TlsError::BadCa(path.to_owned(), why);
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("bad PEM: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no usable CERTIFICATE block".into()));
    }
    Ok(roots)
}

/// The byte stream a WebSocket runs over: plain TCP or TLS.
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (boxed: a TLS connection is much larger than a socket).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("bad name!"),
            Err(TlsError::BadName(_))
        ));
    }

    #[test]
    fn needs_a_readable_ca() {
        let none = TlsSettings::default();
        assert!(matches!(
            TlsClient::new(&none, "localhost"),
            Err(TlsError::NoCa)
        ));
        let missing = TlsSettings {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            TlsClient::new(&missing, "localhost"),
            Err(TlsError::Read(..))
        ));
        let dir = std::env::temp_dir().join(format!("load-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk_ca = TlsSettings {
            ca: Some(junk),
            ..TlsSettings::default()
        };
        let got = TlsClient::new(&junk_ca, "localhost");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(got, Err(TlsError::BadCa(..))));
    }

    #[test]
    fn builds_with_a_generated_ca() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("load-tls-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        let settings = TlsSettings {
            ca: Some(ca),
            server_name: Some("localhost".into()),
            version: TlsVersion::V13,
            resume: false,
        };
        let got = TlsClient::new(&settings, "127.0.0.1");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            format!("{:?}", got.unwrap().name),
            format!("{:?}", server_name("localhost").unwrap())
        );
    }
}
