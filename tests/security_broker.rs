//! Differential security suite (issue 16): attacks on the policy, sent through a gateway
//! started in-process with a restrictive policy (the README's dashboard rule on a fanout
//! exchange, a per-user rule `/queue/user.{user}.*`, a deny before a wildcard) in front of the
//! real RabbitMQ and ActiveMQ, each checked on the BROKER side: a forbidden queue seeded with a
//! known message still holds it (RabbitMQ's management API, `basic.get` with requeue; an
//! ActiveMQ probe consumer), no forbidden queue was created or bound, nothing was published
//! outside the ACL. The gateway's answer is not relied on (the page must merely never get a
//! MESSAGE from a forbidden queue).
//!
//! Needs RabbitMQ (STOMP `STOMPGATE_TEST_RABBITMQ`, management API at
//! `STOMPGATE_TEST_RABBITMQ_MANAGEMENT`, default http://127.0.0.1:15672, `guest` over
//! loopback) and ActiveMQ (`STOMPGATE_TEST_ACTIVEMQ`). Names are unique per run
//! (`issue16b-…`); every wait is bounded.

#[path = "common/mod.rs"]
mod common;
#[path = "policy_common/mod.rs"]
mod policy_common;
#[allow(dead_code)]
#[path = "policy_e2e/support.rs"]
mod support;

use std::time::Duration;

