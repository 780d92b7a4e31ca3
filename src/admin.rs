//! The admin HTTP endpoints, on their own listener (see [`crate::server`]):
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process runs (liveness) |
//! | `GET /readyz` | `200 ready` while accepting, `503 draining` once the drain began (readiness) |
//! | `GET /metrics` | Prometheus text format, every `stompgate_*` family |
//! | `GET /connections` | JSON array: every live session ([`crate::metrics::SessionView`]) |
//! | `GET /connections/{id}` | one session, or 404 |
//! | `DELETE /connections/{id}` | closes it with an ERROR `closed by operator: <reason>` (`?reason=` or JSON `{"reason": ...}`); 202 |
//! | `GET /trace` | the frame trace in force |
//! | `POST /trace` | starts tracing: JSON `{"connection": id}` or `{"user": name}`, `"max_body"`, `"duration_secs"` |
//! | `DELETE /trace` | stops tracing |
//!
//! [`handle`] reads request bodies (bounded in size and time) and serves the methods that
//! change state; [`route`] answers the `GET`s. With `admin_token` configured, every path except
//! the two probes needs `Authorization: Bearer <token>` (else 401).
//!
//! Web pages the operator visits can send requests to the admin port too (a `text/plain`
//! POST needs no CORS preflight), and DNS rebinding can even read the answers. So:
//!
//! - every request's `Host` must be an IP address, a single-label name (`localhost`), or a name
//!   in `admin_allowed_hosts` (else 403): a rebound attacker's domain name never is;
//! - a state-changing request (`POST /trace`, `DELETE /trace`, `DELETE /connections/{id}`)
//!   needs the token — with no `admin_token` configured they are refused (403) —, a
//!   `Content-Type: application/json` (else 415: a browser cannot send that cross-origin
//!   without a preflight this API never answers), and no `Origin` outside
//!   `admin_allowed_origins` (else 403).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use tracing::info;

use crate::config::{Config, Secret};
use crate::metrics::{Metrics, TraceRequest};
use crate::transport::ws::text_response;
use crate::transport::HttpBody;

/// Largest admin request body read.
pub const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;
/// Time allowed to receive an admin request body.
pub const ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The reason given to a kicked session when the operator gave none.
const DEFAULT_KICK_REASON: &str = "no reason given";

/// What the admin endpoints read. Extend it with what new endpoints need.
#[derive(Debug)]
pub struct AdminState {
    /// The running configuration.
    pub config: Arc<Config>,
    /// True while the gateway accepts clients; false once the drain began.
    ready: AtomicBool,
    /// Bearer token required on everything except the probes.
    token: Option<Secret>,
    /// Counters, the connection table and the tracer (shared with the relay).
    pub metrics: Arc<Metrics>,
}

impl AdminState {
    /// Ready, with the configuration's admin token and metrics of its own.
    pub fn new(config: Arc<Config>) -> Self {
        let metrics = Metrics::new(&config);
        AdminState::with_metrics(config, metrics)
    }

    /// Ready, sharing the relay's `metrics`.
    pub fn with_metrics(config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        AdminState {
            token: config.admin_token.clone(),
            config,
            ready: AtomicBool::new(true),
            metrics,
        }
    }

