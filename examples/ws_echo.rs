//! A plain WebSocket echo server on the gateway's own listener and WebSocket code
//! ([`stompgate::server::Listener`], [`stompgate::transport::ws::upgrade`]), with the same
//! buffer sizes and message limit derivation. `scripts/autobahn.sh` runs the Autobahn
//! conformance cases (PyPI `kosoku`) against it.
//!
//! ```text
//! cargo run --example ws_echo -- --listen 127.0.0.1:9001
//! ```
//!
//! Every text message is echoed as text, every binary message as binary, on any path.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use hyper::body::Incoming;
use stompgate::config::WsFrameMode;
use stompgate::server::{ConnInfo, Listener};
use stompgate::transport::ws::{self, WsOptions, WsStream};
use stompgate::transport::HttpBody;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Time allowed for the client's Close after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Largest STOMP body the limits are derived from (Autobahn sends 16 MiB messages).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_frame_bytes: usize,
    /// Largest STOMP header block the limits are derived from.
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts = WsOptions {
        allowed_origins: Vec::new(),
        frame_mode: WsFrameMode::Auto,
        config: ws::ws_config(ws::max_message_bytes(
            args.max_header_bytes,
            args.max_frame_bytes,
        )),
    };
    let listener = Listener::bind("echo", args.listen, None, 1024).await?;
    println!("listening echo {}", listener.local_addr());
    let stop = CancellationToken::new();
    let handler = move |req, conn| {
        let opts = opts.clone();
        async move { upgrade(req, conn, &opts) }
    };
    let serve = listener.serve(handler, stop.clone(), TaskTracker::new());
    tokio::select! {
        _ = serve => {}
        _ = tokio::signal::ctrl_c() => stop.cancel(),
    }
    Ok(())
}

/// Answers the upgrade and spawns the echo loop.
fn upgrade(
    mut req: Request<Incoming>,
    _conn: ConnInfo,
    opts: &WsOptions,
) -> http::Response<HttpBody> {
    match ws::upgrade(&mut req, opts) {
        Ok((resp, pending)) => {
            tokio::spawn(async move {
                if let Ok(stream) = pending.finish().await {
                    // No login here: lift the gateway's pre-authentication read limit, as the
                    // relay does once a CONNECT passes, so the large-message cases run.
                    if let Some(limit) = stream.get_ref().read_limit() {
                        limit.lift();
                    }
                    echo(stream).await;
                }
            });
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Echoes data messages with their own type until the client closes or breaks the protocol.
async fn echo(mut ws: WsStream) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            // Pings are answered and Close replied to by tungstenite on the next read.
            Ok(_) => {}
            Err(e) => return fail(ws, &e).await,
        }
    }
}

/// Fails the connection with the close code the error calls for (1002, 1007, 1009).
async fn fail(mut ws: WsStream, err: &tokio_tungstenite::tungstenite::Error) {
    let Some(code) = ws::close_code_for(err) else {
        return;
    };
    let frame = CloseFrame {
        code: code.into(),
        reason: "".into(),
    };
    let closing = async {
        ws.close(Some(frame)).await.ok()?;
        while let Some(Ok(_)) = ws.next().await {}
        Some(())
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}
