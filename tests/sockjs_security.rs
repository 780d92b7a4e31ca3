//! Issue 17 through a real gateway (in process, 127.0.0.1:0) and RabbitMQ: a SockJS session
//! cannot be taken over with the victim's cookie (checked on the victim's stream, in the
//! gateway's metrics and on the broker), and the plain WebSocket endpoint closes with the full
//! closing handshake. The flood is in `sockjs_flood.rs`.

mod common;
mod policy_common;
mod sockjs_support;

use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use common::unique;
use policy_common::{claims, sign_hs, users_toml, TempDir};
use sockjs_support::*;

/// With a cookie backend, a page on another site cannot open or use a session with the
/// victim's cookie, and a client without the cookie cannot reach the victim's session.
#[tokio::test]
async fn takeover_with_the_victims_cookie_is_refused_and_the_victim_is_unaffected() {
    let key = "issue17-hs256-secret-0123456789-abcdef";
    let dir = TempDir::new();
    dir.write("hs256.secret", key);
    let policy = dir.write(
        "policy.toml",
        "[[auth]]\ntype = \"jwt\"\nissuer = \"https://idp.test\"\naudience = \"stompgate\"\n\
         sources = { cookie = \"sg_token\" }\n[[auth.key]]\nalg = \"HS256\"\n\
         secret_file = \"hs256.secret\"\n[upstream.default]\nlogin = \"stompgate\"\n\
         passcode = \"stompgate-secret\"\nvhost = \"/\"\n",
    );
    let mut config = base_config();
    config.policy = Some(policy);
    config.allowed_origins = vec![APP.to_owned()];
    let gw = start(config, Some(dir)).await;
    let cookie = format!(
        "theme=dark; sg_token={}",
        sign_hs(Algorithm::HS256, key.as_bytes(), &claims("victim"))
    );
    let victim_h = [("Origin", APP), ("Cookie", cookie.as_str())];

    // The victim opens a session and subscribes.
    let queue = unique("issue17-takeover");
    let url = "/sockjs/000/victim01";
    assert_eq!(
        http(
            "127.0.0.1",
            gw.addr,
            &format!("POST {url}/xhr"),
            &victim_h,
            ""
        )
        .await
        .1,
        "o\n"
    );
    let sub =
        format!("SUBSCRIBE\nid:s1\ndestination:/queue/{queue}\nauto-delete:true\nreceipt:r1\n\n\0");
    let body = send_body(&[connect_frame(), sub]);
    let (status, _) = http(
        "127.0.0.1",
        gw.addr,
        &format!("POST {url}/xhr_send"),
        &victim_h,
        &body,
    )
    .await;
    assert_eq!(status, 204);
    poll_until(&gw, url, &victim_h, "receipt-id:r1").await;

    // A page on another site, with the victim's cookie: no Origin-less transport, no iframe,
    // no Origin-less or foreign-origin request.
    let cross = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    for path in [
        "/sockjs/000/attack01/jsonp?c=x",
        "/sockjs/000/victim01/jsonp?c=x",
        "/sockjs/000/attack01/htmlfile?c=x",
        "/sockjs/iframe.html",
    ] {
        assert_eq!(
            http("127.0.0.1", gw.addr, &format!("GET {path}"), &cross, "")
                .await
                .0,
            404,
            "{path}"
        );
    }
    let attack = send_body(&[
        connect_frame(),
        format!("SUBSCRIBE\nid:x\ndestination:/queue/{queue}\n\n\0"),
    ]);
    assert_eq!(
        http(
            "127.0.0.1",
            gw.addr,
            "GET /sockjs/000/attack02/eventsource",
            &cross,
            ""
        )
        .await
        .0,
        403
    );
    assert_eq!(
        http(
            "127.0.0.1",
            gw.addr,
            &format!("POST {url}/xhr_send"),
            &cross,
            &attack
        )
        .await
        .0,
        403
    );
    assert_eq!(
        http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &cross, "")
            .await
            .0,
        403
    );
    let evil = [("Origin", "http://evil.test"), ("Cookie", cookie.as_str())];
    assert_eq!(
        http(
            "127.0.0.1",
            gw.addr,
            "POST /sockjs/000/attack03/xhr",
            &evil,
            ""
        )
        .await
        .0,
        403
    );
    assert_eq!(
        http(
            "127.0.0.1",
            gw.addr,
            &format!("POST {url}/xhr_send"),
            &evil,
            &attack
        )
        .await
        .0,
        403
    );

    // A client that knows the session id but not the cookie (or has another one) finds nothing.
    let other = format!(
        "sg_token={}",
        sign_hs(Algorithm::HS256, key.as_bytes(), &claims("mallory"))
    );
    for h in [
        vec![("Origin", APP)],
        vec![("Origin", APP), ("Cookie", other.as_str())],
    ] {
        assert_eq!(
            http(
                "127.0.0.1",
                gw.addr,
                &format!("POST {url}/xhr_send"),
                &h,
                &attack
            )
            .await
            .0,
            404
        );
        assert_eq!(
            http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &h, "")
                .await
                .0,
            404
        );
    }

    // The victim's session saw none of it and still works; the broker has its one consumer:
    // with another one, RabbitMQ would hand it every other message.
    let sends: Vec<String> = (0..4)
        .map(|i| format!("SEND\ndestination:/queue/{queue}\n\nstill mine {i}\0"))
        .collect();
    let (status, _) = http(
        "127.0.0.1",
        gw.addr,
        &format!("POST {url}/xhr_send"),
        &victim_h,
        &send_body(&sends),
    )
    .await;
    assert_eq!(status, 204);
    let mut seen = String::new();
    for i in 0..4 {
        let needle = format!("still mine {i}");
        if !seen.contains(&needle) {
            seen.push_str(&poll_until(&gw, url, &victim_h, &needle).await);
        }
    }
    assert!(!seen.contains("ERROR"), "{seen}");
    // The management API may take several seconds to show the consumer; the victim keeps a
    // receiving request open meanwhile, or SockJS would end its idle session (and RabbitMQ
    // delete the auto-delete queue) before the count arrives.
    let keep_alive = async {
        loop {
            http(
                "127.0.0.1",
                gw.addr,
                &format!("POST {url}/xhr"),
                &victim_h,
                "",
            )
            .await;
        }
    };
    let consumers = tokio::select! {
        n = queue_consumers(&queue) => n,
        never = keep_alive => never,
    };
    assert_eq!(consumers, 1, "the attacker's SUBSCRIBE reached nothing");
    let refused = |r: &str| format!("stompgate_sessions_refused_total{{reason=\"{r}\"}}");
    assert!(metric(&gw, &refused("sockjs_origin")).await >= 5.0);
    assert!(metric(&gw, &refused("sockjs_binding")).await >= 4.0);
    let jsonp = "stompgate_connections_opened_total{transport=\"sockjs-jsonp\"}";
    assert_eq!(metric(&gw, jsonp).await, 0.0);

    // The same-origin exception: a browser's own-origin `eventsource` carries no Origin.
    let same = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let mut tcp = connect_from("127.0.0.1", gw.addr).await;
    let req = format!("GET /sockjs/000/sameorig/eventsource HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nSec-Fetch-Site: {}\r\n\r\n", same[0].1, same[1].1);
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// With HTTP Basic the same holds (a browser sends cached Basic credentials by itself): the
/// Origin-less transports are off, and a session answers only its creator's `Authorization`.
/// `sockjs_originless_transports` turns them back on explicitly.
#[tokio::test]
async fn http_basic_binds_sessions_and_the_override_restores_originless_transports() {
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("alice", "pw-a", &[], ""), ("bob", "pw-b", &[], "")]),
    );
    let policy = dir.write(
        "policy.toml",
        "[[auth]]\ntype = \"http-basic\"\nusers_file = \"users.toml\"\n\
         [upstream.default]\nlogin = \"stompgate\"\npasscode = \"stompgate-secret\"\nvhost = \"/\"\n",
    );
    let mut config = base_config();
    config.policy = Some(policy.clone());
    let gw = start(config, Some(dir)).await;
    let alice = [("Origin", APP), ("Authorization", "Basic YWxpY2U6cHctYQ==")];
    let bob = [("Origin", APP), ("Authorization", "Basic Ym9iOnB3LWI=")];
    let jsonp = "GET /sockjs/000/basic01/jsonp?c=x";
    assert_eq!(http("127.0.0.1", gw.addr, jsonp, &alice, "").await.0, 404);
    let url = "/sockjs/000/basic02";
    let (status, body) = http("127.0.0.1", gw.addr, &format!("POST {url}/xhr"), &alice, "").await;
    assert_eq!((status, body.as_str()), (200, "o\n"));
    let send = format!("POST {url}/xhr_send");
    let connect = send_body(&[connect_frame()]);
    assert_eq!(
        http("127.0.0.1", gw.addr, &send, &bob, &connect).await.0,
        404
    );
    assert_eq!(
        http("127.0.0.1", gw.addr, &send, &alice, &connect).await.0,
        204
    );
    poll_until(&gw, url, &alice, "CONNECTED").await;

    let mut config = base_config();
    config.policy = Some(policy);
    config.sockjs.originless_transports = true;
    let open = start(config, None).await;
    let (status, body) = http("127.0.0.1", open.addr, jsonp, &alice[1..], "").await;
    assert_eq!((status, body.as_str()), (200, "/**/x(\"o\");\r\n"));
}

/// The plain `/ws` endpoint: a close the gateway starts (no CONNECT in time) sends ERROR and
/// Close, keeps TCP open until the client's Close, then drops it.
#[tokio::test]
async fn ws_endpoint_close_waits_for_the_clients_close() {
    let mut config = base_config();
    config.connect_timeout = Duration::from_millis(200);
    let gw = start(config, None).await;
    let mut tcp = ws_open_from("127.0.0.1", gw.addr).await;
    let (op, error) = ws_frame(&mut tcp).await;
    assert!(op == 1 && error.starts_with(b"ERROR"), "{op} {error:?}");
    let (op, _) = ws_frame(&mut tcp).await;
    assert_eq!(op, 8, "Close");
    let mut b = [0u8; 1];
    let early = timeout(Duration::from_millis(500), tcp.read(&mut b)).await;
    assert!(
        early.is_err(),
        "TCP closed before the client's Close: {early:?}"
    );
    tcp.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])
        .await
        .unwrap();
    let n = timeout(WAIT, tcp.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "EOF once both Close frames are out");
}
