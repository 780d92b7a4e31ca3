//! The admin HTTP endpoints, on their own listener (see [`crate::server`]):
//!
//! | path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process runs (liveness) |
//! | `GET /readyz` | `200 ready` while accepting, `503 draining` once the drain began (readiness) |
//!
//! `/metrics` and `/connections` plug into [`route`]. With `admin_token` configured, every
//! path except the two probes needs `Authorization: Bearer <token>` (else 401).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::config::{Config, Secret};
use crate::transport::ws::text_response;
use crate::transport::HttpBody;

/// What the admin endpoints read. Extend it with what new endpoints need.
#[derive(Debug)]
pub struct AdminState {
    /// The running configuration.
    pub config: Arc<Config>,
    /// True while the gateway accepts clients; false once the drain began.
    ready: AtomicBool,
    /// Bearer token required on everything except the probes.
    token: Option<Secret>,
}

impl AdminState {
    /// Ready, with the configuration's admin token.
    pub fn new(config: Arc<Config>) -> Self {
        AdminState {
            token: config.admin_token.clone(),
            config,
            ready: AtomicBool::new(true),
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

/// Answers one admin request.
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
        let mut resp = text_response(StatusCode::UNAUTHORIZED, "unauthorized\n");
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    text_response(StatusCode::NOT_FOUND, "not found\n")
}

fn readyz(state: &AdminState) -> Response<HttpBody> {
    if state.is_ready() {
        text_response(StatusCode::OK, "ready\n")
    } else {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
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
        assert_eq!(status(Some("Bearer t0ken")), StatusCode::NOT_FOUND);
        let open = state(None);
        assert_eq!(
            route(&get("/metrics", None), &open).status(),
            StatusCode::NOT_FOUND
        );
    }
}
