//! The `wss://` side of `stompgate::tls`: handshakes, key formats, live rotation (reload,
//! watcher, Kubernetes `..data` symlink swap), refused broken pairs, mutual TLS, plaintext on
//! the TLS port. Certificates are generated at test time; all traffic is on 127.0.0.1.

mod tls_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use stompgate::config::ClientAuthMode;
use stompgate::tls::{is_tls_client_hello, reject_plaintext, ServerTls, TlsError};
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn server_tls(dir: &Path, leaf: &Leaf) -> Arc<ServerTls> {
    let (cert, key) = write_pair(dir, leaf);
    Arc::new(ServerTls::new(&listener_config(cert, key, None)).unwrap())
}

/// Waits (bounded) until `tls` has reloaded `n` times.
async fn wait_for_reloads(tls: &ServerTls, n: u64) {
    let deadline = tokio::time::Instant::now() + STEP;
    while tls.reloads() < n {
        assert!(tokio::time::Instant::now() < deadline, "no reload seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn handshake_presents_the_configured_certificate_with_alpn() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let leaf = ca.server("gateway-1");
    let (addr, mut seen, _server) = echo_server(server_tls(dir.path(), &leaf)).await;

    let mut stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    let conn = stream.get_ref().1;
    assert_eq!(presented(&stream), leaf.der);
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    echo(&mut stream, b"SEND\n\n\0").await.unwrap();
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
async fn tls12_clients_are_accepted() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (addr, _seen, _server) = echo_server(server_tls(dir.path(), &ca.server("gw"))).await;
    let config = client_config_with(&ca.pem, None, &[&rustls::version::TLS12]);
    let mut stream = handshake(addr, config).await.unwrap();
    let version = stream.get_ref().1.protocol_version();
    assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_2));
    echo(&mut stream, b"x").await.unwrap();
}

/// Runs `openssl` (Debian's CLI) and fails the test on error.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

#[tokio::test]
async fn rsa_pkcs1_and_ec_sec1_keys_load() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p("rsa8.pem"),
    ]);
    let rsa8 = std::fs::read_to_string(p("rsa8.pem")).unwrap();
    let rsa_key = rcgen::KeyPair::from_pem(&rsa8).unwrap();
    let params = leaf_params(
        "rsa",
        &["localhost"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let rsa_leaf = ca.sign(&params, rsa_key);
    let ec_leaf = ca.server("ec");
    write(dir.path(), "ec8.pem", &ec_leaf.key_pem);
    for (leaf, pkcs8, header) in [
        (&rsa_leaf, "rsa8.pem", "RSA PRIVATE KEY"),
        (&ec_leaf, "ec8.pem", "EC PRIVATE KEY"),
    ] {
        openssl(&[
            "pkey",
            "-in",
            &p(pkcs8),
            "-traditional",
            "-out",
            &p("trad.pem"),
        ]);
        let trad = std::fs::read_to_string(p("trad.pem")).unwrap();
        assert!(trad.contains(header), "openssl wrote {trad}");
        let cert = write(dir.path(), "trad.crt", &leaf.cert_pem);
        let tls = ServerTls::new(&listener_config(cert, PathBuf::from(p("trad.pem")), None));
        let (addr, _seen, _server) = echo_server(Arc::new(tls.unwrap())).await;
        let stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
        assert_eq!(presented(&stream), leaf.der, "{header}");
    }
}

#[tokio::test]
async fn reload_rotates_for_new_handshakes_and_open_streams_carry_on() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (old, new) = (ca.server("old"), ca.server("new"));
    let tls = server_tls(dir.path(), &old);
    let (addr, _seen, _server) = echo_server(Arc::clone(&tls)).await;
    let mut open = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    echo(&mut open, b"before").await.unwrap();

    write_pair(dir.path(), &new);
    tls.reload().unwrap();

    let next = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(&next), new.der);
    echo(&mut open, b"after rotation").await.unwrap();
    assert_eq!(presented(&open), old.der);
    assert_eq!(tls.reloads(), 1);
}

#[tokio::test]
async fn broken_new_pairs_are_refused_and_the_old_one_stays() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (good, other) = (ca.server("good"), ca.server("other"));
    let tls = server_tls(dir.path(), &good);
    let (addr, _seen, _server) = echo_server(Arc::clone(&tls)).await;

    write(dir.path(), "tls.crt", &other.cert_pem); // key still the old one
    assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
    write(
        dir.path(),
        "tls.crt",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    );
    assert!(matches!(tls.reload(), Err(TlsError::Invalid { .. })));
    write(dir.path(), "tls.crt", &good.cert_pem);
    std::fs::remove_file(dir.path().join("tls.key")).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::Read { .. })));

    let stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(&stream), good.der);
    assert_eq!(tls.reloads(), 0);
    assert_eq!(tls.reload_failures(), 3);
}