    /// Whether `/readyz` says ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Flips readiness (false when the drain begins).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// Answers one admin request of any method, reading its body when the method needs one.
pub async fn handle<B>(req: Request<B>, state: &AdminState) -> Response<HttpBody>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    if !host_allowed(req.headers(), state) {
        state.metrics.admin_refused("host");
        return text_response(StatusCode::FORBIDDEN, "host not allowed\n");
    }
    if method != Method::POST && method != Method::DELETE {
        return route(&req, state);
    }
    if let Some((reason, refusal)) = check_state_change(&req, state) {
        state.metrics.admin_refused(reason);
        return refusal;
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let path = parts.uri.path();
    match (method, path) {
        (Method::POST, "/trace") => start_trace(&body, state),
        (Method::DELETE, "/trace") => {
            let was = state.metrics.tracer().stop();
            info!(was_active = was, "frame trace stopped by operator");
            json_response(StatusCode::OK, &state.metrics.tracer().status())
        }
        (Method::DELETE, _) => match connection_id(path) {
            Some(id) => kick(id, parts.uri.query(), &body, state),
            None => text_response(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Collects a body, bounded in size and time.
async fn read_body<B>(body: B) -> Result<Bytes, Response<HttpBody>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = Limited::new(body, MAX_ADMIN_BODY_BYTES);
    match tokio::time::timeout(ADMIN_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or broken\n",
        )),
        Err(_) => Err(text_response(
            StatusCode::REQUEST_TIMEOUT,
            "request body too slow\n",
        )),
    }
}

/// `POST /trace`.
fn start_trace(body: &[u8], state: &AdminState) -> Response<HttpBody> {
    let req: TraceRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("bad JSON: {e}\n")),
    };
    match state.metrics.tracer().start(&req) {
        Ok(status) => {
            info!(connection = ?req.connection, user = ?req.user, "frame trace started by operator");
            json_response(StatusCode::OK, &status)
        }
        Err(e) => text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// `DELETE /connections/{id}`: the reason comes from `?reason=` or a JSON `{"reason": ...}`.
fn kick(id: u64, query: Option<&str>, body: &[u8], state: &AdminState) -> Response<HttpBody> {
    #[derive(serde::Deserialize)]
    struct KickBody {
        reason: Option<String>,
    }
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<KickBody>(body) {
            Ok(b) => b.reason,
            Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("bad JSON: {e}\n")),
        }
    };
    let reason = from_body
        .or_else(|| query.and_then(|q| query_param(q, "reason")))
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_KICK_REASON.to_owned());
    let Some(session) = state.metrics.connections().get(id) else {
        return text_response(StatusCode::NOT_FOUND, "no such connection\n");
    };
    session.kick(&reason);
    info!(session = id, reason = %reason, "session closed by operator");
    #[derive(Serialize)]
    struct Kicked {
        id: u64,
        reason: String,
    }
    json_response(
        StatusCode::ACCEPTED,
        &Kicked {
            id,
            reason: session.kick_reason(),
        },
    )
}

/// The id in `/connections/{id}`.
fn connection_id(path: &str) -> Option<u64> {
    path.strip_prefix("/connections/")?.parse().ok()
}

