//! Shared helpers for the TLS tests: certificates generated with rcgen at test time, files in
//! a temporary directory, a TLS echo server on 127.0.0.1:0 and a tokio-rustls client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use stompgate::config::{ClientAuthMode, ListenerTlsConfig};
use stompgate::tls::ServerTls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound for any single step of a test.
pub const STEP: Duration = Duration::from_secs(5);

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A leaf certificate and its key, in PEM, plus the DER for comparisons.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, cn: &str) -> Leaf {
        self.server_for(cn, &["localhost", "127.0.0.1"], None)
    }

    /// A server certificate for the given names, optionally expiring at `not_after`.
    pub fn server_for(&self, cn: &str, names: &[&str], not_after: Option<(i32, u8, u8)>) -> Leaf {
        let mut params = leaf_params(cn, names, ExtendedKeyUsagePurpose::ServerAuth);
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(y - 1, m, d);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        self.sign(&params, KeyPair::generate().unwrap())
    }

    /// A client certificate with an optional CN and the given DNS / e-mail SANs.
    pub fn client(&self, cn: Option<&str>, sans: &[&str]) -> Leaf {
        let mut params = leaf_params("", &[], ExtendedKeyUsagePurpose::ClientAuth);
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect();
        self.sign(&params, KeyPair::generate().unwrap())
    }

    /// Signs `params` with `key` (any algorithm rcgen can load).
    pub fn sign(&self, params: &CertificateParams, key: KeyPair) -> Leaf {
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

pub fn leaf_params(cn: &str, names: &[&str], eku: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = names.iter().map(|s| san(s)).collect();
    params.extended_key_usages = vec![eku];
    params
}

fn san(name: &str) -> SanType {
    if let Ok(ip) = name.parse() {
        SanType::IpAddress(ip)
    } else if name.contains('@') {
        SanType::Rfc822Name(name.try_into().unwrap())
    } else {
        SanType::DnsName(name.try_into().unwrap())
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("stompgate-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Writes a leaf's certificate and key as `dir/tls.crt` and `dir/tls.key`.
pub fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    (
        write(dir, "tls.crt", &leaf.cert_pem),
        write(dir, "tls.key", &leaf.key_pem),
    )
}

/// Listener settings for a pair of files, with optional mutual TLS.
pub fn listener_config(
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<(PathBuf, ClientAuthMode)>,
) -> ListenerTlsConfig {
    let (client_ca, client_auth) = match client_ca {
        Some((path, mode)) => (Some(path), mode),
        None => (None, ClientAuthMode::Optional),
    };
    ListenerTlsConfig {
        cert,
        key,
        client_ca,
        client_auth,
    }
}

/// What the echo server saw of one connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Handshake done: the client's identity and the SNI it sent.
    Accepted {
        identity: Option<String>,
        sni: Option<String>,
    },
    /// Handshake failed with this metric label.
    Failed(&'static str),
}

/// A TLS echo server on 127.0.0.1:0 using `ServerTls::accept`; it reports each connection.
pub async fn echo_server(
    tls: Arc<ServerTls>,
) -> (SocketAddr, mpsc::Receiver<Seen>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = Arc::clone(&tls);
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move { serve_one(&tls, tcp, seen_tx).await });
        }
    });
    (addr, seen_rx, task)
}

async fn serve_one(tls: &ServerTls, tcp: TcpStream, seen: mpsc::Sender<Seen>) {
    let mut stream = match tls.accept(tcp).await {
        Ok(s) => s,
        Err(e) => {
            let _ = seen.send(Seen::Failed(e.label())).await;
            return;
        }
    };
    let conn = stream.get_ref().1;
    let accepted = Seen::Accepted {
        identity: ServerTls::peer_identity(conn),
        sni: conn.server_name().map(str::to_owned),
    };
    let _ = seen.send(accepted).await;
    let mut buf = [0u8; 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(STEP, stream.read(&mut buf)).await {
        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A root store holding the certificates of `ca_pem`.
pub fn roots(ca_pem: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// A client configuration trusting `ca_pem`, optionally presenting `client`.
pub fn client_config(ca_pem: &str, client: Option<&Leaf>) -> ClientConfig {
    client_config_with(ca_pem, client, rustls::DEFAULT_VERSIONS)
}

/// Like [`client_config`], offering only `versions`.
pub fn client_config_with(
    ca_pem: &str,
    client: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = vec![leaf.der.clone()];
            let key = rustls_pemfile::private_key(&mut leaf.key_pem.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects and handshakes as `localhost`.
pub async fn handshake(addr: SocketAddr, config: ClientConfig) -> std::io::Result<ClientStream> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The end-entity certificate the server presented.
pub fn presented(stream: &ClientStream) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Sends `msg` and expects it echoed back.
pub async fn echo(stream: &mut ClientStream, msg: &[u8]) -> std::io::Result<()> {
    stream.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(STEP, stream.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    assert_eq!(back, msg);
    Ok(())
}

/// The next report of the echo server.
pub async fn next_seen(rx: &mut mpsc::Receiver<Seen>) -> Seen {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .unwrap()
        .unwrap()
}
