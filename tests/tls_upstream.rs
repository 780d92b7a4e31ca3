//! The broker side of `stompgate::tls`: `UpstreamTls::connect` against an in-test TLS echo
//! server on 127.0.0.1 — trusted CA, wrong CA, name mismatch, expired certificate, SNI,
//! client certificate, explicit `insecure`, and configuration errors.

mod tls_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use stompgate::config::{ClientAuthMode, UpstreamTlsConfig};
use stompgate::tls::{ServerTls, TlsError, TlsSide, UpstreamTls};
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A "broker": a TLS echo server presenting `leaf`.
async fn broker(dir: &Path, leaf: &Leaf) -> (SocketAddr, tokio::sync::mpsc::Receiver<Seen>) {
    let (cert, key) = write_pair(dir, leaf);
    let tls = ServerTls::new(&listener_config(cert, key, None)).unwrap();
    let (addr, seen, _task) = echo_server(Arc::new(tls)).await;
    (addr, seen)
}

fn trusting(dir: &Path, ca: &Ca) -> UpstreamTlsConfig {
    UpstreamTlsConfig {
        ca: Some(write(dir, "broker-ca.crt", &ca.pem)),
        ..UpstreamTlsConfig::default()
    }
}

async fn connect(
    settings: &UpstreamTlsConfig,
    addr: SocketAddr,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let upstream = UpstreamTls::new(settings).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    upstream.connect(tcp, host).await
}

#[tokio::test]
async fn trusted_broker_connects_with_sni_from_the_host() {
    let dir = TempDir::new();
    let ca = Ca::new("broker CA");
    let (addr, mut seen) = broker(dir.path(), &ca.server("rabbit")).await;
    let mut stream = connect(&trusting(dir.path(), &ca), addr, "localhost")
        .await
        .unwrap();
    stream.write_all(b"CONNECT\n\n\0").await.unwrap();
    let mut back = [0u8; 10];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"CONNECT\n\n\0");
    let sni = Some("localhost".to_owned());
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Accepted {
            identity: None,
            sni
        }
    );
}

#[tokio::test]
async fn ip_hosts_verify_against_ip_sans() {
    let dir = TempDir::new();
    let ca = Ca::new("broker CA");
    let (addr, _seen) = broker(dir.path(), &ca.server("rabbit")).await;
    assert!(connect(&trusting(dir.path(), &ca), addr, "127.0.0.1")
        .await
        .is_ok());
}

#[tokio::test]
async fn configured_server_name_overrides_the_host() {
    let dir = TempDir::new();
    let ca = Ca::new("broker CA");
    let leaf = ca.server_for("mq", &["mq.internal.example"], None);
    let (addr, mut seen) = broker(dir.path(), &leaf).await;
    let settings = UpstreamTlsConfig {
        server_name: Some("mq.internal.example".into()),
        ..trusting(dir.path(), &ca)
    };
    assert!(connect(&settings, addr, "127.0.0.1").await.is_ok());
    let sni = Some("mq.internal.example".to_owned());
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Accepted {
            identity: None,
            sni
        }
    );
}

#[tokio::test]
async fn wrong_ca_is_refused_as_untrusted() {
    let dir = TempDir::new();
    let (ca, other_ca) = (Ca::new("broker CA"), Ca::new("other CA"));
    let (addr, _seen) = broker(dir.path(), &ca.server("rabbit")).await;
    let err = connect(&trusting(dir.path(), &other_ca), addr, "localhost")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::BrokerUntrusted { .. }), "{err:?}");
    assert_eq!(err.to_string(), "broker certificate not trusted");
    assert_eq!(err.label(), "unknown_ca");
    assert_eq!(err.side(), TlsSide::Broker);
}

#[tokio::test]
async fn name_mismatch_is_refused() {
    let dir = TempDir::new();
    let ca = Ca::new("broker CA");
    let (addr, _seen) = broker(dir.path(), &ca.server("rabbit")).await;
    let settings = UpstreamTlsConfig {
        server_name: Some("rabbit.prod.example".into()),
        ..trusting(dir.path(), &ca)
    };
    let err = connect(&settings, addr, "localhost").await.unwrap_err();
    assert!(
        matches!(err, TlsError::BrokerNameMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "broker certificate name mismatch (expected rabbit.prod.example)"
    );
    assert_eq!(err.label(), "name_mismatch");
}

#[tokio::test]
async fn expired_broker_certificate_is_refused() {
    let dir = TempDir::new();
    let ca = Ca::new("broker CA");
    let leaf = ca.server_for("old", &["localhost"], Some((2020, 1, 1)));
    let (addr, _seen) = broker(dir.path(), &leaf).await;
    let (cert, key) = write_pair(dir.path(), &leaf);
    let expired = ServerTls::new(&listener_config(cert, key, None)).unwrap();
    assert_eq!(expired.not_after_unix(), Some(1_577_836_800)); // 2020-01-01T00:00:00Z
    let err = connect(&trusting(dir.path(), &ca), addr, "localhost")
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::BrokerExpired { .. }), "{err:?}");
    assert_eq!(err.label(), "expired");
}

