//! The gateway's client listeners: SockJS mounted under its prefix (or not, when disabled),
//! unknown paths, and `wss://` on the TLS listener next to the plain one (plaintext on the TLS
//! port gets a 400). Certificates are generated at test time; loopback only, waits bounded.

#[path = "tls_support/mod.rs"]
mod tls_support;

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stompgate::config::Config;
use stompgate::server::Gateway;
use tls_support::{client_config, handshake, listener_config, write_pair, Ca, TempDir};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(5);

async fn start(tune: impl FnOnce(&mut Config)) -> Gateway {
    let mut config = Config::for_tests("127.0.0.1:9", "u", "p");
    config.connect_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_millis(100);
    tune(&mut config);
    Gateway::bind(Arc::new(config)).await.unwrap()
}

/// `GET path` with `Connection: close`: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    common::http_exchange(addr, &req).await
}

#[tokio::test]
async fn sockjs_is_mounted_under_its_prefix_unless_disabled() {
    let gw = start(|_| {}).await;
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    let (status, body) = get(addr, "/sockjs/info").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"websocket\""), "{body}");
    assert_eq!(get(addr, "/sockjsx/info").await.0, 404);
    assert_eq!(get(addr, "/elsewhere").await.0, 404);
    stop.cancel();

    let gw = start(|c| c.sockjs.enabled = false).await;
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    assert_eq!(get(addr, "/sockjs/info").await.0, 404);
    stop.cancel();
}

#[tokio::test]
async fn wss_is_served_on_the_tls_listener_next_to_the_plain_one() {
    let dir = TempDir::new();
    let ca = Ca::new("test CA");
    let (cert, key) = write_pair(dir.path(), &ca.server("localhost"));
    let gw = start(|c| {
        c.tls = Some(listener_config(cert, key, None));
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (plain, stop) = (gw.client_addr(), gw.shutdown_token());
    let tls = gw.tls_addr().expect("a TLS listener");
    tokio::spawn(gw.run());

    let stream = handshake(tls, client_config(&ca.pem, None)).await.unwrap();
    let req = "wss://localhost/ws".into_client_request().unwrap();
    let upgrade = tokio_tungstenite::client_async(req, stream);
    let (_ws, resp) = tokio::time::timeout(WAIT, upgrade).await.unwrap().unwrap();
    assert_eq!(resp.status(), 101);

    let (status, body) = get(tls, "/ws").await;
    assert_eq!(status, 400);
    assert!(body.contains("wss://"), "{body}");
    let (_ws, resp) = tokio_tungstenite::connect_async(format!("ws://{plain}/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    stop.cancel();
}
