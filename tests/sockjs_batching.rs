//! SockJS with `batch_messages`, in process on 127.0.0.1:0: client messages reach the
//! application as byte chunks (one per `xhr_send` body or WebSocket burst), and the frames it
//! sends between two flushes reach the client as one `a[...]` frame.

mod common;
#[path = "../examples/sockjs_echo.rs"]
mod echo;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use stompgate::transport::sockjs::{Sockjs, SockjsOptions, SockjsRx, SockjsTx};
use stompgate::transport::{ClientLink, ClientRx, ClientTx};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// What the application saw: each chunk `recv` returned, then `None` when the session ended.
type Seen = mpsc::UnboundedReceiver<Option<Bytes>>;

/// A batching service at `/b` whose application answers each chunk `c` with the two frames
/// `c:1` and `c:2`, then flushes.
async fn start() -> (SocketAddr, Seen) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let sink = Arc::new(move |link: ClientLink<SockjsRx, SockjsTx>| {
        let seen_tx = seen_tx.clone();
        tokio::spawn(async move {
            let (mut rx, mut tx) = (link.rx, link.tx);
            while let Ok(Some(chunk)) = rx.recv().await {
                let _ = seen_tx.send(Some(chunk.clone()));
                let text = String::from_utf8_lossy(&chunk).into_owned();
                for n in 1..=2 {
                    let _ = tx.send(Bytes::from(format!("{text}:{n}"))).await;
                }
                if tx.flush().await.is_err() {
                    break;
                }
            }
            let _ = seen_tx.send(None);
        });
    });
    let options = SockjsOptions {
        batch_messages: true,
        ..SockjsOptions::default()
    };
    let svc = Sockjs::with_options(echo::config("/b"), Vec::new(), sink, options);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, vec![svc]));
    (addr, seen)
}

/// One POST; HTTP/1.0 so the response body comes without chunked framing.
async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST {path} HTTP/1.0\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    common::http_exchange(addr, &request).await
}

async fn next_seen(seen: &mut Seen) -> Option<Bytes> {
    timeout(WAIT, seen.recv())
        .await
        .expect("app saw nothing")
        .unwrap()
}

#[tokio::test]
async fn xhr_send_body_is_one_chunk_and_one_flush_is_one_frame() {
    let (a, mut seen) = start().await;
    let url = "/b/000/s1";
    assert_eq!(
        post(a, &format!("{url}/xhr"), "").await,
        (200, "o\n".into())
    );
    let (status, _) = post(a, &format!("{url}/xhr_send"), r#"["a","b\n"]"#).await;
    assert_eq!(status, 204);
    assert_eq!(next_seen(&mut seen).await, Some(Bytes::from("ab\n")));
    let (status, body) = post(a, &format!("{url}/xhr"), "").await;
    assert_eq!(status, 200);
    assert_eq!(body, "a[\"ab\\n:1\",\"ab\\n:2\"]\n");
}

#[tokio::test]
async fn websocket_burst_arrives_in_order_before_the_close_and_replies_share_a_frame() {
    let (a, mut seen) = start().await;
    let url = format!("ws://{a}/b/000/s2/websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, Message::text("o"));
    ws.send(Message::text(r#"["x"]"#)).await.unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, Message::text(r#"a["x:1","x:2"]"#));
    assert_eq!(next_seen(&mut seen).await, Some(Bytes::from("x")));

    // A burst and the close behind it, in one write.
    for m in [r#"["1"]"#, r#"["2","3"]"#, r#""4""#] {
        ws.feed(Message::text(m)).await.unwrap();
    }
    ws.feed(Message::Close(None)).await.unwrap();
    ws.flush().await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = next_seen(&mut seen).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"1234", "every message, in order, before the end");
}