#[tokio::test]
async fn insecure_accepts_any_certificate_only_when_asked() {
    let dir = TempDir::new();
    let (ca, other_ca) = (Ca::new("broker CA"), Ca::new("other CA"));
    let (addr, _seen) = broker(dir.path(), &ca.server("rabbit")).await;
    let settings = UpstreamTlsConfig {
        server_name: Some("not-the-broker.example".into()),
        insecure: true,
        ..trusting(dir.path(), &other_ca)
    };
    assert!(UpstreamTls::new(&settings).unwrap().is_insecure());
    assert!(connect(&settings, addr, "localhost").await.is_ok());
    let strict = UpstreamTlsConfig {
        insecure: false,
        ..settings
    };
    assert!(!UpstreamTls::new(&strict).unwrap().is_insecure());
    assert!(connect(&strict, addr, "localhost").await.is_err());
}

#[tokio::test]
async fn client_certificate_is_presented_to_the_broker() {
    let dir = TempDir::new();
    let (ca, client_ca) = (Ca::new("broker CA"), Ca::new("client CA"));
    let (cert, key) = write_pair(dir.path(), &ca.server("rabbit"));
    let client_ca_path = write(dir.path(), "client-ca.crt", &client_ca.pem);
    let mtls = Some((client_ca_path, ClientAuthMode::Required));
    let tls = ServerTls::new(&listener_config(cert, key, mtls)).unwrap();
    let (addr, mut seen, _task) = echo_server(Arc::new(tls)).await;
    let gateway = client_ca.client(Some("stompgate"), &[]);
    let settings = UpstreamTlsConfig {
        client_cert: Some((
            write(dir.path(), "gw.crt", &gateway.cert_pem),
            write(dir.path(), "gw.key", &gateway.key_pem),
        )),
        ..trusting(dir.path(), &ca)
    };
    let mut stream = connect(&settings, addr, "localhost").await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let identity = Some("CN=stompgate".to_owned());
    let sni = Some("localhost".to_owned());
    assert_eq!(next_seen(&mut seen).await, Seen::Accepted { identity, sni });
}

#[test]
fn configuration_errors_name_the_file() {
    let dir = TempDir::new();
    let missing = UpstreamTlsConfig {
        ca: Some(dir.path().join("nope.crt")),
        ..UpstreamTlsConfig::default()
    };
    let err = UpstreamTls::new(&missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert_eq!(err.side(), TlsSide::Config);
    assert!(err.to_string().contains("nope.crt"), "{err}");

    let empty = UpstreamTlsConfig {
        ca: Some(write(dir.path(), "empty.crt", "no PEM here\n")),
        ..UpstreamTlsConfig::default()
    };
    let err = UpstreamTls::new(&empty).unwrap_err();
    assert!(matches!(err, TlsError::Invalid { .. }), "{err:?}");

    let ca = Ca::new("CA");
    let (a, b) = (ca.client(Some("a"), &[]), ca.client(Some("b"), &[]));
    let mismatched = UpstreamTlsConfig {
        client_cert: Some((
            write(dir.path(), "a.crt", &a.cert_pem),
            write(dir.path(), "b.key", &b.key_pem),
        )),
        ..trusting(dir.path(), &ca)
    };
    let err = UpstreamTls::new(&mismatched).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");

    let bad_name = UpstreamTlsConfig {
        server_name: Some("not a name".into()),
        ..trusting(dir.path(), &ca)
    };
    assert!(matches!(
        UpstreamTls::new(&bad_name),
        Err(TlsError::ServerName(_))
    ));
}

#[test]
fn system_roots_load_when_no_ca_is_given() {
    // Debian's trust store (/etc/ssl/certs) is installed on the build machine.
    if !Path::new("/etc/ssl/certs").exists() {
        return;
    }
    assert!(UpstreamTls::new(&UpstreamTlsConfig::default()).is_ok());
}
