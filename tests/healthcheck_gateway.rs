//! `stompgate healthcheck` against the real admin listener: healthy on `/healthz` (with or without
//! an admin token, which the probes never need), unhealthy on a draining `/readyz` and on a
//! token-protected path, and when nothing listens.
//!
//! No broker needed (sessions never CONNECT). Loopback only, every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use stompgate::config::{Config, Secret};
use stompgate::healthcheck::{self, HealthcheckArgs, HealthcheckError};
use stompgate::server::Gateway;

const WAIT: Duration = Duration::from_secs(10);

/// Runs one check on a blocking thread (it is plain `std::net`).
async fn check(url: Option<String>, admin_listen: String) -> Result<(), HealthcheckError> {
    let args = HealthcheckArgs {
        url,
        admin_listen,
        timeout: Duration::from_secs(3),
    };
    tokio::task::spawn_blocking(move || healthcheck::run(&args))
        .await
        .unwrap()
}

#[tokio::test]
async fn probes_pass_while_serving_and_readyz_fails_while_draining() {
    let mut config = Config::for_tests("127.0.0.1:9", "u", "p");
    config.connect_timeout = Duration::from_secs(60);
    config.shutdown_grace = Duration::from_millis(1500);
    config.admin_token = Some(Secret::new("admin-token"));
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (client, admin, stop) = (gw.client_addr(), gw.admin_addr(), gw.shutdown_token());
    let run = tokio::spawn(async move { gw.run().await.unwrap() });
    let url = |path: &str| Some(format!("http://{admin}{path}"));

    // The default URL: /healthz on the admin listener, as the image's HEALTHCHECK uses it.
    check(None, admin.to_string()).await.unwrap();
    check(url("/readyz"), String::new()).await.unwrap();
    // /metrics needs the token: the check reports the 401 as unhealthy.
    let err = check(url("/metrics"), String::new()).await.unwrap_err();
    assert!(
        matches!(&err, HealthcheckError::Status(s) if s.contains("401")),
        "{err}"
    );

    // A session keeps the drain going for the grace period.
    let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{client}/ws"))
        .await
        .unwrap();
    stop.cancel();
    let err = check(url("/readyz"), String::new()).await.unwrap_err();
    assert!(
        matches!(&err, HealthcheckError::Status(s) if s.contains("503")),
        "{err}"
    );
    check(url("/healthz"), String::new()).await.unwrap();

    tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
}

#[tokio::test]
async fn nothing_listening_is_unhealthy() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = check(None, format!("0.0.0.0:{port}")).await.unwrap_err();
    assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
}