#[tokio::test]
async fn watcher_picks_up_rewritten_files() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let new = ca.server("rewritten");
    let (cert, key) = write_pair(dir.path(), &ca.server("first"));
    let tls = ServerTls::new(&listener_config(cert, key, None)).unwrap();
    let tls = Arc::new(tls.with_watch_interval(Duration::from_millis(50)));
    let shutdown = CancellationToken::new();
    let watcher = Arc::clone(&tls).spawn_watcher(shutdown.clone());
    let (addr, _seen, _server) = echo_server(Arc::clone(&tls)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tls.reloads(), 0, "nothing changed, nothing reloaded");

    write_pair(dir.path(), &new);
    wait_for_reloads(&tls, 1).await;
    let stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(&stream), new.der);

    shutdown.cancel();
    tokio::time::timeout(STEP, watcher).await.unwrap().unwrap();
}

#[tokio::test]
async fn watcher_retries_when_the_key_lands_after_the_certificate() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let new = ca.server("new");
    let (cert, key) = write_pair(dir.path(), &ca.server("first"));
    let tls = ServerTls::new(&listener_config(cert, key, None)).unwrap();
    let tls = Arc::new(tls.with_watch_interval(Duration::from_millis(50)));
    let shutdown = CancellationToken::new();
    let _watcher = Arc::clone(&tls).spawn_watcher(shutdown.clone());
    let (addr, _seen, _server) = echo_server(Arc::clone(&tls)).await;
    tokio::time::sleep(Duration::from_millis(120)).await;

    write(dir.path(), "tls.crt", &new.cert_pem);
    let deadline = tokio::time::Instant::now() + STEP;
    while tls.reload_failures() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mismatch not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tls.reloads(), 0);
    write(dir.path(), "tls.key", &new.key_pem);
    wait_for_reloads(&tls, 1).await;
    let stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(&stream), new.der);
    shutdown.cancel();
}

/// Lays out `dir` the way a Kubernetes secret volume does: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`; returns the stable paths.
fn k8s_secret_volume(dir: &Path, version: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    write_pair(&versioned, leaf);
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap(); // the atomic swap
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    (dir.join("tls.crt"), dir.join("tls.key"))
}

#[tokio::test]
async fn watcher_follows_a_kubernetes_data_symlink_swap_during_a_live_session() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (v1, v2) = (ca.server("v1"), ca.server("v2"));
    let (cert, key) = k8s_secret_volume(dir.path(), "2024_01_01", &v1);
    let tls = ServerTls::new(&listener_config(cert, key, None)).unwrap();
    let tls = Arc::new(tls.with_watch_interval(Duration::from_millis(50)));
    let shutdown = CancellationToken::new();
    let _watcher = Arc::clone(&tls).spawn_watcher(shutdown.clone());
    let (addr, _seen, _server) = echo_server(Arc::clone(&tls)).await;
    let mut live = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;

    k8s_secret_volume(dir.path(), "2024_02_01", &v2);
    std::fs::remove_dir_all(dir.path().join("..2024_01_01")).unwrap();
    wait_for_reloads(&tls, 1).await;

    let next = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    assert_eq!(presented(&next), v2.der);
    echo(&mut live, b"MESSAGE on the old session")
        .await
        .unwrap();
    assert_eq!(presented(&live), v1.der);
    shutdown.cancel();
}

/// A server requiring (or accepting) client certificates from `client_ca`.
async fn mtls_server(
    dir: &Path,
    server_ca: &Ca,
    client_ca: &Ca,
    mode: ClientAuthMode,
) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Seen>) {
    let (cert, key) = write_pair(dir, &server_ca.server("gw"));
    let ca_path = write(dir, "client-ca.crt", &client_ca.pem);
    let tls = ServerTls::new(&listener_config(cert, key, Some((ca_path, mode)))).unwrap();
    let (addr, seen, _server) = echo_server(Arc::new(tls)).await;
    (addr, seen)
}

