//! The graceful drain: readiness turns false first, the client listener stops accepting,
//! sessions get the grace period, the rest are closed with WebSocket 1001, and `run` returns.
//! The admin probes keep answering while draining.
//!
//! Sessions wait for CONNECT (no broker needed). Loopback only, every wait bounded.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Running {
    client: SocketAddr,
    admin: SocketAddr,
    stop: CancellationToken,
    run: JoinHandle<()>,
}

async fn start(grace: Duration) -> Running {
    let mut config = Config::for_tests("127.0.0.1:9", "u", "p");
    config.connect_timeout = Duration::from_secs(60);
    config.shutdown_grace = grace;
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    Running {
        client: gw.client_addr(),
        admin: gw.admin_addr(),
        stop: gw.shutdown_token(),
        run: tokio::spawn(async move { gw.run().await.unwrap() }),
    }
}

/// `GET path` on the admin listener: status and body.
async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    common::http_exchange(addr, &req).await
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(addr: SocketAddr) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws
}

#[tokio::test]
async fn drain_flips_readiness_refuses_new_clients_and_closes_sessions_with_1001() {
    let gw = start(Duration::from_millis(800)).await;
    assert_eq!(
        admin_get(gw.admin, "/readyz").await,
        (200, "ready\n".into())
    );
    let mut ws = ws_connect(gw.client).await;

    let began = Instant::now();
    gw.stop.cancel();
    assert_eq!(
        admin_get(gw.admin, "/readyz").await,
        (503, "draining\n".into())
    );
    assert_eq!(admin_get(gw.admin, "/healthz").await, (200, "ok\n".into()));
    let refused = async {
        while TcpStream::connect(gw.client).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, refused)
        .await
        .expect("listener still accepting");

    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, Some(WsCode::Away));
    assert!(
        began.elapsed() >= Duration::from_millis(800),
        "closed before the grace"
    );
    tokio::time::timeout(WAIT, gw.run).await.unwrap().unwrap();
}

#[tokio::test]
async fn drain_ends_early_when_sessions_finish_within_the_grace() {
    let gw = start(Duration::from_secs(30)).await;
    let ws = ws_connect(gw.client).await;
    gw.stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(ws);
    let began = Instant::now();
    tokio::time::timeout(WAIT, gw.run).await.unwrap().unwrap();
    assert!(began.elapsed() < Duration::from_secs(5));
}
