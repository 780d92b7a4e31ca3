//! SockJS protocol tests against the example echo server (`examples/sockjs_echo.rs`) and a
//! short-timer service, in process on 127.0.0.1:0: the static endpoints, every transport's
//! framing, sessions (2010, close, heartbeat, expiry, abort), limits, CORS and cookies.

#[path = "../examples/sockjs_echo.rs"]
mod echo;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use stompgate::transport::sockjs::{Sockjs, SockjsOptions, SockjsRx, SockjsTx};
use stompgate::transport::{ClientLink, ClientRx, ClientTx};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

async fn start(services: Vec<Arc<Sockjs>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, services));
    addr
}

async fn start_echo() -> SocketAddr {
    start(echo::services()).await
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    buf: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body.
    async fn text(mut self) -> String {
        while self.chunk().await {}
        String::from_utf8(self.buf).unwrap()
    }

    /// Reads one more chunk into the buffer; false at the end.
    async fn chunk(&mut self) -> bool {
        match timeout(WAIT, self.body.frame())
            .await
            .expect("body stalled")
        {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    self.buf.extend_from_slice(&d);
                }
                true
            }
            _ => false,
        }
    }

    /// Everything up to and including `needle`, consumed from the stream.
    async fn until(&mut self, needle: &str) -> String {
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if let Some(i) = text.find(needle) {
                let end = i + needle.len();
                let out = text[..end].to_owned();
                self.buf.drain(..end);
                return out;
            }
            assert!(
                self.chunk().await,
                "stream ended before {needle:?}; got {text:?}"
            );
        }
    }

    /// Whether the body ends (with nothing more than what is buffered).
    async fn ends(&mut self) -> bool {
        while self.chunk().await {}
        true
    }
}

async fn req(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let request = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = res.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
        buf: Vec::new(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Resp {
    req(addr, Method::GET, path, &[], "").await
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    req(addr, Method::POST, path, &[], body).await
}

fn sid() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("s{}", N.fetch_add(1, Ordering::Relaxed))
}

const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

#[tokio::test]
async fn greeting_and_not_found() {
    let a = start_echo().await;
    for p in ["/echo", "/echo/"] {
        let r = get(a, p).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
        assert!(r.header("set-cookie").is_none());
        assert_eq!(r.text().await, "Welcome to SockJS!\n");
    }
    for p in [
        "/echo/a",
        "/echo/a.html",
        "/echo//",
        "/echo///",
        "/echo/a/a",
        "/echo/a/a/",
    ] {
        assert_eq!(get(a, p).await.status, 404, "{p}");
    }
    for p in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
        assert_eq!(
            post(a, &format!("/echo{p}/xhr"), "").await.status,
            404,
            "{p}"
        );
    }
}