use common::{activemq, rabbitmq, unique};
use futures_util::{SinkExt, StreamExt};
use policy_common::TempDir;
use stompgate::stomp::{Decoder, Item, Limits};
use support::{start_with, users_file, Gw, Ws, QUIET, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ALICE_PW: &str = "alice-issue16b-pw";
/// How long a probe consumer waits for a message that should be there.
const PROBE_WAIT: Duration = Duration::from_millis(1500);

/// The suite's policy; `{EX}` is the test's own fanout exchange (the README's dashboard rule),
/// `{TOPIC}` its own topic prefix.
const POLICY: &str = r#"
[[auth]]
type = "static"
users_file = "users.toml"

[[acl]]
role = "*"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/exchange/{EX}"
headers = { "x-queue-name" = "dash-{user}-*" }

[[acl]]
role = "*"
action = "deny"
commands = ["SEND", "SUBSCRIBE"]
destination = "/queue/user.{user}.vault-*"

[[acl]]
role = "*"
action = "allow"
commands = ["SEND", "SUBSCRIBE"]
destination = "/queue/user.{user}.*"

[[acl]]
role = "*"
action = "deny"
commands = ["SUBSCRIBE"]
destination = "/topic/{TOPIC}.secret"

[[acl]]
role = "*"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/topic/{TOPIC}.*"
"#;

/// One test's world: its gateway, exchange, topic prefix and forbidden queue.
struct World {
    gw: Gw,
    exchange: String,
    topic: String,
    secret: String,
}

async fn world(upstream: &str) -> World {
    let exchange = unique("issue16b-fanout");
    let topic = unique("issue16b-feed").replace('-', "_");
    let secret = unique("issue16b-secret");
    let dir = TempDir::new();
    dir.write("users.toml", users_file(ALICE_PW, "bob-unused-pw"));
    let policy = POLICY.replace("{EX}", &exchange).replace("{TOPIC}", &topic);
    let gw = start_with(dir, &policy, upstream).await;
    World {
        gw,
        exchange,
        topic,
        secret,
    }
}

/// A RabbitMQ world: the exchange exists and the forbidden queue holds one seed message.
async fn rabbit_world() -> World {
    let w = world(&rabbitmq()).await;
    mgmt::put(
        &format!("exchanges/%2F/{}", w.exchange),
        r#"{"type":"fanout","durable":true}"#,
    )
    .await;
    mgmt::seed_queue(&w.secret).await;
    w
}

/// An ActiveMQ world: the forbidden queue holds one seed message.
async fn activemq_world() -> World {
    let w = world(&activemq()).await;
    let mut probe = Probe::connect().await;
    probe.send(&format!("/queue/{}", w.secret), "seed").await;
    w
}

fn alice_connect() -> String {
    support::connect("alice", ALICE_PW, "")
}

/// A STOMP 1.2 session as alice, over a plain WebSocket.
async fn alice(gw: &Gw) -> Ws {
    gw.connected(&alice_connect()).await
}

/// Sends `attack` on a connected session; it must not be answered by a MESSAGE.
async fn attack(gw: &Gw, attack: &str) -> String {
    let mut ws = alice(gw).await;
    ws.send(attack).await;
    let answer = first_answer(&mut ws).await;
    settle().await;
    answer
}

/// The first frame after an attack (or "<quiet>"): never a MESSAGE, whatever else.
async fn first_answer(ws: &mut Ws) -> String {
    let answer = match tokio::time::timeout(QUIET, ws.frame()).await {
        Ok(f) => f,
        Err(_) => "<quiet>".into(),
    };
    assert!(
        !answer.starts_with("MESSAGE"),
        "the page got a message: {answer}"
    );
    answer
}

/// Time for a broker to act on anything that did reach it.
async fn settle() {
    tokio::time::sleep(QUIET).await;
}

impl World {
    /// RabbitMQ: the forbidden queue still holds exactly its seed, and is bound to nothing
    /// new on the test's exchange.
    async fn assert_rabbit_untouched(&self) {
        assert_eq!(
            mgmt::peek(&self.secret).await,
            vec!["seed".to_owned()],
            "the forbidden queue {} lost its seed or got new messages",
            self.secret
        );
        let bound = mgmt::bindings(&self.exchange).await;
        assert!(
            !bound.contains(&self.secret),
            "the forbidden queue was bound to {}: {bound:?}",
            self.exchange
        );
    }

    /// ActiveMQ: a probe consumer on the forbidden queue still receives the seed.
    async fn assert_activemq_untouched(&self) {
        let mut probe = Probe::connect().await;
        let got = probe
            .subscribe_one(&format!("/queue/{}", self.secret))
            .await;
        assert_eq!(
            got.as_deref(),
            Some("seed"),
            "the forbidden queue lost its seed"
        );
    }

    async fn cleanup_rabbit(&self) {
        mgmt::delete(&format!("queues/%2F/{}", self.secret)).await;
        mgmt::delete(&format!("exchanges/%2F/{}", self.exchange)).await;
    }
}

/// A frame whose body, for a broker that ends it at its first NUL, is a hidden SUBSCRIBE to
/// `hidden` (the carrier's own headers first).
fn smuggle(carrier: &str, hidden: &str) -> String {
    let body = format!("\0SUBSCRIBE\nid:smuggled\ndestination:{hidden}\nack:auto\n\n");
    format!("{carrier}content-length:{}\n\n{body}\0", body.len())
}

/// Carriers for the smuggled frame: each with the frames that make it valid before it.
fn carriers(allowed: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "SUBSCRIBE",
            format!("SUBSCRIBE\nid:1\ndestination:{allowed}\n"),
        ),
        ("BEGIN", "BEGIN\ntransaction:t1\n".into()),
        (
            "COMMIT",
            "BEGIN\ntransaction:t1\n\n\0COMMIT\ntransaction:t1\n".into(),
        ),
        (
            "ABORT",
            "BEGIN\ntransaction:t1\n\n\0ABORT\ntransaction:t1\n".into(),
        ),
        ("ACK", "ACK\nid:1\n".into()),
        ("NACK", "NACK\nid:1\n".into()),
        (
            "UNSUBSCRIBE",
            format!("SUBSCRIBE\nid:1\ndestination:{allowed}\n\n\0UNSUBSCRIBE\nid:1\n"),
        ),
        ("DISCONNECT", "DISCONNECT\n".into()),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. Content-length smuggling (needs the canonical framing of issue 16 part A).

#[tokio::test]
async fn rabbitmq_smuggled_frames_never_reach_the_forbidden_queue() {
    let w = rabbit_world().await;
    let hidden = format!("/amq/queue/{}", w.secret);
    for (name, carrier) in carriers("/queue/user.alice.in") {
        let answer = attack(&w.gw, &smuggle(&carrier, &hidden)).await;
        println!("{name}: {}", answer.lines().next().unwrap_or(""));
        w.assert_rabbit_untouched().await;
    }
    // Inside the CONNECT (and STOMP) frame itself.
    for command in ["CONNECT", "STOMP"] {
        let carrier = format!(
            "{command}\naccept-version:1.2\nlogin:alice\npasscode:{ALICE_PW}\nheart-beat:0,0\n"
        );
        let mut ws = w.gw.ws().await;
        ws.send(&smuggle(&carrier, &hidden)).await;
        // CONNECTED or a refusal; whatever comes next is never the forbidden queue's message.
        let _ = first_answer(&mut ws).await;
        let _ = first_answer(&mut ws).await;
        settle().await;
        w.assert_rabbit_untouched().await;
    }
    w.cleanup_rabbit().await;
}

#[tokio::test]
async fn activemq_smuggled_frames_never_reach_the_forbidden_queue() {
    let w = activemq_world().await;
    let hidden = format!("/queue/{}", w.secret);
    for (_, carrier) in carriers("/queue/user.alice.in") {
        attack(&w.gw, &smuggle(&carrier, &hidden)).await;
    }
    let carrier = format!("CONNECT\naccept-version:1.2\nlogin:alice\npasscode:{ALICE_PW}\n");
    let mut ws = w.gw.ws().await;
    ws.send(&smuggle(&carrier, &hidden)).await;
    let _ = first_answer(&mut ws).await;
    let _ = first_answer(&mut ws).await;
    settle().await;
    w.assert_activemq_untouched().await;
}

/// The smuggling frame sent one byte per WebSocket message.
#[tokio::test]
async fn rabbitmq_smuggling_split_at_every_byte() {
    let w = rabbit_world().await;
    let frame = smuggle(
        "SUBSCRIBE\nid:1\ndestination:/queue/user.alice.in\n",
        &format!("/amq/queue/{}", w.secret),
    );
    let mut ws = alice(&w.gw).await;
    for b in frame.as_bytes() {
        ws.0.send(Message::binary(vec![*b])).await.expect("send");
    }
    first_answer(&mut ws).await;
    settle().await;
    w.assert_rabbit_untouched().await;
    w.cleanup_rabbit().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Headers that reach other resources.

/// The allowed dashboard SUBSCRIBE, with `extra` header lines.
fn dashboard_subscribe(w: &World, extra: &str) -> String {
    format!(
        "SUBSCRIBE\nid:1\ndestination:/exchange/{}\n{extra}\n\0",
        w.exchange
    )
}

/// The headers that make RabbitMQ consume an existing durable queue from an exchange
/// subscription (without `auto-delete:false` its declare fails on the durable queue's
/// parameters and nothing is consumed).
fn x_queue_attack(queue: &str) -> String {
    format!("x-queue-name:{queue}\ndurable:true\nauto-delete:false\n")
}

#[tokio::test]
async fn rabbitmq_x_queue_name_cannot_reach_an_existing_queue() {
    let w = rabbit_world().await;
    let s = &w.secret;
    let attacks = [
        x_queue_attack(s),
        format!("x-queue-name:{s}\n"),
        // Odd case, repeated (either order), and a guarded copy after an allowed one.
        format!("X-Queue-Name:{s}\ndurable:true\n"),
        format!("x-queue-name:dash-alice-1\nx-queue-name:{s}\n"),
        format!("x-queue-name:{s}\nx-queue-name:dash-alice-1\n"),
        format!("x-queue-name:dash-alice-1\nX-QUEUE-NAME:{s}\n"),
        // Allowed name, forbidden queue arguments.
        "x-queue-name:dash-alice-2\nx-dead-letter-exchange:amq.fanout\n".to_owned(),
        "durable:true\nauto-delete:false\n".to_owned(),
        "persistent:true\n".to_owned(),
    ];
    for extra in &attacks {
        attack(&w.gw, &dashboard_subscribe(&w, extra)).await;
        w.assert_rabbit_untouched().await;
    }
    // Nothing at all was bound to the exchange: every one of those was refused before the
    // broker (the dash-alice-2 and durable subscriptions would have left queues bound).
    assert_eq!(mgmt::bindings(&w.exchange).await, Vec::<String>::new());
    for q in ["dash-alice-1", "dash-alice-2"] {
        assert!(
            !mgmt::exists(&format!("queues/%2F/{q}")).await,
            "{q} was created"
        );
    }
    w.cleanup_rabbit().await;
}

/// The control: what the rule allows does happen on the broker.
#[tokio::test]
async fn rabbitmq_an_allowed_x_queue_name_is_honoured() {
    let w = rabbit_world().await;
    let mine = unique("dash-alice");
    let mut ws = alice(&w.gw).await;
    ws.send(&format!(
        "SUBSCRIBE\nid:1\ndestination:/exchange/{}\nx-queue-name:{mine}\nreceipt:r1\n\n\0",
        w.exchange
    ))
    .await;
    let receipt = ws.frame().await;
    assert!(receipt.starts_with("RECEIPT"), "{receipt}");
    assert_eq!(mgmt::bindings(&w.exchange).await, vec![mine.clone()]);
    drop(ws);
    mgmt::delete(&format!("queues/%2F/{mine}")).await;
    w.cleanup_rabbit().await;
}

#[tokio::test]
async fn rabbitmq_x_queue_name_split_at_every_offset() {
    let w = rabbit_world().await;
    let frame = dashboard_subscribe(&w, &x_queue_attack(&w.secret));
    let bytes = frame.as_bytes();
    for cut in 1..bytes.len() {
        let mut ws = alice(&w.gw).await;
        for part in [&bytes[..cut], &bytes[cut..]] {
            ws.0.send(Message::binary(part.to_vec()))
                .await
                .expect("send");
        }
        first_answer(&mut ws).await;
    }
    settle().await;
    w.assert_rabbit_untouched().await;
    w.cleanup_rabbit().await;
}

#[tokio::test]
async fn rabbitmq_reply_to_and_unsubscribe_cannot_touch_other_queues() {
    let w = rabbit_world().await;
    // reply-to: RabbitMQ would create a temporary queue and subscribe this connection to it,
    // and the receiver would answer into the forbidden queue.
    let inbox = unique("user.alice.inbox");
    attack(
        &w.gw,
        &format!(
            "SEND\ndestination:/queue/{inbox}\nreply-to:/queue/{}\n\nhello\0",
            w.secret
        ),
    )
    .await;
    assert!(
        !mgmt::exists(&format!("queues/%2F/{inbox}")).await,
        "the SEND reached the broker"
    );
    // UNSUBSCRIBE of a durable subscription naming the forbidden queue would delete it.
    attack(
        &w.gw,
        &format!(
            "UNSUBSCRIBE\nid:1\ndestination:/exchange/{}\ndurable:true\nx-queue-name:{}\n\n\0",
            w.exchange, w.secret
        ),
    )
    .await;
    w.assert_rabbit_untouched().await;
    w.cleanup_rabbit().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Destination grammar: composites and wildcards.

#[tokio::test]
async fn activemq_composites_and_wildcards_do_not_widen_a_rule() {
    let w = activemq_world().await;
    let vault = unique("user.alice.vault");
    let mut probe = Probe::connect().await;
    probe.send(&format!("/queue/{vault}"), "seed").await;
    for dest in [
        format!("/queue/user.alice.x,{}", w.secret),
        format!("/queue/user.alice.x,/queue/{}", w.secret),
        "/queue/user.alice.x,>".to_owned(),
        // The deny rule covers the vault; a wildcard must not reach it past the deny.
        "/queue/user.alice.*".to_owned(),
        "/queue/user.alice.>".to_owned(),
        format!("/queue/user.alice.x?consumer.retroactive=true,{}", w.secret),
    ] {
        attack(
            &w.gw,
            &format!("SUBSCRIBE\nid:1\ndestination:{dest}\nack:auto\n\n\0"),
        )
        .await;
    }
    w.assert_activemq_untouched().await;
    let got = probe.subscribe_one(&format!("/queue/{vault}")).await;
    assert_eq!(
        got.as_deref(),
        Some("seed"),
        "the denied vault lost its seed"
    );
}

#[tokio::test]
async fn activemq_headers_that_reach_other_resources_are_refused() {
    let w = activemq_world().await;
    // A durable subscription, a retroactive one, an XStream transformation: none reach the
    // broker. Shown by a SEND carrying each: the allowed queue stays empty.
    let inbox = unique("user.alice.inbox");
    for extra in [
        "activemq.subscriptionName:x\n",
        "transformation:jms-object-xml\n",
        "reply-to:/queue/other\n",
        "ACTIVEMQ.retroactive:true\n",
    ] {
        attack(
            &w.gw,
            &format!("SEND\ndestination:/queue/{inbox}\n{extra}\nleaked\0"),
        )
        .await;
    }
    let mut probe = Probe::connect().await;
    assert_eq!(probe.subscribe_one(&format!("/queue/{inbox}")).await, None);
    w.assert_activemq_untouched().await;
}

#[tokio::test]
async fn rabbitmq_topic_wildcards_do_not_widen_a_rule() {
    let w = rabbit_world().await;
    for key in ["*", "#", "secret.#"] {
        attack(
            &w.gw,
            &format!(
                "SUBSCRIBE\nid:1\ndestination:/topic/{}.{key}\n\n\0",
                w.topic
            ),
        )
        .await;
    }
    // A wildcard binding on amq.topic would have let the page read `{topic}.secret`.
    let keys = mgmt::binding_keys("amq.topic").await;
    assert!(
        !keys.iter().any(|k| k.starts_with(&w.topic)),
        "a binding for the topic was made: {keys:?}"
    );
    w.cleanup_rabbit().await;
}

/// The dialect comes from RabbitMQ's CONNECTED: a `,` or `*` in a RabbitMQ queue name is an
/// ordinary character (one queue, so the per-user rule allows it), where the generic grammar
/// would refuse it.
#[tokio::test]
async fn rabbitmq_dialect_is_detected_from_connected() {
    let w = rabbit_world().await;
    let queue = format!("{},x*", unique("user.alice.odd"));
    let mut ws = alice(&w.gw).await;
    ws.send(&format!(
        "SEND\ndestination:/queue/{queue}\nreceipt:r\n\nhi\0"
    ))
    .await;
    let receipt = ws.frame().await;
    assert!(receipt.starts_with("RECEIPT"), "{receipt}");
    let encoded = queue.replace(',', "%2C").replace('*', "%2A");
    assert_eq!(mgmt::peek(&encoded).await, vec!["hi".to_owned()]);
    mgmt::delete(&format!("queues/%2F/{encoded}")).await;
    w.cleanup_rabbit().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Escapes (needs part A: STOMP 1.0 frames are not unescaped by the gateway, but are by
// the brokers).

#[tokio::test]
async fn rabbitmq_escapes_do_not_name_another_queue() {
    let w = rabbit_world().await;
    let base = unique("user.alice.esc");
    let mut ws = w.gw.ws().await;
    // STOMP 1.0: no accept-version.
    ws.send(&format!("CONNECT\nlogin:alice\npasscode:{ALICE_PW}\n\n\0"))
        .await;
    let connected = ws.frame().await;
    assert!(connected.starts_with("CONNECTED"), "{connected}");
    ws.send(&format!("SEND\ndestination:/queue/{base}\\c1\n\nescaped\0"))
        .await;
    let _ = first_answer(&mut ws).await;
    settle().await;
    // RabbitMQ would unescape `\c` and declare `{base}:1`, a name the gateway never checked.
    assert!(!mgmt::exists(&format!("queues/%2F/{base}%3A1")).await);
    assert!(!mgmt::exists(&format!("queues/%2F/{base}%5Cc1")).await);
    w.cleanup_rabbit().await;
}

// ---------------------------------------------------------------------------------------------
// 5. The same through SockJS (websocket transport and xhr).

#[tokio::test]
async fn rabbitmq_attacks_over_sockjs_websocket_and_xhr() {
    let w = rabbit_world().await;
    let x_queue = dashboard_subscribe(&w, &x_queue_attack(&w.secret));
    let smuggled = smuggle(
        "SUBSCRIBE\nid:1\ndestination:/queue/user.alice.in\n",
        &format!("/amq/queue/{}", w.secret),
    );
    for frame in [&x_queue, &smuggled] {
        sockjs::websocket_attack(&w.gw, frame).await;
        settle().await;
        w.assert_rabbit_untouched().await;
        sockjs::xhr_attack(&w.gw, frame).await;
        settle().await;
        w.assert_rabbit_untouched().await;
    }
    w.cleanup_rabbit().await;
}

mod sockjs {
    //! Minimal SockJS clients: the websocket transport and xhr polling.

    use super::*;

    fn encode(frame: &str) -> String {
        serde_json::to_string(&vec![frame]).expect("json")
    }

    type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    /// The next text message, or `None` once the server has been quiet for a while.
    async fn next(ws: &mut Stream) -> Option<String> {
        match tokio::time::timeout(QUIET * 2, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => Some(t.as_str().to_owned()),
            _ => None,
        }
    }

    /// Connects as alice over `/sockjs/…/websocket`, sends `frame`, asserts no MESSAGE came.
    pub async fn websocket_attack(gw: &Gw, frame: &str) {
        let url = format!("ws://{}/sockjs/000/{}/websocket", gw.addr, unique("s"));
        let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("upgrade timed out")
            .expect("upgrade refused");
        let mut received = String::new();
        assert_eq!(next(&mut ws).await.as_deref(), Some("o"));
        ws.send(Message::text(encode(&alice_connect())))
            .await
            .expect("send");
        let connected = next(&mut ws).await.unwrap_or_default();
        assert!(connected.contains("CONNECTED"), "{connected}");
        ws.send(Message::text(encode(frame))).await.expect("send");
        while let Some(m) = next(&mut ws).await {
            received.push_str(&m);
        }
        assert!(!received.contains("MESSAGE"), "{received}");
    }

    /// The same over xhr polling (`xhr` + `xhr_send`).
    pub async fn xhr_attack(gw: &Gw, frame: &str) {
        let base = format!("/sockjs/000/{}", unique("x"));
        let (_, open) = post(gw, &format!("{base}/xhr"), "").await;
        assert_eq!(open.trim(), "o");
        post(gw, &format!("{base}/xhr_send"), &encode(&alice_connect())).await;
        let (_, connected) = post(gw, &format!("{base}/xhr"), "").await;
        assert!(connected.contains("CONNECTED"), "{connected}");
        post(gw, &format!("{base}/xhr_send"), &encode(frame)).await;
        let (_, answer) = post(gw, &format!("{base}/xhr"), "").await;
        assert!(!answer.contains("MESSAGE"), "{answer}");
    }

    async fn post(gw: &Gw, path: &str, body: &str) -> (u16, String) {
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        common::http_exchange(gw.addr, &request).await
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ's management API (HTTP/1.0, guest over loopback).

mod mgmt {
    use super::*;

    /// The same variable as the JS tests' and `framing_rabbitmq`'s.
    fn addr() -> std::net::SocketAddr {
        let url = std::env::var("STOMPGATE_TEST_RABBITMQ_MANAGEMENT")
            .unwrap_or_else(|_| "http://127.0.0.1:15672".into());
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        addr.parse().expect("management address: http://IP:PORT")
    }

    pub async fn call(method: &str, path: &str, body: &str) -> (u16, String) {
        let request = format!(
            "{method} /api/{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
             Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        common::http_exchange(addr(), &request).await
    }

    pub async fn put(path: &str, body: &str) {
        let (status, text) = call("PUT", path, body).await;
        assert!(matches!(status, 201 | 204), "PUT {path}: {status} {text}");
    }

    pub async fn delete(path: &str) {
        let _ = call("DELETE", path, "").await;
    }

    pub async fn exists(path: &str) -> bool {
        call("GET", path, "").await.0 == 200
    }

    /// A durable queue holding one message, `seed`.
    pub async fn seed_queue(name: &str) {
        put(
            &format!("queues/%2F/{name}"),
            r#"{"durable":true,"auto_delete":false}"#,
        )
        .await;
        let body = serde_json::json!({
            "properties": {}, "routing_key": name, "payload": "seed", "payload_encoding": "string"
        });
        let (status, text) = call(
            "POST",
            "exchanges/%2F/amq.default/publish",
            &body.to_string(),
        )
        .await;
        assert!(
            status == 200 && text.contains("true"),
            "publish: {status} {text}"
        );
    }

    /// The payloads in a queue now (fetched and put back: `basic.get` with requeue).
    pub async fn peek(queue: &str) -> Vec<String> {
        let body = r#"{"count":10,"ackmode":"ack_requeue_true","encoding":"auto"}"#;
        let (status, text) = call("POST", &format!("queues/%2F/{queue}/get"), body).await;
        assert_eq!(status, 200, "get {queue}: {text}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
        list.iter()
            .map(|m| m["payload"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn bound(text: &str, field: &str) -> Vec<String> {
        let list: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
        list.iter()
            .map(|b| b[field].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The queues bound to `exchange`.
    pub async fn bindings(exchange: &str) -> Vec<String> {
        let (_, text) = call(
            "GET",
            &format!("exchanges/%2F/{exchange}/bindings/source"),
            "",
        )
        .await;
        bound(&text, "destination")
    }

    /// The routing keys bound on `exchange`.
    pub async fn binding_keys(exchange: &str) -> Vec<String> {
        let (_, text) = call(
            "GET",
            &format!("exchanges/%2F/{exchange}/bindings/source"),
            "",
        )
        .await;
        bound(&text, "routing_key")
    }
}

// ---------------------------------------------------------------------------------------------
// A direct STOMP client on ActiveMQ: seeds queues and checks what they still hold.

struct Probe {
    tcp: TcpStream,
    buf: bytes::BytesMut,
    decoder: Decoder,
}

impl Probe {
    async fn connect() -> Probe {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(activemq()))
            .await
            .expect("activemq connect timed out")
            .expect("activemq reachable");
        let mut p = Probe {
            tcp,
            buf: bytes::BytesMut::new(),
            decoder: Decoder::new(Limits::default()),
        };
        p.write("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0")
            .await;
        let f = p.frame(WAIT).await.expect("CONNECTED");
        assert!(f.starts_with("CONNECTED"), "{f}");
        p
    }

    async fn write(&mut self, text: &str) {
        self.tcp.write_all(text.as_bytes()).await.expect("write");
    }

    /// The next frame as text, or `None` after `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Item::Frame(f))) => {
                    let mut out = format!("{}\n\n", f.command);
                    out.push_str(&String::from_utf8_lossy(f.body()));
                    return Some(out);
                }
                Ok(Some(Item::Heartbeat)) => continue,
                Ok(None) => {}
                Err(e) => panic!("probe decode: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// SEND a persistent message and wait for its receipt.
    async fn send(&mut self, dest: &str, body: &str) {
        self.write(&format!(
            "SEND\ndestination:{dest}\npersistent:true\nreceipt:s\n\n{body}\0"
        ))
        .await;
        let r = self.frame(WAIT).await.expect("RECEIPT");
        assert!(r.starts_with("RECEIPT"), "{r}");
    }

    /// Subscribes to `dest` (auto ack) and returns the first message body, if one comes.
    async fn subscribe_one(&mut self, dest: &str) -> Option<String> {
        self.write(&format!(
            "SUBSCRIBE\nid:probe\ndestination:{dest}\nack:auto\n\n\0"
        ))
        .await;
        let f = self.frame(PROBE_WAIT).await?;
        assert!(f.starts_with("MESSAGE"), "{f}");
        f.split_once("\n\n").map(|(_, b)| b.to_owned())
    }
}
