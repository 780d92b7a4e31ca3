//! A SockJS echo server for checking stompgate's SockJS layer against the public SockJS
//! protocol test suite (`sockjs-protocol`), which expects these services:
//!
//! - `/echo`: echoes every message;
//! - `/close`: closes every session at once with `c[3000,"Go away!"]`;
//! - `/disabled_websocket_echo`: `/echo` with the WebSocket transports off;
//! - `/cookie_needed_echo`: `/echo` with `JSESSIONID` cookies.
//!
//! Run: `cargo run --example sockjs_echo -- 8081` (or `PORT=8081`), then point the suite's
//! `SOCKJS_URL` at `http://127.0.0.1:8081`. Streaming responses close after 4096 bytes, as the
//! suite asks of test servers. Binds 127.0.0.1 only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use stompgate::config::SockjsConfig;
use stompgate::transport::sockjs::{SessionSink, Sockjs, SockjsRx, SockjsTx};
use stompgate::transport::{ClientLink, ClientRx, ClientTx, HttpBody};
use tokio::net::TcpListener;

/// A SockJS configuration mounted at `path` with the suite's settings.
pub fn config(path: &str) -> SockjsConfig {
    SockjsConfig {
        enabled: true,
        path: path.to_owned(),
        heartbeat: Duration::from_secs(25),
        disconnect_delay: Duration::from_secs(5),
        response_limit: 4096,
        cookie: false,
        disabled: Vec::new(),
        // The protocol suite opens every session from one address.
        max_sessions_per_address: 10_000,
        body_timeout: Duration::from_secs(10),
        inbound_bytes: 1024 * 1024,
        originless_transports: false,
    }
}

/// A sink that echoes every message of every session back to its client.
pub fn echo_sink() -> SessionSink {
    Arc::new(|link: ClientLink<SockjsRx, SockjsTx>| {
        tokio::spawn(echo(link.rx, link.tx));
    })
}

async fn echo(mut rx: SockjsRx, mut tx: SockjsTx) {
    while let Ok(Some(message)) = rx.recv().await {
        if tx.send(message).await.is_err() {
            break;
        }
    }
}

/// A sink that closes every session at once with `3000 Go away!`.
pub fn close_sink() -> SessionSink {
    Arc::new(|link: ClientLink<SockjsRx, SockjsTx>| {
        link.tx.close_with(3000, "Go away!");
    })
}

/// The four services the protocol suite expects.
pub fn services() -> Vec<Arc<Sockjs>> {
    let mut no_ws = config("/disabled_websocket_echo");
    no_ws.disabled = vec!["websocket".to_owned()];
    let mut cookie = config("/cookie_needed_echo");
    cookie.cookie = true;
    vec![
        Sockjs::new(config("/echo"), Vec::new(), echo_sink()),
        Sockjs::new(config("/close"), Vec::new(), close_sink()),
        Sockjs::new(no_ws, Vec::new(), echo_sink()),
        Sockjs::new(cookie, Vec::new(), echo_sink()),
    ]
}

/// Routes a request to the service whose prefix it falls under.
async fn route(
    services: Arc<Vec<Arc<Sockjs>>>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Result<http::Response<HttpBody>, std::convert::Infallible> {
    let path = req.uri().path();
    let service = services.iter().find(|s| {
        path.strip_prefix(s.prefix())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    Ok(match service {
        Some(s) => s.clone().handle(req, peer, false).await,
        None => {
            let mut res = http::Response::new(HttpBody::default());
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            res
        }
    })
}

/// Serves `services` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, services: Vec<Arc<Sockjs>>) {
    let services = Arc::new(services);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let services = services.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| route(services.clone(), req, peer));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(8081);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening sockjs {}", listener.local_addr()?);
    serve(listener, services()).await;
    Ok(())
}