#[tokio::test]
async fn info_and_options() {
    let a = start_echo().await;
    let r = req(
        a,
        Method::GET,
        "/echo/info",
        &[("origin", "http://x.test")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://x.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("set-cookie").is_none());
    let v: serde_json::Value = serde_json::from_str(&r.text().await).unwrap();
    assert_eq!(v["websocket"], true);
    assert_eq!(v["cookie_needed"], false);
    assert_eq!(v["origins"], serde_json::json!(["*:*"]));
    let e2: serde_json::Value =
        serde_json::from_str(&get(a, "/echo/info").await.text().await).unwrap();
    assert_ne!(v["entropy"], e2["entropy"]);

    let off: serde_json::Value =
        serde_json::from_str(&get(a, "/disabled_websocket_echo/info").await.text().await).unwrap();
    assert_eq!(off["websocket"], false);
    let ck: serde_json::Value =
        serde_json::from_str(&get(a, "/cookie_needed_echo/info").await.text().await).unwrap();
    assert_eq!(ck["cookie_needed"], true);

    for (path, methods) in [
        ("/echo/info", "OPTIONS, GET"),
        ("/echo/abc/abc/xhr", "OPTIONS, POST"),
        ("/echo/abc/abc/xhr_send", "OPTIONS, POST"),
        ("/echo/abc/abc/xhr_streaming", "OPTIONS, POST"),
    ] {
        let r = req(a, Method::OPTIONS, path, &[("origin", "null")], "").await;
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("access-control-allow-methods"), Some(methods));
        assert!(r
            .header("cache-control")
            .unwrap()
            .contains("public, max-age=31536000"));
        assert!(r.header("expires").is_some());
        assert!(
            r.header("access-control-max-age")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_000_000
        );
        // `null` is echoed with credentials, as sockjs-node does (no allowlist here).
        assert_eq!(r.header("access-control-allow-origin"), Some("null"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.text().await, "");
    }
}

#[tokio::test]
async fn iframe_is_cacheable_with_etag() {
    let a = start_echo().await;
    let r = get(a, "/echo/iframe-0.1.2abc-dirty.2144.html?t=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    assert!(r
        .header("cache-control")
        .unwrap()
        .contains("max-age=31536000"));
    assert!(r.header("last-modified").is_none());
    let etag = r.header("etag").unwrap().to_owned();
    let body = r.text().await;
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains("SockJS.bootstrap_iframe();"));
    let r = req(
        a,
        Method::GET,
        "/echo/iframe.html",
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.header("content-type").is_none());
    assert_eq!(r.text().await, "");
    for bad in [
        "/echo/iframe.htm",
        "/echo/IFRAME.HTML",
        "/echo/iframe-/.html",
    ] {
        assert_eq!(get(a, bad).await.status, 404);
    }
}

#[tokio::test]
async fn xhr_polling_session() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}", sid());
    let r = post(a, &format!("{url}/xhr"), "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.text().await, "o\n");

    let r = post(a, &format!("{url}/xhr_send"), r#"["a","b\u0000"]"#).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    assert_eq!(r.text().await, "");
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "a[\"a\",\"b\\u0000\"]\n"
    );

    let r = post(a, &format!("{url}/xhr_send"), r#"["x"#).await;
    assert_eq!(r.status, 500);
    assert!(r.text().await.contains("Broken JSON encoding."));
    let r = post(a, &format!("{url}/xhr_send"), "").await;
    assert_eq!(r.status, 500);
    assert!(r.text().await.contains("Payload expected."));

    assert_eq!(
        post(a, "/echo/000/no_such_session/xhr_send", r#"["a"]"#)
            .await
            .status,
        404
    );
    assert_eq!(get(a, &format!("{url}/xhr")).await.status, 405);
}

/// `post(...).await_text()` shorthand for a one-shot POST whose body is read whole.
trait PostText {
    async fn await_text(self) -> String;
}

impl<F: std::future::Future<Output = Resp>> PostText for F {
    async fn await_text(self) -> String {
        self.await.text().await
    }
}

fn post_empty(a: SocketAddr, path: &str) -> impl std::future::Future<Output = Resp> + '_ {
    let path = path.to_owned();
    async move { post(a, &path, "").await }
}

#[tokio::test]
async fn second_receiver_gets_2010_and_abort_closes_session() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}", sid());
    let mut r1 = post(a, &format!("{url}/xhr_streaming"), "").await;
    r1.until("o\n").await;
    let r2 = post_empty(a, &format!("{url}/xhr_streaming"))
        .await_text()
        .await;
    assert!(
        r2.ends_with("c[2010,\"Another connection still open\"]\n"),
        "{r2}"
    );
    assert!(r2.starts_with(&"h".repeat(2048)));
    drop(r1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r3 = post_empty(a, &format!("{url}/xhr")).await_text().await;
    assert_eq!(r3, "c[1002,\"Connection interrupted\"]\n");
}

#[tokio::test]
async fn close_service_serves_close_frame_repeatedly() {
    let a = start_echo().await;
    let url = format!("/close/000/{}", sid());
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "o\n"
    );
    for _ in 0..2 {
        let body = post_empty(a, &format!("{url}/xhr")).await_text().await;
        assert_eq!(body, "c[3000,\"Go away!\"]\n");
    }
    let jsonp = get(a, &format!("/close/000/{}/jsonp?c=x", sid()))
        .await
        .text()
        .await;
    assert_eq!(jsonp, "/**/x(\"o\");\r\n");
}

#[tokio::test]
async fn xhr_streaming_frames_and_response_limit() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}", sid());
    let mut r = post(a, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(r.until("\n").await, format!("{}\n", "h".repeat(2048)));
    assert_eq!(r.until("\n").await, "o\n");
    let msg = format!("\"{}\"", "x".repeat(128));
    for i in 0..31 {
        let s = post(a, &format!("{url}/xhr_send"), &format!("[{msg}]")).await;
        assert_eq!(s.status, 204);
        assert_eq!(r.until("\n").await, format!("a[{msg}]\n"), "message {i}");
    }
    // 2 + 31 * 134 bytes of frames passed the 4096-byte limit: the response ends.
    assert!(r.ends().await);
    assert!(r.buf.is_empty());
}

