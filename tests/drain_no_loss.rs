//! Drain under traffic: a producer sends receipted messages through the gateway over WebSocket
//! while the gateway is told to stop (what SIGTERM does: `shutdown_token().cancel()`); during
//! the grace period it keeps publishing, then its session ends with an ERROR and a close; it
//! reconnects to a new gateway and re-sends what was not receipted. Every receipted message is
//! then in the RabbitMQ queue (counted exactly through a consumer; duplicates printed).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio_tungstenite::tungstenite::Message;

const MESSAGES: u32 = 300;
/// The message at which the first gateway is told to stop.
const STOP_AT: u32 = 100;
const WAIT: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn gateway() -> (SocketAddr, tokio_util::sync::CancellationToken) {
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.shutdown_grace = Duration::from_millis(300);
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());
    (addr, stop)
}

async fn open(addr: SocketAddr) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("upgrade");
    let connect = connect_frame(BROKER_LOGIN, BROKER_PASSCODE, "");
    ws.send(Message::text(connect)).await.unwrap();
    let reply = next_frame(&mut ws).await.expect("CONNECTED");
    assert!(reply.starts_with("CONNECTED\n"), "{reply}");
    ws
}

/// The next STOMP frame's text (heart-beats skipped); `None` once the session is over.
async fn next_frame(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) if t.trim().is_empty() => continue,
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Binary(b)) => return Some(String::from_utf8_lossy(&b).into_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Sends message `i` with a receipt: `Ok` on its RECEIPT, `Err(what ended the session)`.
async fn send_receipted(ws: &mut Ws, queue: &str, i: u32) -> Result<(), String> {
    let frame = format!("SEND\ndestination:/queue/{queue}\nreceipt:r-{i}\n\nm-{i}\0");
    ws.send(Message::text(frame))
        .await
        .map_err(|e| e.to_string())?;
    match next_frame(ws).await {
        Some(f) if f.starts_with("RECEIPT\n") && f.contains(&format!("receipt-id:r-{i}\n")) => {
            Ok(())
        }
        Some(f) => Err(f),
        None => Err("closed".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_publishing_loses_nothing_receipted() {
    let queue = unique("issue19-drain");
    let (first, stop_first) = gateway().await;
    let (second, stop_second) = gateway().await;
    let mut ws = open(first).await;
    // Declare the queue (durable, RabbitMQ's default for /queue/) before publishing.
    let sub = format!("SUBSCRIBE\nid:0\ndestination:/queue/{queue}\nreceipt:s\n\n\0");
    ws.send(Message::text(sub)).await.unwrap();
    assert!(next_frame(&mut ws).await.unwrap().starts_with("RECEIPT\n"));
    ws.send(Message::text("UNSUBSCRIBE\nid:0\n\n\0"))
        .await
        .unwrap();

    let (mut receipted, mut resent, mut ended_by) = (0u32, 0u32, None);
    let (mut drain_started, mut ended_after) = (None, None);
    for i in 0..MESSAGES {
        if i == STOP_AT {
            stop_first.cancel();
            drain_started = Some(Instant::now());
        }
        loop {
            match send_receipted(&mut ws, &queue, i).await {
                Ok(()) => break,
                Err(why) => {
                    // Not receipted: re-send through the new gateway (a duplicate at worst).
                    if ended_by.is_none() {
                        ended_by = Some(why);
                        ended_after = drain_started.map(|t: Instant| t.elapsed());
                    }
                    resent += 1;
                    assert!(resent < 5, "kept failing: {ended_by:?}");
                    ws = open(second).await;
                }
            }
        }
        receipted += 1;
        // Paced so that publishing outlasts the 300 ms grace period.
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let ended_by = ended_by.expect("the first gateway's session never ended");
    assert!(ended_by.contains("gateway shutting down"), "{ended_by}");
    let drained_after = ended_after.expect("ended before the stop");

    // Everything receipted is in the queue: read it back through the second gateway.
    let sub = format!("SUBSCRIBE\nid:1\ndestination:/queue/{queue}\nack:auto\n\n\0");
    ws.send(Message::text(sub)).await.unwrap();
    let mut seen: HashMap<u32, u32> = HashMap::new();
    while seen.len() < receipted as usize {
        let Some(f) = next_frame(&mut ws).await else {
            break;
        };
        if let Some(body) = f
            .strip_prefix("MESSAGE\n")
            .and_then(|m| m.split("\n\n").nth(1))
        {
            let i: u32 = body
                .trim_end_matches('\0')
                .strip_prefix("m-")
                .unwrap()
                .parse()
                .unwrap();
            *seen.entry(i).or_default() += 1;
        }
    }
    let lost: Vec<u32> = (0..receipted).filter(|i| !seen.contains_key(i)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "drain: {receipted} receipted, {} delivered, {} lost, {duplicates} duplicates seen so \
         far, {resent} re-sent; session ended {drained_after:?} after the stop: {ended_by:?}",
        seen.len(),
        lost.len()
    );
    let _ = ws.send(Message::text("UNSUBSCRIBE\nid:1\n\n\0")).await;
    let _ = http_exchange(
        "127.0.0.1:15672".parse().unwrap(),
        &format!(
            "DELETE /api/queues/%2F/{queue} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    stop_second.cancel();
    assert!(lost.is_empty(), "receipted but not in the queue: {lost:?}");
}