/// The first value of `name` in a query string, percent- and `+`-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response.
fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<HttpBody> {
    let Ok(body) = serde_json::to_vec_pretty(value) else {
        return text_response(StatusCode::INTERNAL_SERVER_ERROR, "serialization failed\n");
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn unauthorized() -> Response<HttpBody> {
    let mut resp = text_response(StatusCode::UNAUTHORIZED, "unauthorized\n");
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    resp
}

/// Answers one admin `GET`/`HEAD` request (other methods: 405; [`handle`] serves them).
pub fn route<B>(req: &Request<B>, state: &AdminState) -> Response<HttpBody> {
    let path = req.uri().path();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text_response(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match path {
        "/healthz" => return text_response(StatusCode::OK, "ok\n"),
        "/readyz" => return readyz(state),
        _ => {}
    }
    if !authorized(req, state) {
        state.metrics.admin_refused("unauthorized");
        return unauthorized();
    }
    let metrics = &state.metrics;
    match path {
        "/metrics" => metrics_response(metrics),
        "/connections" => {
            let all: Vec<_> = metrics
                .connections()
                .list()
                .iter()
                .map(|s| s.view())
                .collect();
            json_response(StatusCode::OK, &all)
        }
        "/trace" => json_response(StatusCode::OK, &metrics.tracer().status()),
        _ => match connection_id(path).and_then(|id| metrics.connections().get(id)) {
            Some(s) => json_response(StatusCode::OK, &s.view()),
            None => text_response(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// `GET /metrics` in the Prometheus text format.
fn metrics_response(metrics: &Metrics) -> Response<HttpBody> {
    let mut resp = text_response(StatusCode::OK, metrics.render());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus::TEXT_FORMAT),
    );
    resp
}

fn readyz(state: &AdminState) -> Response<HttpBody> {
    if state.is_ready() {
        text_response(StatusCode::OK, "ready\n")
    } else {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}

/// The rules for requests that change state: the token (required, not optional), a JSON
/// content type, and no foreign browser `Origin`. `Some(refusal)` when one is broken.
fn check_state_change<B>(
    req: &Request<B>,
    state: &AdminState,
) -> Option<(&'static str, Response<HttpBody>)> {
    if state.token.is_none() {
        return Some((
            "no_token",
            text_response(
                StatusCode::FORBIDDEN,
                "state-changing admin requests need admin_token to be configured\n",
            ),
        ));
    }
    if !authorized(req, state) {
        return Some(("unauthorized", unauthorized()));
    }
    let headers = req.headers();
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let allowed = &state.config.admin_allowed_origins;
        let origin = origin.to_str().unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return Some((
                "origin",
                text_response(StatusCode::FORBIDDEN, "origin not allowed\n"),
            ));
        }
    }
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Some((
            "content_type",
            text_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type: application/json required\n",
            ),
        ));
    }
    None
}

/// Whether the `Host` header names this API: an IP address (any port), a single-label name
/// (`localhost`, a Kubernetes service's short name), or one of `admin_allowed_hosts` (with or
/// without the port). No `Host` (not a browser) passes. A rebinding page is reached through a
/// public name of the attacker's, which always has a dot.
fn host_allowed(headers: &http::HeaderMap, state: &AdminState) -> bool {
    let Some(host) = headers.get(http::header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = host_name(host);
    name.parse::<std::net::IpAddr>().is_ok()
        || (!name.is_empty() && !name.contains('.'))
        || state
            .config
            .admin_allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

/// The host part of a `Host` value: `[::1]:8081` → `::1`, `a.b:8081` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether the request carries the configured bearer token (always, when none is set).
fn authorized<B>(req: &Request<B>, state: &AdminState) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.expose().as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not reveal the prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(token: Option<&str>) -> AdminState {
        let mut c = Config::for_tests("127.0.0.1:61613", "u", "p");
        c.admin_token = token.map(Secret::new);
        AdminState::new(Arc::new(c))
    }

    fn get(path: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::get(path);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn probes_answer_and_readiness_flips() {
        let s = state(Some("t0ken"));
        assert_eq!(route(&get("/healthz", None), &s).status(), StatusCode::OK);
        assert_eq!(route(&get("/readyz", None), &s).status(), StatusCode::OK);
        s.set_ready(false);
        assert_eq!(
            route(&get("/readyz", None), &s).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(route(&get("/healthz", None), &s).status(), StatusCode::OK);
    }

    #[test]
    fn token_guards_everything_but_the_probes() {
        let s = state(Some("t0ken"));
        let status = |auth| route(&get("/metrics", auth), &s).status();
        assert_eq!(status(None), StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some("Bearer wrong")), StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some("t0ken")), StatusCode::UNAUTHORIZED);
        assert_eq!(status(Some("Bearer t0ken")), StatusCode::OK);
        let open = state(None);
        assert_eq!(
            route(&get("/metrics", None), &open).status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&get("/nowhere", None), &open).status(),
            StatusCode::NOT_FOUND
        );
    }

    fn req(method: Method, path: &str, auth: Option<&str>, body: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:8081")
            .header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    #[tokio::test]
    async fn state_changes_need_token_json_and_no_foreign_origin() {
        let trace = r#"{"connection":3,"duration_secs":5}"#;
        let open = state(None);
        let r = handle(req(Method::POST, "/trace", None, trace), &open).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no token configured");
        assert!(!open.metrics.tracer().is_active());
        let s = state(Some("t0ken"));
        let post = |f: &dyn Fn(&mut Request<Full<Bytes>>)| {
            let mut r = req(Method::POST, "/trace", Some("Bearer t0ken"), trace);
            f(&mut r);
            r
        };
        let set = |r: &mut Request<Full<Bytes>>, k: &'static str, v: &'static str| {
            r.headers_mut().insert(k, HeaderValue::from_static(v));
        };
        type Tweak<'a> = &'a dyn Fn(&mut Request<Full<Bytes>>);
        let cases: [(Tweak, StatusCode); 5] = [
            (
                &|r| set(r, "content-type", "text/plain"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                &|r| {
                    r.headers_mut().remove("content-type");
                },
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                &|r| set(r, "origin", "https://evil.example"),
                StatusCode::FORBIDDEN,
            ),
            (
                &|r| set(r, "host", "rebound.evil.example:8081"),
                StatusCode::FORBIDDEN,
            ),
            (
                &|r| {
                    r.headers_mut().remove("authorization");
                },
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (i, (tweak, want)) in cases.iter().enumerate() {
            let r = handle(post(*tweak), &s).await;
            assert_eq!(r.status(), *want, "case {i}");
            assert!(!s.metrics.tracer().is_active(), "case {i} started a trace");
        }
        let ok = handle(
            post(&|r| set(r, "content-type", "Application/JSON; charset=utf-8")),
            &s,
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(s.metrics.tracer().is_active());
    }

    #[test]
    fn hosts_must_be_addresses_localhost_or_listed() {
        let mut c = Config::for_tests("127.0.0.1:61613", "u", "p");
        c.admin_allowed_hosts = vec!["stompgate-admin.internal".into()];
        let s = AdminState::new(Arc::new(c));
        let ok = |h: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::HOST, HeaderValue::from_str(h).unwrap());
            host_allowed(&m, &s)
        };
        for good in [
            "127.0.0.1:8081",
            "10.1.2.3",
            "[::1]:8081",
            "localhost:8081",
            "stompgate-admin:8081",
            "stompgate-admin.internal:8081",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:8081",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "evil.example.:8081",
            ":8081",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(host_allowed(&http::HeaderMap::new(), &s));
    }

    fn meta() -> crate::transport::ClientMeta {
        crate::transport::ClientMeta {
            peer: "127.0.0.1:7".parse().unwrap(),
            transport: crate::transport::TransportKind::WebSocket,
            tls: false,
            headers: Default::default(),
            query: None,
            client_cert: None,
        }
    }

    #[tokio::test]
    async fn delete_kicks_the_named_session_with_the_reason() {
        let s = state(Some("t0ken"));
        let a = s.metrics.open_session(&meta());
        let b = s.metrics.open_session(&meta());
        let path = format!("/connections/{}?reason=maintenance+window%21", b.id());
        let denied = handle(req(Method::DELETE, &path, None, ""), &s).await;
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert!(!b.stats().kick_reason().contains("maintenance"));
        let ok = handle(req(Method::DELETE, &path, Some("Bearer t0ken"), ""), &s).await;
        assert_eq!(ok.status(), StatusCode::ACCEPTED);
        assert_eq!(b.stats().kick_reason(), "maintenance window!");
        assert_eq!(a.stats().kick_reason(), "");
        let body = format!("/connections/{}", a.id());
        let json = handle(
            req(
                Method::DELETE,
                &body,
                Some("Bearer t0ken"),
                r#"{"reason":"abuse"}"#,
            ),
            &s,
        )
        .await;
        assert_eq!(json.status(), StatusCode::ACCEPTED);
        assert_eq!(a.stats().kick_reason(), "abuse");
        let missing = handle(
            req(Method::DELETE, "/connections/999", Some("Bearer t0ken"), ""),
            &s,
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn trace_starts_stops_and_rejects_bad_requests() {
        let s = state(Some("t"));
        let bad = handle(req(Method::POST, "/trace", Some("Bearer t"), "{}"), &s).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let ok = handle(
            req(
                Method::POST,
                "/trace",
                Some("Bearer t"),
                r#"{"connection":3,"max_body":16,"duration_secs":5}"#,
            ),
            &s,
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(s.metrics.tracer().is_active());
        let stop = handle(req(Method::DELETE, "/trace", Some("Bearer t"), ""), &s).await;
        assert_eq!(stop.status(), StatusCode::OK);
        assert!(!s.metrics.tracer().is_active());
        let big = "x".repeat(MAX_ADMIN_BODY_BYTES + 1);
        let too_big = handle(req(Method::POST, "/trace", Some("Bearer t"), &big), &s).await;
        assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param("a=1&reason=x%20y+z", "reason").as_deref(),
            Some("x y z")
        );
        assert_eq!(
            query_param("reason=%zz%", "reason").as_deref(),
            Some("%zz%")
        );
        assert_eq!(query_param("a=1", "reason"), None);
    }
}