#[tokio::test]
async fn eventsource_htmlfile_and_jsonp_framing() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}", sid());
    let mut r = get(a, &format!("{url}/eventsource")).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.until("\r\n").await, "\r\n");
    assert_eq!(r.until("\r\n\r\n").await, "data: o\r\n\r\n");
    post(a, &format!("{url}/xhr_send"), r#"["  \u0000\n\r "]"#).await;
    assert_eq!(
        r.until("\r\n\r\n").await,
        "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
    );

    let url = format!("/echo/000/{}", sid());
    let mut r = get(a, &format!("{url}/htmlfile?c=%63allback")).await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    let head = r.until("\r\n\r\n").await;
    assert!(head.len() > 1024 && head.contains("var c = parent.callback;"));
    assert_eq!(r.until("\r\n").await, "<script>\np(\"o\");\n</script>\r\n");
    post(a, &format!("{url}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(
        r.until("\r\n").await,
        "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
    );

    for t in ["htmlfile", "jsonp"] {
        let r = get(a, &format!("/echo/a/a/{t}")).await;
        assert_eq!(r.status, 500);
        assert!(r.text().await.contains("\"callback\" parameter required"));
        assert_eq!(get(a, &format!("/echo/a/b/{t}?c=a(1)")).await.status, 500);
    }

    let url = format!("/echo/000/{}", sid());
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text().await,
        "/**/x(\"o\");\r\n"
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = req(
        a,
        Method::POST,
        &format!("{url}/jsonp_send"),
        &form,
        "d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text().await, "ok");
    for bad in ["", "d=", "p=p"] {
        let r = req(a, Method::POST, &format!("{url}/jsonp_send"), &form, bad).await;
        assert_eq!(r.status, 500);
        assert!(r.text().await.contains("Payload expected."));
    }
    let r = req(
        a,
        Method::POST,
        &format!("{url}/jsonp_send"),
        &[],
        r#"["%61bc"]"#,
    )
    .await;
    assert_eq!(r.text().await, "ok");
    let body = get(a, &format!("{url}/jsonp?c=x")).await.text().await;
    assert_eq!(body, "/**/x(\"a[\\\"x\\\",\\\"%61bc\\\"]\");\r\n");
}

#[tokio::test]
async fn cors_and_jsessionid() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}/xhr", sid());
    let h = [
        ("origin", "http://o.test"),
        ("access-control-request-headers", "a, b, c"),
    ];
    let r = req(a, Method::POST, &url, &h, "").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://o.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-headers"), Some("a, b, c"));
    assert!(r.header("set-cookie").is_none());

    let url = format!("/cookie_needed_echo/000/{}", sid());
    let r = post(a, &format!("{url}/xhr"), "").await;
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=dummy; Path=/"));
    let h = [("cookie", "JSESSIONID=abcdef")];
    let r = req(a, Method::POST, &format!("{url}/xhr_send"), &h, r#"["a"]"#).await;
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=abcdef; Path=/"));
}

#[tokio::test]
async fn json_encoding_of_server_killer_chars() {
    let a = start_echo().await;
    let url = format!("/echo/000/{}", sid());
    post(a, &format!("{url}/xhr"), "").await.text().await;
    let ranges = [
        0x200cu32..=0x200f,
        0x2028..=0x202f,
        0x2060..=0x206f,
        0xfff0..=0xffff,
    ];
    let esc: String = ranges
        .clone()
        .into_iter()
        .flatten()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    let raw: String = ranges
        .into_iter()
        .flatten()
        .filter_map(char::from_u32)
        .collect();
    let s = post(a, &format!("{url}/xhr_send"), &format!("[\"{raw}\"]")).await;
    assert_eq!(s.status, 204);
    let body = post_empty(a, &format!("{url}/xhr")).await_text().await;
    assert_eq!(body, format!("a[\"{esc}\"]\n"));
}

/// A short-timer service whose sink reports when each session's receiving half ends.
async fn start_timed(options: SockjsOptions) -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let sink = Arc::new(move |link: ClientLink<SockjsRx, SockjsTx>| {
        let ended_tx = ended_tx.clone();
        tokio::spawn(async move {
            let (mut rx, mut tx) = (link.rx, link.tx);
            while let Ok(Some(m)) = rx.recv().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
            let _ = ended_tx.send(());
        });
    });
    let mut cfg = echo::config("/t");
    cfg.heartbeat = Duration::from_millis(200);
    cfg.disconnect_delay = Duration::from_millis(300);
    let svc = Sockjs::with_options(cfg, vec!["http://ok.test".into()], sink, options);
    (start(vec![svc]).await, ended)
}

