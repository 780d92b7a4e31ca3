//! Shared broadcast subscriptions (`fanout`) against the real RabbitMQ, checked on the broker:
//! many in-memory pages on ONE gateway context share one broker subscription (one binding of
//! the exchange), every page gets every message in order with its own subscription id, a page
//! that stops reading is ended without delaying the rest, UNSUBSCRIBE/DISCONNECT mid-burst, and
//! SUBSCRIBEs that must not share keep their own broker subscription. One ActiveMQ test shares
//! a `/topic/`.
//!
//! Each test makes its own fanout exchange (`issue21-…`) through the management API
//! (`STOMPGATE_TEST_RABBITMQ_MANAGEMENT`, default http://127.0.0.1:15672, `guest` over
//! loopback), so parallel runs do not see each other's messages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{connect_frame, rabbitmq, unique, BROKER_LOGIN, BROKER_PASSCODE};
use stompgate::config::Config;
use stompgate::relay::{run_session, RelayContext};
use stompgate::stomp::{Command, Decoder, Frame, Item, Limits, Version};
use stompgate::transport::{ClientLink, ClientRx, ClientTx, CloseCode, LinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

enum Out {
    Message(Bytes),
    Close,
}

struct Rx(mpsc::Receiver<Bytes>);
struct Tx(mpsc::Sender<Out>);

impl ClientRx for Rx {
    async fn recv(&mut self) -> Result<Option<Bytes>, LinkError> {
        Ok(self.0.recv().await)
    }
}

impl ClientTx for Tx {
    async fn send(&mut self, frame: Bytes) -> Result<(), LinkError> {
        self.0
            .send(Out::Message(frame))
            .await
            .map_err(|_| LinkError::Gone)
    }
    async fn close(&mut self, _code: CloseCode, _reason: &str) -> Result<(), LinkError> {
        self.0.send(Out::Close).await.map_err(|_| LinkError::Gone)
    }
}

/// One in-memory page on a shared gateway context.
struct Page {
    to_relay: mpsc::Sender<Bytes>,
    from_relay: mpsc::Receiver<Out>,
    decoder: Decoder,
}

impl Page {
    /// Opens a session; `out_room` is how many messages the page's transport holds unread.
    async fn open(ctx: &Arc<RelayContext>, out_room: usize) -> Page {
        Page::open_as(ctx, out_room, &connect_frame("page", "x", "")).await
    }

    /// Opens a session with this CONNECT; panics unless the gateway answers CONNECTED.
    async fn open_as(ctx: &Arc<RelayContext>, out_room: usize, connect: &str) -> Page {
        let (to_relay, rx) = mpsc::channel(64);
        let (tx, from_relay) = mpsc::channel(out_room);
        let link = ClientLink {
            rx: Rx(rx),
            tx: Tx(tx),
            meta: common::meta(),
        };
        tokio::spawn(run_session(ctx.clone(), link));
        let mut page = Page {
            to_relay,
            from_relay,
            decoder: Decoder::new(Limits::default()),
        };
        page.send(connect).await;
        assert_eq!(page.frame().await.command, Command::Connected);
        page.decoder.set_version(Version::V1_2);
        page
    }

    async fn send(&self, frame: &str) {
        self.to_relay
            .send(Bytes::from(frame.to_owned()))
            .await
            .expect("session gone");
    }

    /// The next frame (heart-beats skipped); `None` when the session closed.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let out = tokio::time::timeout(WAIT, self.from_relay.recv())
                .await
                .expect("timed out waiting for the gateway")?;
            let Out::Message(bytes) = out else {
                return None;
            };
            let mut buf = BytesMut::from(&bytes[..]);
            match self.decoder.decode(&mut buf).expect("a whole frame") {
                Some(Item::Frame(f)) => return Some(f),
                _ => continue,
            }
        }
    }

    async fn frame(&mut self) -> Frame {
        self.next_frame().await.expect("session closed")
    }

    /// Reads `n` MESSAGE frames; checks their subscription id and that no `ack` is asked for.
    async fn messages(&mut self, n: usize, sub_id: &str) -> Vec<String> {
        let mut bodies = Vec::with_capacity(n);
        while bodies.len() < n {
            let f = self.frame().await;
            assert_eq!(f.command, Command::Message, "{f:?}");
            assert_eq!(f.header("subscription"), Some(sub_id));
            assert_eq!(f.header("ack"), None);
            assert!(f.header("message-id").is_some());
            bodies.push(String::from_utf8_lossy(f.body()).into_owned());
        }
        bodies
    }
}

