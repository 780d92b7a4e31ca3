//! The `wss://` side: a rustls server configuration built from PEM files, swapped atomically
//! on reload so new handshakes use the current certificate while open connections keep theirs.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use x509_parser::extensions::GeneralName;

use super::{pem, provider, reload, TlsError, PROTOCOL_VERSIONS};
use crate::config::{ClientAuthMode, ListenerTlsConfig};

/// Time allowed for a client's whole TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a client's first byte in [`is_tls_client_hello`].
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to plaintext HTTP on a TLS port (see [`reject_plaintext`]).
pub const PLAINTEXT_ON_TLS_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 34\r\nConnection: close\r\n\r\n\
this port speaks TLS (use wss://)\n";

/// The TLS record type of a handshake message: the first byte of every ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// TLS for the client listener. Cheap to share behind an `Arc`; see [`ServerTls::acceptor`],
/// [`ServerTls::reload`] and [`ServerTls::spawn_watcher`].
pub struct ServerTls {
    pub(super) settings: ListenerTlsConfig,
    current: ArcSwap<Loaded>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    pub(super) watch_interval: Duration,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("settings", &self.settings)
            .field("reloads", &self.reloads())
            .field("not_after", &self.current.load().not_after)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the certificate chain, key and (for mutual TLS) the client CA bundle.
    pub fn new(settings: &ListenerTlsConfig) -> Result<Self, TlsError> {
        let config = build_server_config(settings)?;
        Ok(Self {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(config),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            watch_interval: reload::DEFAULT_WATCH_INTERVAL,
        })
    }

    /// Sets how often [`ServerTls::spawn_watcher`] polls the files (default 2 s).
    pub fn with_watch_interval(mut self, every: Duration) -> Self {
        self.watch_interval = every.max(Duration::from_millis(10));
        self
    }

    /// An acceptor using the current certificate; take a fresh one per connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }

    /// The current rustls configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.load().config)
    }

    /// How many successful reloads happened since start-up (for a metric).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// How many reloads were refused since start-up (for a metric and an alert).
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// When the current certificate expires, in seconds since the Unix epoch (for a metric).
    pub fn not_after_unix(&self) -> Option<i64> {
        self.current.load().not_after
    }

    /// Runs a client's TLS handshake with the current certificate, under
    /// [`TLS_HANDSHAKE_TIMEOUT`]. The error's [`TlsError::label`] is the metric label.
    pub async fn accept<IO>(&self, io: IO) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = self.acceptor().accept(io);
        let cause = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
        };
        let label = super::classify_handshake_error(&cause);
        Err(TlsError::ClientHandshake { label, cause })
    }

    /// Builds a new configuration from the files and, if it is valid, makes it current.
    pub(super) fn replace_config(&self) -> Result<(), TlsError> {
        match build_server_config(&self.settings) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The identity of the verified client certificate, as the `client-cert` policy backend
    /// and its `allowed` list see it: `CN=<subject CN>`, else its first SAN as `DNS:<name>`,
    /// `email:<address>` or `URI:<uri>`. `None` without a client certificate.
    pub fn peer_identity(conn: &ServerConnection) -> Option<String> {
        Self::peer_names(conn)?.identity()
    }

    /// All the names of the verified client certificate, for policies that match SANs.
    pub fn peer_names(conn: &ServerConnection) -> Option<ClientCertNames> {
        let end_entity = conn.peer_certificates()?.first()?;
        ClientCertNames::from_der(end_entity.as_ref())
    }
}

/// The names a client certificate carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertNames {
    /// The subject's first common name (CN), if any.
    pub common_name: Option<String>,
    /// The DNS, e-mail (RFC 822) and URI subject alternative names, in certificate order,
    /// each prefixed with its kind (`DNS:`, `email:`, `URI:`), so no SAN can read as a CN.
    pub sans: Vec<String>,
}

impl ClientCertNames {
    /// Parses a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(san_text)
                .collect(),
            _ => Vec::new(),
        };
        Some(Self { common_name, sans })
    }

    /// `CN=<cn>` if the subject has a CN, else the first SAN (already prefixed with its
    /// kind). The prefixes keep the two apart: a SAN `sensor-1` is `DNS:sensor-1`, never the
    /// `CN=sensor-1` an `allowed` list names.
    pub fn identity(&self) -> Option<String> {
        match &self.common_name {
            Some(cn) => Some(format!("CN={cn}")),
            None => self.sans.first().cloned(),
        }
    }
}

fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(s) => Some(format!("DNS:{s}")),
        GeneralName::RFC822Name(s) => Some(format!("email:{s}")),
        GeneralName::URI(s) => Some(format!("URI:{s}")),
        _ => None,
    }
}

/// Builds the listener's rustls configuration from the files named in `settings`.
/// A loaded configuration and the expiry of its certificate.
struct Loaded {
    config: Arc<ServerConfig>,
    not_after: Option<i64>,
}

fn build_server_config(settings: &ListenerTlsConfig) -> Result<Loaded, TlsError> {
    let provider = provider();
    let chain = pem::load_certs(&settings.cert, "certificate")?;
    let not_after = chain
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp());
    let key = pem::load_key(&settings.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = Arc::new(pem::load_roots(path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match settings.client_auth {
                ClientAuthMode::Required => verifier,
                ClientAuthMode::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Invalid {
                what: "client CA bundle",
                path: path.clone(),
                reason: e.to_string(),
            })?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| key_error(settings, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
    })
}

fn key_error(settings: &ListenerTlsConfig, err: rustls::Error) -> TlsError {
    match err {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
        },
        other => TlsError::Invalid {
            what: "certificate or private key",
            path: settings.key.clone(),
            reason: other.to_string(),
        },
    }
}

/// Whether the client's first byte opens a TLS handshake record (`0x16`), without consuming
/// it. `false` means plaintext (e.g. `G` of `GET`): answer with [`reject_plaintext`].
/// Fails on EOF before any byte, or after [`CLIENT_HELLO_TIMEOUT`] without one.
pub async fn is_tls_client_hello(tcp: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(CLIENT_HELLO_TIMEOUT, tcp.peek(&mut first))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no ClientHello in time"))??;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(first[0] == TLS_HANDSHAKE_RECORD)
}

/// Answers plaintext HTTP on a TLS port with a 400 saying to use `wss://`, then closes.
/// The request is drained for a moment first, so closing does not reset the connection
/// before the client has read the answer.
pub async fn reject_plaintext(mut tcp: TcpStream) -> io::Result<()> {
    let answer = async {
        tcp.write_all(PLAINTEXT_ON_TLS_RESPONSE).await?;
        tcp.shutdown().await?;
        drain(&mut tcp).await
    };
    match tokio::time::timeout(PLAINTEXT_LINGER, answer).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// How long [`reject_plaintext`] lingers for the client to read its answer.
const PLAINTEXT_LINGER: Duration = Duration::from_secs(2);

/// Reads and discards up to 64 KiB until EOF.
async fn drain(tcp: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 64 * 1024 {
        match tcp.read(&mut buf).await? {
            0 => break,
            n => total += n,
        }
    }
    Ok(())
}
