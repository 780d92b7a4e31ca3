//! Authentication under attack, against the real RabbitMQ (61613, management API on 15672):
//! parallel password guessing, unauthenticated connections, token lifetime, policy reloads,
//! the admin API from other web pages, pass-through `guest`, and idle anonymous sessions.
//! Broker-side effects are checked on the broker, through a broker user of each test's own.
//! Loopback only; every wait is bounded.

#[path = "../common/mod.rs"]
mod common;
#[path = "../policy_common/mod.rs"]
mod policy_common;
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use jsonwebtoken::Algorithm;
use policy_common::{fast_hash, sign_hs, TempDir};
use stompgate::config::Secret;
use stompgate::policy::{hash_password, UpstreamIdentity};
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// One user line of a users file.
fn user(name: &str, hash: &str) -> String {
    format!("[[user]]\nname = \"{name}\"\nhash = \"{hash}\"\n")
}

/// `[[upstream.user]]` mapping `user` to a broker user of the test's own.
fn upstream_for(user: &str, broker: &BrokerUser) -> String {
    format!(
        "[[upstream.user]]\nuser = \"{user}\"\nlogin = \"{}\"\npasscode = \"{}\"\nvhost = \"/\"\n",
        broker.name, broker.password
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

const STATIC: &str = "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n";

/// 1,000 wrong passwords for one user, all at once, from one address: exactly `burst` are
/// checked, the rest refused unchecked; the gateway's memory stays flat (argon2 at its real
/// cost); another user at the same address still gets in; and an unauthenticated connection
/// costs the gateway little.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_logins_hold_to_the_burst_in_bounded_memory() {
    const GUESSES: usize = 1000;
    const IDLE: usize = 500;
    let broker = BrokerUser::create("limiter").await;
    let dir = TempDir::new();
    let (alice_pw, bob_pw) = ("alice-right-pw", "bob-right-pw");
    let users = [
        user("alice", &hash_password(alice_pw.as_bytes()).unwrap()),
        user("bob", &hash_password(bob_pw.as_bytes()).unwrap()),
    ];
    dir.write("users.toml", users.concat());
    let policy = format!(
        "{STATIC}[login_limit]\nburst = 10\nrefill_every = \"1h\"\naddress_burst = 100\n\
         address_refill_every = \"1h\"\n[upstream.default]\nlogin = \"{}\"\npasscode = \"{}\"\n",
        broker.name, broker.password
    );
    let path = dir.write("policy.toml", policy);
    let gw = Child::start(&[
        "--policy",
        path.to_str().unwrap(),
        "--upstream",
        &common::rabbitmq(),
        // The limiter, not the pending cap, is what this test is about.
        "--max-pending-per-address",
        "5000",
        "--connect-timeout",
        "60s",
        // Two argon2 working memories (~19 MiB each), whatever this machine's CPU count.
        "--login-threads",
        "2",
    ])
    .await;
    let addr = gw.addr;
    // What an unauthenticated connection costs: open many on the fresh gateway, send nothing.
    let before = gw.status_kib("VmRSS");
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(open_ws(gw.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = gw.status_kib("VmRSS");
    let per_conn = (after.saturating_sub(before) * 1024) as f64 / IDLE as f64;
    println!("{IDLE} unauthenticated connections: {per_conn:.0} bytes each (RSS {before} -> {after} KiB)");
    assert!(per_conn <= 64.0 * 1024.0, "{per_conn:.0} bytes each");
    drop(idle);

    // 50 clients each sending a 4 MiB CONNECT: each is cut off after 64 KiB.
    let before = gw.status_kib("VmRSS");
    let big: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut ws = open_ws(addr).await;
                let body = "b".repeat(4 << 20);
                let _ = ws
                    .send(Message::text(format!("CONNECT\nlogin:x\n\n{body}\0")))
                    .await;
                next_frame(&mut ws).await.unwrap_or_default()
            })
        })
        .collect();
    for t in big {
        let answer = t.await.unwrap();
        assert_error(&answer, "too much data before the CONNECT was accepted");
    }
    let peak = gw.status_kib("VmHWM");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!("50 clients sending 4 MiB CONNECTs: RSS {before} KiB before, peak {peak} KiB ({growth_mib:.1} MiB)");
    assert!(growth_mib <= 32.0, "RSS grew {growth_mib:.1} MiB");

    let before = gw.status_kib("VmRSS");
    let (mut ws, answer) = connect_answer(gw.addr, &connect("bob", bob_pw, "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    send(&mut ws, "DISCONNECT\n\n\0").await;
    await_close(&mut ws).await;

    let tasks: Vec<_> = (0..GUESSES)
        .map(|_| {
            tokio::spawn(async move {
                let frame = connect("alice", "a-wrong-guess", "0,0");
                let (_ws, answer) = connect_answer(addr, &frame).await;
                header(&answer, "message").unwrap_or(answer)
            })
        })
        .collect();
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        *answers.entry(t.await.unwrap()).or_default() += 1;
    }
    let peak = gw.status_kib("VmHWM");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!("{GUESSES} parallel wrong logins: {answers:?}");
    println!("gateway RSS {before} KiB before, peak {peak} KiB: growth {growth_mib:.1} MiB");
    let bad = "authentication failed: bad credentials";
    let limited = "authentication failed: too many failed attempts, try again later";
    assert_eq!(
        answers.get(bad),
        Some(&10),
        "exactly the burst is checked: {answers:?}"
    );
    assert_eq!(answers.get(limited), Some(&(GUESSES - 10)), "{answers:?}");
    assert!(growth_mib <= 64.0, "RSS grew {growth_mib:.1} MiB");

    // Bob, at the same address, still gets in; Alice, whose password was being guessed, waits.
    let (_bob, answer) = connect_answer(gw.addr, &connect("bob", bob_pw, "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    let (_alice, answer) = connect_answer(gw.addr, &connect("alice", alice_pw, "0,0")).await;
    assert_error(&answer, limited);
    broker.await_connections(1).await;
}

/// Unauthenticated connections are capped per address (WebSocket here; SockJS sessions take
/// the same places), and a CONNECT is capped in size before login.
#[tokio::test]
async fn unauthenticated_connections_are_capped_per_address() {
    let broker = BrokerUser::create("pending").await;
    let mut c = config(None);
    c.upstream.identity = UpstreamIdentity {
        login: Some(broker.name.clone()),
        passcode: Some(Secret::new(broker.password.clone())),
        host: Some("/".into()),
    };
    c.max_pending_per_address = 3;
    let gw = start(c).await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(open_ws(gw.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = open_ws(gw.addr).await;
    let refusal = next_frame(&mut fourth).await.expect("an ERROR");
    assert_error(
        &refusal,
        "too many unauthenticated connections from this address; try again later",
    );
    // One of the three logs in: its place frees, and a new connection gets in.
    send(&mut waiting[0], &connect("x", "y", "0,0")).await;
    assert!(next_frame(&mut waiting[0])
        .await
        .unwrap()
        .starts_with("CONNECTED"));
    let (_ws, answer) = connect_answer(gw.addr, &connect("x", "y", "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    // A CONNECT with 40 KiB of headers (over the 24 KiB allowed before login) is refused.
    let big = format!(
        "CONNECT\naccept-version:1.2\nx-padding:{}\n\n\0",
        "p".repeat(40 * 1024)
    );
    let (_ws, answer) = connect_answer(gw.addr, &big).await;
    assert!(answer.starts_with("ERROR"), "{answer}");
    assert!(header(&answer, "message")
        .unwrap()
        .starts_with("malformed frame"));
    // One 1 MiB WebSocket message: the socket stops being read past 64 KiB, long before the
    // message is whole (the codec would otherwise buffer all of it).
    let mut ws = open_ws(gw.addr).await;
    let huge = format!("CONNECT\naccept-version:1.2\n\n{}", "b".repeat(1 << 20));
    let _ = ws.send(Message::text(huge)).await;
    let answer = next_frame(&mut ws).await.expect("an ERROR");
    assert_error(&answer, "too much data before the CONNECT was accepted");
    broker.await_connections(2).await;
    drop(waiting);
}

/// A session whose JWT expires is closed at `exp` + leeway with `token expired`, and its
/// broker connection with it.
#[tokio::test]
async fn a_session_ends_when_its_token_expires() {
    let broker = BrokerUser::create("jwt").await;
    let dir = TempDir::new();
    let secret = "issue18-jwt-secret-of-at-least-32-bytes";
    dir.write("hs256.secret", secret);
    let policy = format!(
        "[[auth]]\ntype = \"jwt\"\nleeway = \"1s\"\nsources = {{ passcode = true }}\n\
         [[auth.key]]\nalg = \"HS256\"\nsecret_file = \"hs256.secret\"\n{}",
        upstream_for("alice", &broker)
    );
    let path = dir.write("policy.toml", policy);
    let gw = start(config(Some(&path))).await;
    let exp = unix_now().ceil() as u64 + 5;
    let token = sign_hs(
        Algorithm::HS256,
        secret.as_bytes(),
        &serde_json::json!({"sub": "alice", "exp": exp}),
    );
    let (mut ws, answer) = connect_answer(gw.addr, &connect("alice", &token, "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    broker.await_connections(1).await;
    let frame = tokio::time::timeout(Duration::from_secs(15), next_frame(&mut ws))
        .await
        .expect("the session ends")
        .expect("with an ERROR");
    let at = unix_now();
    let (leeway, end) = (1.0, exp as f64 + 1.0);
    println!(
        "token exp {exp}, leeway {leeway}s: ERROR at {:.2}s past exp",
        at - exp as f64
    );
    assert_error(&frame, "authentication failed: token expired");
    assert!(
        at >= end - 0.05 && at <= end + 1.0,
        "closed at {at}, exp+leeway {end}"
    );
    await_close(&mut ws).await;
    broker.await_connections(0).await;
    // A token that expired a day ago is refused outright, even with `require_exp = false`.
    let old = sign_hs(
        Algorithm::HS256,
        secret.as_bytes(),
        &serde_json::json!({"sub": "alice", "exp": exp - 86_400}),
    );
    dir.write(
        "policy.toml",
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("leeway = \"1s\"", "leeway = \"1s\"\nrequire_exp = false"),
    );
    stompgate::reload::reload_policy_now(&gw.ctx).await;
    let (_ws, answer) = connect_answer(gw.addr, &connect("alice", &old, "0,0")).await;
    assert_error(&answer, "authentication failed: token expired");
}

/// A reload that removes a user closes that user's sessions (and their broker connections);
/// other users' sessions go on.
#[tokio::test]
async fn a_reload_that_removes_a_user_closes_its_sessions() {
    let (alice_broker, bob_broker) = (
        BrokerUser::create("reload-a").await,
        BrokerUser::create("reload-b").await,
    );
    let dir = TempDir::new();
    let (alice, bob) = (
        user("alice", &fast_hash("a-pw")),
        user("bob", &fast_hash("b-pw")),
    );
    dir.write("users.toml", format!("{alice}{bob}"));
    let policy = format!(
        "{STATIC}{}{}",
        upstream_for("alice", &alice_broker),
        upstream_for("bob", &bob_broker)
    );
    let path = dir.write("policy.toml", policy);
    let gw = start(config(Some(&path))).await;
    let (mut a, answer) = connect_answer(gw.addr, &connect("alice", "a-pw", "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    let (mut b, answer) = connect_answer(gw.addr, &connect("bob", "b-pw", "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    alice_broker.await_connections(1).await;
    bob_broker.await_connections(1).await;

    dir.write("users.toml", &bob);
    stompgate::reload::reload_policy_now(&gw.ctx).await;
    let frame = next_frame(&mut a).await.expect("an ERROR");
    assert_error(&frame, "authentication failed: user removed");
    await_close(&mut a).await;
    alice_broker.await_connections(0).await;

    let q = common::unique("/queue/issue18-reload");
    send(
        &mut b,
        &format!("SUBSCRIBE\nid:s\ndestination:{q}\nreceipt:r\n\n\0"),
    )
    .await;
    assert!(next_frame(&mut b).await.unwrap().starts_with("RECEIPT"));
    send(&mut b, &format!("SEND\ndestination:{q}\n\nstill here\0")).await;
    let msg = next_frame(&mut b).await.unwrap();
    assert!(
        msg.starts_with("MESSAGE") && msg.ends_with("still here\0"),
        "{msg}"
    );
    assert_eq!(bob_broker.connections().await, 1);
}

/// One raw admin request: status.
async fn admin(gw: &Gw, head: &str, body: &str) -> u16 {
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    common::http_exchange(gw.admin, &req).await.0
}

/// What another web page can make the operator's browser send is refused, and starts nothing.
#[tokio::test]
async fn cross_origin_admin_requests_are_refused() {
    let mut c = config(None);
    c.upstream.identity.login = Some("stompgate".into());
    c.admin_token = Some(Secret::new("adm1n"));
    let gw = start(c).await;
    let trace = r#"{"user":"alice","duration_secs":3600}"#;
    let host = format!("Host: {}", gw.admin);
    let page = "Origin: https://evil.example";
    let cases = [
        // A form or `fetch(..., {mode: "no-cors"})`: text/plain, no token.
        (format!("POST /trace HTTP/1.1\r\n{host}\r\n{page}\r\nContent-Type: text/plain"), 401),
        // Even with the token (leaked, or a browser extension), an Origin is refused.
        (format!("POST /trace HTTP/1.1\r\n{host}\r\n{page}\r\nAuthorization: Bearer adm1n\r\nContent-Type: application/json"), 403),
        // DNS rebinding: the page's own name in Host.
        ("POST /trace HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer adm1n\r\nContent-Type: application/json".to_owned(), 403),
        ("GET /connections HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer adm1n".to_owned(), 403),
        // With the token, but not JSON.
        (format!("POST /trace HTTP/1.1\r\n{host}\r\nAuthorization: Bearer adm1n\r\nContent-Type: text/plain"), 415),
    ];
    for (head, want) in &cases {
        assert_eq!(admin(&gw, head, trace).await, *want, "{head}");
        assert!(
            !gw.ctx.metrics.tracer().is_active(),
            "{head} started a trace"
        );
    }
    let refused = |reason: &str| {
        let f = gw.ctx.metrics.families();
        f.admin_refused.with_label_values(&[reason]).get()
    };
    let counted = ["unauthorized", "origin", "host", "content_type"].map(refused);
    assert_eq!(
        counted,
        [1, 1, 2, 1],
        "each refusal counted with its reason"
    );
    let ok = format!("POST /trace HTTP/1.1\r\n{host}\r\nAuthorization: Bearer adm1n\r\nContent-Type: application/json");
    assert_eq!(admin(&gw, &ok, trace).await, 200);
    assert!(gw.ctx.metrics.tracer().is_active());

    // Without a configured token, nothing changes state at all (GETs still answer).
    let mut c = config(None);
    c.upstream.identity.login = Some("stompgate".into());
    let open = start(c).await;
    let post = format!(
        "POST /trace HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json",
        open.admin
    );
    assert_eq!(admin(&open, &post, trace).await, 403);
    assert!(!open.ctx.metrics.tracer().is_active());
    let get = format!("GET /metrics HTTP/1.1\r\nHost: {}", open.admin);
    assert_eq!(admin(&open, &get, "").await, 200);
}

/// Pass-through never lets a browser be RabbitMQ's `guest` (which the broker allows over the
/// gateway's loopback link): refused before any broker connection is made.
#[tokio::test]
async fn passthrough_refuses_guest() {
    let broker = BrokerUser::create("passthrough").await;
    let mut c = config(None);
    c.upstream.identity = UpstreamIdentity::default();
    c.upstream.passthrough = true;
    let gw = start(c).await;
    let guests_before = broker_connections("guest").await;
    for login in ["guest", "Guest"] {
        let (mut ws, answer) = connect_answer(gw.addr, &connect(login, "guest", "0,0")).await;
        assert_error(
            &answer,
            "authentication failed: this broker login is not allowed",
        );
        await_close(&mut ws).await;
    }
    let dialed = gw
        .ctx
        .metrics
        .families()
        .upstream_connect
        .get_sample_count();
    assert_eq!(dialed, 0, "no broker connection was even attempted");
    assert_eq!(broker_connections("guest").await, guests_before);
    // Any other login passes through, to the broker that decides.
    let (_ws, answer) =
        connect_answer(gw.addr, &connect(&broker.name, &broker.password, "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    broker.await_connections(1).await;
}

/// A static-mode session that negotiated no heart-beats and goes quiet is closed at its idle
/// limit, and its broker connection with it.
#[tokio::test]
async fn an_idle_session_without_heartbeats_is_closed() {
    let broker = BrokerUser::create("idle").await;
    let mut c = config(None);
    c.upstream.identity = UpstreamIdentity {
        login: Some(broker.name.clone()),
        passcode: Some(Secret::new(broker.password.clone())),
        host: Some("/".into()),
    };
    c.idle_timeout = Some(Duration::from_secs(2));
    let gw = start(c).await;
    let (mut ws, answer) = connect_answer(gw.addr, &connect("anyone", "x", "0,0")).await;
    assert!(answer.starts_with("CONNECTED"), "{answer}");
    assert!(answer.contains("heart-beat:0,0"), "{answer}");
    // Activity keeps it alive: heart-beat EOLs every 250 ms while the broker is polled.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while broker.connections().await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker never showed the session"
        );
        send(&mut ws, "\n").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    send(&mut ws, "\n").await;
    let last_byte = std::time::Instant::now();
    let frame = next_frame(&mut ws).await.expect("an ERROR");
    let after = last_byte.elapsed();
    println!("idle session closed {after:?} after the client's last byte (limit 2 s)");
    assert_error(&frame, "idle timeout: nothing received from the client");
    assert!(
        after >= Duration::from_millis(1900) && after <= Duration::from_secs(3),
        "{after:?}"
    );
    await_close(&mut ws).await;
    broker.await_connections(0).await;
}