/// A gateway context with fan-out on for `issue21-*` exchanges.
fn gateway(queue: usize) -> Arc<RelayContext> {
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.fanout = vec!["/exchange/issue21-*".into()];
    config.fanout_queue = queue;
    RelayContext::new(Arc::new(config), CancellationToken::new()).expect("context")
}

fn subscribe(exchange: &str, id: &str, extra: &str) -> String {
    format!("SUBSCRIBE\nid:{id}\ndestination:/exchange/{exchange}\n{extra}\n\0")
}

/// A fresh fanout exchange, deleted when dropped.
struct Exchange(String);

impl Exchange {
    async fn new() -> Exchange {
        let name = unique("issue21-fanout");
        mgmt::put(
            &format!("exchanges/%2F/{name}"),
            r#"{"type":"fanout","durable":false,"auto_delete":false}"#,
        )
        .await;
        Exchange(name)
    }

    async fn publish(&self, bodies: impl IntoIterator<Item = String>) {
        for body in bodies {
            let json = serde_json::json!({
                "properties": {}, "routing_key": "", "payload": body, "payload_encoding": "string"
            });
            let path = format!("exchanges/%2F/{}/publish", self.0);
            let (status, text) = mgmt::call("POST", &path, &json.to_string()).await;
            assert!(
                status == 200 && text.contains("true"),
                "publish: {status} {text}"
            );
        }
    }

    /// How many bindings have this exchange as their source: one per broker subscription.
    async fn bindings(&self) -> usize {
        let path = format!("exchanges/%2F/{}/bindings/source", self.0);
        let (status, text) = mgmt::call("GET", &path, "").await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Vec<serde_json::Value>>(&text)
            .expect("json")
            .len()
    }

