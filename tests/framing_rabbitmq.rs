//! Frame smuggling against the real RabbitMQ, checked on the broker: a SUBSCRIBE (or BEGIN)
//! carrying `content-length` and a hidden `\0SUBSCRIBE` to a forbidden queue, and a CONNECT
//! with a body, are refused; the forbidden queue (holding one message, created through the
//! management API) gets no consumer and keeps its message. Before the fix RabbitMQ ran the
//! hidden SUBSCRIBE and delivered the message to the page.
//! Also: the broker's refusal of the gateway's own login reaches the page as a generic ERROR.

mod common;
mod policy_common;

use std::time::Duration;

use common::*;
use policy_common::{users_toml, TempDir};
use stompgate::config::Config;
use stompgate::stomp::Command;

/// The management API (guest/guest works over loopback); the same variable as the JS tests'.
fn management() -> std::net::SocketAddr {
    let url = std::env::var("STOMPGATE_TEST_RABBITMQ_MANAGEMENT")
        .unwrap_or_else(|_| "http://127.0.0.1:15672".into());
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    addr.parse().expect("management address: http://IP:PORT")
}

/// One management API request (HTTP/1.0: no chunked answer); returns status and body.
async fn api(method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_exchange(management(), &request).await
}

/// A queue holding one message the page must never see.
async fn forbidden_queue() -> String {
    let name = unique("issue16a-forbidden");
    let (status, _) = api(
        "PUT",
        &format!("/api/queues/%2F/{name}"),
        r#"{"durable":false,"auto_delete":false}"#,
    )
    .await;
    assert!(matches!(status, 201 | 204), "queue not created: {status}");
    let publish = format!(
        r#"{{"properties":{{}},"routing_key":"{name}","payload":"secret","payload_encoding":"string"}}"#
    );
    let (status, body) = api("POST", "/api/exchanges/%2F/amq.default/publish", &publish).await;
    assert!(status == 200 && body.contains("true"), "{status} {body}");
    name
}

/// The broker's view of the queue: its consumers, and whether the message is still there
/// (taken with a basic.get, which reads the queue itself, not the lagging statistics).
async fn broker_view(name: &str) -> (u64, bool) {
    let (status, body) = api("GET", &format!("/api/queues/%2F/{name}"), "").await;
    assert_eq!(status, 200, "{body}");
    let queue: serde_json::Value = serde_json::from_str(&body).expect("queue JSON");
    let consumers = queue["consumers"].as_u64().unwrap_or(0);
    let get = r#"{"count":1,"ackmode":"ack_requeue_true","encoding":"auto"}"#;
    let (status, body) = api("POST", &format!("/api/queues/%2F/{name}/get"), get).await;
    assert_eq!(status, 200, "{body}");
    (consumers, body.contains("\"payload\":\"secret\""))
}

/// A gateway session under a policy that allows SEND and SUBSCRIBE to one queue only.
async fn session(dir: &TempDir, allowed: &str) -> MemClient {
    dir.write(
        "users.toml",
        users_toml(&[("page", "page-pw", &["user"], "")]),
    );
    let policy = format!(
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n\n\
         [upstream.default]\nlogin = \"{BROKER_LOGIN}\"\npasscode = \"{BROKER_PASSCODE}\"\nvhost = \"/\"\n\n\
         [[acl]]\nrole = \"*\"\naction = \"allow\"\ncommands = [\"SEND\", \"SUBSCRIBE\"]\n\
         destination = \"{allowed}\"\n"
    );
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.policy = Some(dir.write("policy.toml", policy));
    let (mut c, _t) = MemClient::start(config);
    c.send_raw(connect_frame("page", "page-pw", "")).await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Connected, "{f:?}");
    c
}