/// Connects with `client` and reports whether an echo went through.
async fn echo_with(addr: std::net::SocketAddr, ca: &Ca, client: Option<&Leaf>) -> bool {
    match handshake(addr, client_config(&ca.pem, client)).await {
        Ok(mut stream) => echo(&mut stream, b"ping").await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn mutual_tls_required_refuses_missing_and_foreign_certificates() {
    let dir = TempDir::new();
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("server CA"),
        Ca::new("client CA"),
        Ca::new("rogue CA"),
    );
    let (addr, mut seen) =
        mtls_server(dir.path(), &server_ca, &client_ca, ClientAuthMode::Required).await;

    assert!(!echo_with(addr, &server_ca, None).await);
    assert_eq!(next_seen(&mut seen).await, Seen::Failed("no_client_cert"));

    let rogue = rogue_ca.client(Some("mallory"), &[]);
    assert!(!echo_with(addr, &server_ca, Some(&rogue)).await);
    assert_eq!(next_seen(&mut seen).await, Seen::Failed("unknown_ca"));

    let alice = client_ca.client(Some("alice"), &["alice@example.com"]);
    assert!(echo_with(addr, &server_ca, Some(&alice)).await);
    let identity = Some("CN=alice".to_owned());
    let sni = Some("localhost".to_owned());
    assert_eq!(next_seen(&mut seen).await, Seen::Accepted { identity, sni });
}

#[tokio::test]
async fn peer_identity_falls_back_to_the_first_san() {
    let dir = TempDir::new();
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let (addr, mut seen) =
        mtls_server(dir.path(), &server_ca, &client_ca, ClientAuthMode::Required).await;
    let device = client_ca.client(None, &["device-42.clients.example", "ops@example.com"]);
    assert!(echo_with(addr, &server_ca, Some(&device)).await);
    // Prefixed with its kind: a SAN can never pass for a CN in an `allowed` list.
    let identity = Some("DNS:device-42.clients.example".to_owned());
    let sni = Some("localhost".to_owned());
    assert_eq!(next_seen(&mut seen).await, Seen::Accepted { identity, sni });

    let names = stompgate::tls::ClientCertNames::from_der(device.der.as_ref()).unwrap();
    assert_eq!(names.common_name, None);
    assert_eq!(
        names.sans,
        ["DNS:device-42.clients.example", "email:ops@example.com"]
    );
    // A certificate whose SAN spells a CN is still told apart from one with that CN.
    let spoof = client_ca.client(None, &["CN=alice"]);
    let spoof = stompgate::tls::ClientCertNames::from_der(spoof.der.as_ref()).unwrap();
    assert_ne!(spoof.identity().as_deref(), Some("CN=alice"));
}

#[tokio::test]
async fn mutual_tls_optional_accepts_anonymous_clients_but_not_foreign_certificates() {
    let dir = TempDir::new();
    let (server_ca, client_ca, rogue_ca) = (
        Ca::new("server CA"),
        Ca::new("client CA"),
        Ca::new("rogue CA"),
    );
    let (addr, mut seen) =
        mtls_server(dir.path(), &server_ca, &client_ca, ClientAuthMode::Optional).await;
    let sni = Some("localhost".to_owned());

    assert!(echo_with(addr, &server_ca, None).await);
    let anonymous = Seen::Accepted {
        identity: None,
        sni: sni.clone(),
    };
    assert_eq!(next_seen(&mut seen).await, anonymous);

    let bob = client_ca.client(Some("bob"), &[]);
    assert!(echo_with(addr, &server_ca, Some(&bob)).await);
    let identity = Some("CN=bob".to_owned());
    assert_eq!(next_seen(&mut seen).await, Seen::Accepted { identity, sni });

    let rogue = rogue_ca.client(Some("mallory"), &[]);
    assert!(!echo_with(addr, &server_ca, Some(&rogue)).await);
    assert_eq!(next_seen(&mut seen).await, Seen::Failed("unknown_ca"));
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_labelled() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (addr, mut seen, _server) = echo_server(server_tls(dir.path(), &ca.server("gw"))).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Failed("plaintext_on_tls_port")
    );
}

#[tokio::test]
async fn plaintext_is_answered_with_a_400_and_tls_still_passes_the_peek() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let tls = server_tls(dir.path(), &ca.server("gw"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            if is_tls_client_hello(&tcp).await.unwrap() {
                let mut stream = tls.accept(tcp).await.unwrap();
                let _ = stream.write_all(b"hello over TLS").await;
                let _ = stream.shutdown().await;
            } else {
                reject_plaintext(tcp).await.unwrap();
            }
        }
    });

    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(STEP, plain.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("wss://"), "{answer}");
    drop(plain); // lets the server's drain see EOF instead of lingering

    let mut stream = handshake(addr, client_config(&ca.pem, None)).await.unwrap();
    let mut hello = Vec::new();
    let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut hello))
        .await
        .unwrap();
    assert_eq!(hello, b"hello over TLS");
    tokio::time::timeout(STEP, server).await.unwrap().unwrap();
}