    /// Waits (bounded) until the exchange has `n` bindings.
    async fn await_bindings(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.bindings().await;
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{now} bindings, want {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete(self) {
        mgmt::delete(&format!("exchanges/%2F/{}", self.0)).await;
    }
}

/// The value of an unlabelled metric on the context's registry.
fn metric(ctx: &RelayContext, name: &str) -> f64 {
    let text = ctx.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits (bounded) until the members gauge reads `n`.
async fn await_members(ctx: &RelayContext, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(ctx, "stompgate_fanout_members") as usize != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "members never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bodies(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("m{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_pages_share_one_broker_subscription_and_get_every_message_in_order() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut pages = Vec::new();
    for i in 0..200 {
        let page = Page::open(&ctx, 1024).await;
        // stomp.js names every first subscription `sub-0`; others pick their own.
        let id = if i % 2 == 0 {
            "sub-0".to_string()
        } else {
            format!("page-{i}")
        };
        page.send(&subscribe(&ex.0, &id, "ack:auto\n")).await;
        pages.push((page, id));
    }
    await_members(&ctx, 200).await;
    ex.await_bindings(1).await;
    ex.publish(bodies(0, 100)).await;
    let want = bodies(0, 100);
    for (page, id) in &mut pages {
        assert_eq!(page.messages(100, id).await, want);
    }
    // One broker delivery per message, 200 copies each.
    assert_eq!(metric(&ctx, "stompgate_fanout_messages_total"), 100.0);
    assert_eq!(metric(&ctx, "stompgate_fanout_copies_total"), 20_000.0);
    assert_eq!(metric(&ctx, "stompgate_fanout_broker_connections"), 1.0);
    drop(pages);
    // The last member leaving ends the broker subscription (its queue and binding go).
    ex.await_bindings(0).await;
    await_members(&ctx, 0).await;
    assert_eq!(metric(&ctx, "stompgate_fanout_subscriptions"), 0.0);
    ex.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stops_reading_is_ended_without_delaying_the_rest() {
    let (ctx, ex) = (gateway(10), Exchange::new().await);
    // The slow page's transport holds 2 unread messages; then its member queue (10) fills.
    let mut slow = Page::open(&ctx, 4).await;
    slow.send(&subscribe(&ex.0, "sub-0", "")).await;
    let mut fast = Vec::new();
    for _ in 0..20 {
        let page = Page::open(&ctx, 1024).await;
        page.send(&subscribe(&ex.0, "sub-0", "")).await;
        fast.push(page);
    }
    await_members(&ctx, 21).await;
    ex.publish(bodies(0, 8)).await;
    for page in &mut fast {
        assert_eq!(page.messages(8, "sub-0").await, bodies(0, 8));
    }
    ex.publish(bodies(8, 60)).await;
    for page in &mut fast {
        assert_eq!(page.messages(52, "sub-0").await, bodies(8, 60));
    }
    // The slow page got what fitted, then the ERROR.
    let mut got = 0;
    let error = loop {
        let f = slow.frame().await;
        match f.command {
            Command::Message => got += 1,
            Command::Error => break f,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        error.header("message"),
        Some("too slow: 10 messages behind")
    );
    assert!(got < 60, "{got}");
    assert!(slow.next_frame().await.is_none(), "closed after the ERROR");
    let ends = ctx.metrics.render();
    assert!(
        ends.contains("stompgate_fanout_member_ends_total{reason=\"too_slow\"} 1"),
        "{ends}"
    );
    await_members(&ctx, 20).await;
    drop(fast);
    ex.await_bindings(0).await;
    ex.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_disconnect_mid_burst() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut leaver = Page::open(&ctx, 1024).await;
    let mut quitter = Page::open(&ctx, 1024).await;
    let mut stayer = Page::open(&ctx, 1024).await;
    for page in [&leaver, &quitter, &stayer] {
        page.send(&subscribe(&ex.0, "s1", "")).await;
    }
    await_members(&ctx, 3).await;
    ex.publish(bodies(0, 20)).await;
    assert_eq!(leaver.messages(5, "s1").await, bodies(0, 5));
    leaver.send("UNSUBSCRIBE\nid:s1\nreceipt:u1\n\n\0").await;
    assert_eq!(quitter.messages(5, "s1").await, bodies(0, 5));
    quitter.send("DISCONNECT\nreceipt:d1\n\n\0").await;
    ex.publish(bodies(20, 40)).await;
    // The leaver: messages up to the RECEIPT (whatever was queued before it), none after.
    let mut after = Vec::new();
    loop {
        let f = leaver.frame().await;
        if f.command == Command::Receipt {
            assert_eq!(f.header("receipt-id"), Some("u1"));
            break;
        }
        after.push(String::from_utf8_lossy(f.body()).into_owned());
    }
    assert_eq!(
        after,
        bodies(5, 5 + after.len()),
        "in order, none duplicated"
    );
    await_members(&ctx, 1).await;
    ex.publish(bodies(40, 41)).await;
    assert_eq!(stayer.messages(41, "s1").await, bodies(0, 41));
    // The quitter gets its broker RECEIPT and a close.
    loop {
        match quitter.next_frame().await {
            Some(f) if f.command == Command::Receipt => {}
            Some(f) => assert_eq!(f.command, Command::Message),
            None => break,
        }
    }
    // The leaver's session is still open and gets nothing more from the exchange.
    leaver.send("BEGIN\ntransaction:t\nreceipt:r2\n\n\0").await;
    let f = leaver.frame().await;
    assert_eq!(
        (f.command, f.header("receipt-id")),
        (Command::Receipt, Some("r2"))
    );
    drop(stayer);
    ex.await_bindings(0).await;
    ex.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_that_must_not_share_keep_their_own_broker_subscription() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut shared = Page::open(&ctx, 1024).await;
    shared.send(&subscribe(&ex.0, "sub-0", "")).await;
    await_members(&ctx, 1).await;
    ex.await_bindings(1).await;
    let cases = [
        ("ack:client\n", true),
        ("selector:a = 1\n", false),
        ("ack:client-individual\n", true),
        ("x-queue-name:issue21-named\n", false),
    ];
    let mut own = Vec::new();
    for (i, (extra, _)) in cases.iter().enumerate() {
        let page = Page::open(&ctx, 1024).await;
        page.send(&subscribe(&ex.0, "sub-0", extra)).await;
        // Each of them makes its own binding at the broker.
        ex.await_bindings(2 + i).await;
        own.push(page);
    }
    assert_eq!(metric(&ctx, "stompgate_fanout_members"), 1.0);
    ex.publish(bodies(0, 3)).await;
    assert_eq!(shared.messages(3, "sub-0").await, bodies(0, 3));
    for (page, (_, acks)) in own.iter_mut().zip(cases) {
        for want in bodies(0, 3) {
            let f = page.frame().await;
            assert_eq!(f.command, Command::Message);
            assert_eq!(f.header("subscription"), Some("sub-0"));
            assert_eq!(f.header("ack").is_some(), acks, "{f:?}");
            assert_eq!(f.body(), want.as_bytes());
        }
    }
    drop((shared, own));
    // The named queue outlives its subscriber: delete it, then every binding is gone.
    mgmt::delete("queues/%2F/issue21-named").await;
    ex.await_bindings(0).await;
    ex.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_answered_once_the_shared_broker_subscription_is_in_force() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut first = Page::open(&ctx, 1024).await;
    first.send(&subscribe(&ex.0, "a", "receipt:r1\n")).await;
    let f = first.frame().await;
    assert_eq!(
        (f.command, f.header("receipt-id")),
        (Command::Receipt, Some("r1"))
    );
    // No other wait: after the RECEIPT, a message published is delivered (as on the broker).
    ex.publish(bodies(0, 1)).await;
    assert_eq!(first.messages(1, "a").await, bodies(0, 1));
    let mut second = Page::open(&ctx, 1024).await;
    second.send(&subscribe(&ex.0, "b", "receipt:r2\n")).await;
    let f = second.frame().await;
    assert_eq!(
        (f.command, f.header("receipt-id")),
        (Command::Receipt, Some("r2"))
    );
    ex.publish(bodies(1, 2)).await;
    assert_eq!(first.messages(1, "a").await, bodies(1, 2));
    assert_eq!(second.messages(1, "b").await, bodies(1, 2));
    assert_eq!(
        ex.bindings().await,
        1,
        "both pages on one broker subscription"
    );
    drop((first, second));
    ex.await_bindings(0).await;
    ex.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_subscription_id_is_refused() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut page = Page::open(&ctx, 1024).await;
    page.send(&subscribe(&ex.0, "sub-0", "")).await;
    page.send(&subscribe(&ex.0, "sub-0", "")).await;
    let f = page.frame().await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.header("message"), Some("duplicate subscription id"));
    drop(page);
    ex.await_bindings(0).await;
    ex.delete().await;
}

mod mgmt {
    /// The same variable as the other broker-side tests'.
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
        super::common::http_exchange(addr(), &request).await
    }

    pub async fn put(path: &str, body: &str) {
        let (status, text) = call("PUT", path, body).await;
        assert!(matches!(status, 201 | 204), "PUT {path}: {status} {text}");
    }

    pub async fn delete(path: &str) {
        let _ = call("DELETE", path, "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_of_the_shared_subscription_ends_every_member_with_an_error() {
    let (ctx, ex) = (gateway(1000), Exchange::new().await);
    let mut pages = Vec::new();
    for _ in 0..3 {
        let page = Page::open(&ctx, 1024).await;
        page.send(&subscribe(&ex.0, "sub-0", "")).await;
        pages.push(page);
    }
    await_members(&ctx, 3).await;
    ex.await_bindings(1).await;
    // The broker drops the shared subscription's queue under it.
    let path = format!("exchanges/%2F/{}/bindings/source", ex.0);
    let (_, text) = mgmt::call("GET", &path, "").await;
    let bindings: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    let queue = bindings[0]["destination"]
        .as_str()
        .expect("queue name")
        .to_owned();
    mgmt::delete(&format!("queues/%2F/{}", urlencode(&queue))).await;
    for page in &mut pages {
        let f = page.frame().await;
        assert_eq!(f.command, Command::Error, "{f:?}");
        let message = f.header("message").unwrap_or_default();
        assert!(message.starts_with("broker connection lost"), "{message}");
        assert!(page.next_frame().await.is_none(), "closed after the ERROR");
    }
    await_members(&ctx, 0).await;
    assert_eq!(metric(&ctx, "stompgate_fanout_broker_connections"), 0.0);
    ex.delete().await;
}

/// Percent-encodes a queue name for a management API path.
fn urlencode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activemq_topic_pages_share_one_subscription() {
    let mut config = Config::for_tests(&common::activemq(), "admin", "admin");
    let topic = unique("issue21-amq");
    config.fanout = vec!["/topic/issue21-amq-*".into()];
    let ctx = RelayContext::new(Arc::new(config), CancellationToken::new()).expect("context");
    let mut pages = Vec::new();
    for i in 0..5 {
        let page = Page::open(&ctx, 1024).await;
        page.send(&format!(
            "SUBSCRIBE\nid:s{i}\ndestination:/topic/{topic}\n\n\0"
        ))
        .await;
        pages.push(page);
    }
    await_members(&ctx, 5).await;
    // ActiveMQ makes a topic subscription at once; the shared one needs its own round trip:
    // a receipt on the shared connection is not the page's, so wait for the gauge to settle.
    let publisher = Page::open(&ctx, 1024).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut sent = 0;
    // Publish until the first copy arrives (the shared SUBSCRIBE is then in force), then 20.
    loop {
        publisher
            .send(&format!("SEND\ndestination:/topic/{topic}\n\nwarm{sent}\0"))
            .await;
        sent += 1;
        if metric(&ctx, "stompgate_fanout_messages_total") > 0.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no copy arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        publisher
            .send(&format!("SEND\ndestination:/topic/{topic}\n\nm{i}\0"))
            .await;
    }
    for (i, page) in pages.iter_mut().enumerate() {
        // Some warm-up messages (however many reached the shared subscription), then all 20.
        let mut tail = Vec::new();
        while tail.last().map(String::as_str) != Some("m19") {
            let body = page.messages(1, &format!("s{i}")).await.remove(0);
            if !body.starts_with("warm") {
                tail.push(body);
            }
        }
        assert_eq!(tail, bodies(0, 20));
    }
    // One broker delivery per message for all five pages.
    assert_eq!(
        metric(&ctx, "stompgate_fanout_copies_total"),
        5.0 * metric(&ctx, "stompgate_fanout_messages_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_still_decides_per_session_before_a_subscribe_is_shared() {
    let dir = std::env::temp_dir().join(unique("issue21-policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = |pw: &str| {
        stompgate::policy::hash_password_with(pw.as_bytes(), stompgate::policy::test_params())
            .unwrap()
    };
    let users = format!(
        "[[user]]\nname = \"alice\"\nhash = {:?}\nroles = [\"reader\"]\n\n\
         [[user]]\nname = \"mallory\"\nhash = {:?}\nroles = [\"other\"]\n",
        hash("alice-pw-21"),
        hash("mallory-pw-21")
    );
    std::fs::write(dir.join("users.toml"), users).unwrap();
    let policy = "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n\n\
        [upstream.default]\nlogin = \"stompgate\"\npasscode = \"stompgate-secret\"\nvhost = \"/\"\n\n\
        [[acl]]\nrole = \"reader\"\naction = \"allow\"\ncommands = [\"SUBSCRIBE\"]\n\
        destination = \"/exchange/issue21-*\"\n";
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let mut config = Config::for_tests(&rabbitmq(), BROKER_LOGIN, BROKER_PASSCODE);
    config.upstream.identity = Default::default();
    config.policy = Some(dir.join("policy.toml"));
    config.fanout = vec!["/exchange/issue21-*".into()];
    let ctx = RelayContext::new(Arc::new(config), CancellationToken::new()).expect("context");
    let ex = Exchange::new().await;
    let mut alice = Page::open_as(&ctx, 1024, &connect_frame("alice", "alice-pw-21", "")).await;
    alice.send(&subscribe(&ex.0, "sub-0", "")).await;
    await_members(&ctx, 1).await;
    let mut mallory =
        Page::open_as(&ctx, 1024, &connect_frame("mallory", "mallory-pw-21", "")).await;
    mallory.send(&subscribe(&ex.0, "sub-0", "")).await;
    let f = mallory.frame().await;
    assert_eq!(f.command, Command::Error, "{f:?}");
    assert!(
        mallory.next_frame().await.is_none(),
        "closed after the refusal"
    );
    // Mallory never joined: one member, one binding, and the copies go to alice alone.
    assert_eq!(metric(&ctx, "stompgate_fanout_members"), 1.0);
    assert_eq!(ex.bindings().await, 1);
    ex.publish(bodies(0, 2)).await;
    assert_eq!(alice.messages(2, "sub-0").await, bodies(0, 2));
    assert_eq!(metric(&ctx, "stompgate_fanout_copies_total"), 2.0);
    drop(alice);
    ex.await_bindings(0).await;
    ex.delete().await;
    let _ = std::fs::remove_dir_all(&dir);
}
