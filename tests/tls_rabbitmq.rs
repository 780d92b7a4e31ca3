//! `UpstreamTls` against RabbitMQ's STOMP TLS listener (127.0.0.1:61614, certificates made by
//! scripts/setup-rabbitmq-tls.sh): a verified STOMP CONNECT/CONNECTED over TLS, refusals on a
//! wrong CA and a name mismatch, and the script's client certificate loading.

mod tls_support;

use std::path::PathBuf;

use stompgate::config::UpstreamTlsConfig;
use stompgate::tls::{TlsError, UpstreamTls};
use tls_support::{Ca, TempDir, STEP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The broker's STOMP TLS address.
fn rabbitmq_tls() -> String {
    std::env::var("STOMPGATE_TEST_RABBITMQ_TLS").unwrap_or_else(|_| "127.0.0.1:61614".into())
}

/// Where scripts/setup-rabbitmq-tls.sh put the certificates.
fn cert_dir() -> PathBuf {
    std::env::var_os("STOMPGATE_BROKER_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/rabbitmq/stompgate-tls"))
}

fn trusting_test_ca() -> UpstreamTlsConfig {
    UpstreamTlsConfig {
        ca: Some(cert_dir().join("ca.crt")),
        ..UpstreamTlsConfig::default()
    }
}

async fn connect(
    settings: &UpstreamTlsConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let upstream = UpstreamTls::new(settings).unwrap();
    let tcp = TcpStream::connect(rabbitmq_tls())
        .await
        .expect("RabbitMQ STOMP TLS listener (run scripts/setup-rabbitmq-tls.sh)");
    upstream.connect(tcp, "localhost").await
}

/// Sends a STOMP 1.2 CONNECT as the test user and returns the broker's first frame.
async fn stomp_connect(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let frame = "CONNECT\naccept-version:1.2\nhost:/\nlogin:stompgate\npasscode:stompgate-secret\nheart-beat:0,0\n\n\0";
    stream.write_all(frame.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.contains(&0u8) {
        let n = tokio::time::timeout(STEP, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "broker closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn stomp_connect_over_verified_tls() {
    let mut stream = connect(&trusting_test_ca()).await.unwrap();
    let version = stream.get_ref().1.protocol_version();
    assert!(version.is_some());
    let reply = stomp_connect(&mut stream).await;
    assert!(reply.starts_with("CONNECTED\n"), "{reply}");
    assert!(reply.contains("version:1.2"), "{reply}");
}

/// The broker runs with `verify_none`, so it does not ask for the certificate: this checks the
/// script's gateway pair loads and does not get in the way (presentation itself is covered by
/// `tls_upstream::client_certificate_is_presented_to_the_broker`).
#[tokio::test]
async fn configured_client_certificate_loads_and_connects() {
    let dir = cert_dir();
    let settings = UpstreamTlsConfig {
        client_cert: Some((dir.join("gateway.crt"), dir.join("gateway.key"))),
        ..trusting_test_ca()
    };
    let mut stream = connect(&settings).await.unwrap();
    assert!(stomp_connect(&mut stream).await.starts_with("CONNECTED\n"));
}

#[tokio::test]
async fn wrong_ca_is_refused_as_untrusted() {
    let dir = TempDir::new();
    let other = Ca::new("not RabbitMQ's CA");
    let settings = UpstreamTlsConfig {
        ca: Some(tls_support::write(dir.path(), "other-ca.crt", &other.pem)),
        ..UpstreamTlsConfig::default()
    };
    let err = connect(&settings).await.unwrap_err();
    assert!(matches!(err, TlsError::BrokerUntrusted { .. }), "{err:?}");
    assert_eq!(err.to_string(), "broker certificate not trusted");
}

#[tokio::test]
async fn name_mismatch_is_refused() {
    let settings = UpstreamTlsConfig {
        server_name: Some("rabbitmq.prod.example".into()),
        ..trusting_test_ca()
    };
    let err = connect(&settings).await.unwrap_err();
    assert!(
        matches!(err, TlsError::BrokerNameMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.label(), "name_mismatch");
}