#[tokio::test]
async fn heartbeat_expiry_and_limits() {
    let opts = SockjsOptions {
        max_body_bytes: 64,
        ..SockjsOptions::default()
    };
    let (a, mut ended) = start_timed(opts).await;
    let url = format!("/t/000/{}", sid());
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "o\n"
    );
    // An idle poll gets a heartbeat after 200 ms.
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "h\n"
    );
    let big = format!("[\"{}\"]", "x".repeat(100));
    assert_eq!(post(a, &format!("{url}/xhr_send"), &big).await.status, 413);
    let bad_origin = [("origin", "http://evil.test")];
    assert_eq!(
        req(a, Method::POST, &format!("{url}/xhr"), &bad_origin, "")
            .await
            .status,
        403
    );
    // No receiver for longer than the 300 ms disconnect delay: the session expires.
    timeout(WAIT, ended.recv())
        .await
        .expect("session must expire")
        .unwrap();
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), r#"["a"]"#).await.status,
        404
    );
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "o\n"
    );
}

#[tokio::test]
async fn streaming_abort_ends_the_relay_side_at_once() {
    let (a, mut ended) = start_timed(SockjsOptions::default()).await;
    let url = format!("/t/000/{}", sid());
    let mut r = get(a, &format!("{url}/eventsource")).await;
    r.until("data: o\r\n\r\n").await;
    drop(r);
    // Well before the heartbeat would reveal it, and without waiting for expiry.
    timeout(Duration::from_millis(250), ended.recv())
        .await
        .expect("abort must end rx")
        .unwrap();
}

#[tokio::test]
async fn websocket_transport() {
    let a = start_echo().await;
    let url = format!("ws://{a}/echo/000/{}/websocket", sid());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, Message::text("o"));
    ws.send(Message::text("")).await.unwrap();
    ws.send(Message::text(r#"["a","\u2028"]"#)).await.unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, Message::text(r#"a["a","\u2028"]"#));
    ws.send(Message::text(r#"["a"#)).await.unwrap();
    let end = timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "broken JSON must end the socket"
    );

    let url = format!("ws://{a}/close/000/{}/websocket", sid());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let m1 = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    let m2 = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (m1, m2),
        (Message::text("o"), Message::text(r#"c[3000,"Go away!"]"#))
    );

    let r = get(a, "/echo/0/0/websocket").await;
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .await
        .contains("Can \"Upgrade\" only to \"WebSocket\"."));
    let h = [("upgrade", "WebSocket"), ("connection", "close")];
    let r = req(a, Method::GET, "/echo/0/0/websocket", &h, "").await;
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .await
        .contains("\"Connection\" must be \"Upgrade\"."));
    let r = post(a, "/echo/0/0/websocket", "").await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some() && r.header("content-type").is_none());
    assert_eq!(
        get(a, "/disabled_websocket_echo/0/0/websocket")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn raw_websocket() {
    let a = start_echo().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/echo/websocket"))
        .await
        .unwrap();
    ws.send(Message::text("Hello world!\u{ffff}"))
        .await
        .unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m, Message::text("Hello world!\u{ffff}"));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/close/websocket"))
        .await
        .unwrap();
    let m = timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(&m, Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 3000),
        "{m:?}"
    );
}

#[tokio::test]
async fn outbox_overflow_closes_the_session_instead_of_growing() {
    let opts = SockjsOptions {
        queue_messages: 4,
        send_timeout: Duration::from_millis(100),
        ..SockjsOptions::default()
    };
    let (a, mut ended) = start_timed(opts).await;
    let url = format!("/t/000/{}", sid());
    assert_eq!(
        post_empty(a, &format!("{url}/xhr")).await_text().await,
        "o\n"
    );
    // Ten echoes for a client that is not polling: four fit, the fifth times out.
    let ten = serde_json::to_string(&(0..10).map(|i| i.to_string()).collect::<Vec<_>>()).unwrap();
    assert_eq!(post(a, &format!("{url}/xhr_send"), &ten).await.status, 204);
    timeout(WAIT, ended.recv())
        .await
        .expect("overflow must end the session")
        .unwrap();
    let body = post_empty(a, &format!("{url}/xhr")).await_text().await;
    assert_eq!(body, "a[\"0\",\"1\",\"2\",\"3\"]\n");
    let body = post_empty(a, &format!("{url}/xhr")).await_text().await;
    assert_eq!(body, "c[1011,\"Client too slow\"]\n");
}