/// Expects the refusal, then gives the broker a moment to act on anything that slipped by.
async fn expect_refused(c: &mut MemClient, wanted: &str) {
    let (message, _) = c.expect_error_close().await;
    assert!(message.contains(wanted), "{message}");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_subscribe_hidden_behind_content_length_never_reaches_the_broker() {
    let forbidden = forbidden_queue().await;
    let dir = TempDir::new();
    let allowed = format!("/queue/{}", unique("issue16a-ok"));
    let hidden = format!("\0SUBSCRIBE\nid:9\ndestination:/queue/{forbidden}\nack:auto\n\n");
    for carrier in [
        format!("SUBSCRIBE\nid:1\ndestination:{allowed}"),
        "BEGIN\ntransaction:t1".to_owned(),
    ] {
        let mut c = session(&dir, &allowed).await;
        let smuggle = format!("{carrier}\ncontent-length:{}\n\n{hidden}\0", hidden.len());
        // Split across two transport messages inside the hidden frame, as a page could.
        let (a, b) = smuggle.split_at(carrier.len() + 30);
        c.send_raw(a.to_owned()).await;
        c.send_raw(b.to_owned()).await;
        expect_refused(&mut c, "content-length is only allowed on SEND").await;
        assert_eq!(broker_view(&forbidden).await, (0, true), "via {carrier}");
    }
    // Without content-length the carrier's body is refused too (the brokers would ignore it,
    // and the page meant something by it).
    let mut c = session(&dir, &allowed).await;
    c.send_raw(format!("BEGIN\ntransaction:t2\n\nx{hidden}\0"))
        .await;
    expect_refused(&mut c, "may not have a body").await;
    assert_eq!(broker_view(&forbidden).await, (0, true));
    api("DELETE", &format!("/api/queues/%2F/{forbidden}"), "").await;
}

#[tokio::test]
async fn a_connect_with_a_body_is_refused_before_the_broker_is_asked() {
    let forbidden = forbidden_queue().await;
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("page", "page-pw", &["user"], "")]),
    );
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.policy = Some(dir.write(
        "policy.toml",
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n",
    ));
    let hidden = format!("x\0SUBSCRIBE\nid:9\ndestination:/queue/{forbidden}\nack:auto\n\n");
    let connect = connect_frame("page", "page-pw", "");
    let head = connect.strip_suffix("\n\0").unwrap();
    // Re-emitted whole, this CONNECT would end at the broker at its first NUL, and the rest of
    // its body would run as a SUBSCRIBE of its own.
    for (attempt, wanted) in [
        (
            format!("{head}content-length:{}\n\n{hidden}\0", hidden.len()),
            "content-length is only allowed on SEND, not on CONNECT",
        ),
        (
            format!("{head}\nbody\0"),
            "a CONNECT frame may not have a body",
        ),
    ] {
        let (mut c, _t) = MemClient::start(config.clone());
        c.send_raw(attempt).await;
        expect_refused(&mut c, wanted).await;
        assert_eq!(broker_view(&forbidden).await, (0, true));
    }
    api("DELETE", &format!("/api/queues/%2F/{forbidden}"), "").await;
}

#[tokio::test]
async fn the_broker_refusing_the_gateway_login_gets_a_generic_error() {
    let (mut c, _t) = MemClient::start(Config::for_tests(
        &rabbitmq(),
        BROKER_LOGIN,
        "not-the-password",
    ));
    c.send_raw(connect_frame("x", "y", "")).await;
    let f = c.frame().await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(
        f.header("message"),
        Some("broker refused the gateway's login")
    );
    let shown = format!("{f:?}");
    assert!(
        !shown.contains(BROKER_LOGIN),
        "broker identity leaked: {shown}"
    );
}

#[tokio::test]
async fn connect_headers_that_reach_the_broker_must_read_the_same_there() {
    let dir = TempDir::new();
    // A backslash in the page's own password is no concern: the gateway replaces it.
    dir.write(
        "users.toml",
        users_toml(&[("page", "pa\\ss", &["user"], "")]),
    );
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.policy = Some(dir.write(
        "policy.toml",
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n",
    ));
    let (mut c, _t) = MemClient::start(config.clone());
    c.send_raw(connect_frame("page", "pa\\ss", "")).await;
    assert_eq!(c.frame().await.command, Command::Connected);
    // A header the broker gets as it came: RabbitMQ would read `a:b`, the gateway `a\cb`.
    for extra in ["client-id:a\\cb\n", "x-note: padded\n"] {
        let (mut c, _t) = MemClient::start(config.clone());
        c.send_raw(connect_frame("page", "pa\\ss", extra)).await;
        let (message, _) = c.expect_error_close().await;
        assert!(message.contains("ambiguous header"), "{extra}: {message}");
    }
}
