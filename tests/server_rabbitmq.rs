//! End to end over a real WebSocket: client → gateway listener → relay → RabbitMQ (STOMP 61613,
//! users from scripts/setup-rabbitmq.sh) and back. Checks what only the whole path shows: the
//! subprotocol answer, one whole frame per WebSocket message (text), inbound frames split
//! across 1-byte messages and batched in one, and the DISCONNECT receipt before a 1000 close.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{rabbitmq, unique, BROKER_LOGIN, BROKER_PASSCODE};
use futures_util::{SinkExt, StreamExt};
use stompgate::config::Config;
use stompgate::server::Gateway;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next data message as text (STOMP frames from RabbitMQ are UTF-8 here).
async fn next_text(ws: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match msg.unwrap().unwrap() {
            Message::Text(t) if t.as_str() != "\n" => return t.as_str().to_owned(),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

#[tokio::test]
async fn stomp_over_websocket_through_the_gateway_to_rabbitmq() {
    let config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    let gw = Gateway::bind(Arc::new(config)).await.unwrap();
    let (addr, stop) = (gw.client_addr(), gw.shutdown_token());
    tokio::spawn(gw.run());

    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    let offered = "v10.stomp, v11.stomp, v12.stomp".parse().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", offered);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "v12.stomp");

    // Wrong client credentials: the gateway presents its own.
    send(
        &mut ws,
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:nope\n\n\0",
    )
    .await;
    assert!(next_text(&mut ws).await.starts_with("CONNECTED\n"));

    let q = unique("/queue/ws-e2e");
    let subscribe = format!("SUBSCRIBE\nid:s1\ndestination:{q}\nreceipt:r1\n\n\0");
    for byte in subscribe.as_bytes() {
        ws.send(Message::binary(vec![*byte])).await.unwrap();
    }
    assert!(next_text(&mut ws).await.contains("receipt-id:r1"));

    let batch: String = (0..10)
        .map(|i| format!("SEND\ndestination:{q}\ncontent-type:text/plain\n\nbody-{i}\0"))
        .collect();
    send(&mut ws, &batch).await;
    for i in 0..10 {
        let msg = next_text(&mut ws).await;
        assert!(msg.starts_with("MESSAGE\n"), "{msg}");
        assert!(
            msg.ends_with(&format!("\n\nbody-{i}\0")),
            "one whole frame per message: {msg:?}"
        );
    }

    send(&mut ws, "DISCONNECT\nreceipt:bye\n\n\0").await;
    assert!(next_text(&mut ws).await.contains("receipt-id:bye"));
    let close = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, WsCode::Normal),
        other => panic!("expected a 1000 close, got {other:?}"),
    }
    stop.cancel();
}
