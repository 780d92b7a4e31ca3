//! HTTP plumbing shared by the SockJS handlers: response builders, the CORS, caching and
//! `JSESSIONID` headers the protocol asks for, bounded body reading and query decoding.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};

use crate::transport::HttpBody;

/// One year: how long static answers (iframe, OPTIONS) may be cached.
pub const CACHE_FOR_SECS: u64 = 31_536_000;

/// `Cache-Control` for anything private or live.
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

/// The content types SockJS responses use.
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
/// JavaScript (xhr, jsonp).
pub const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
/// JSON (info).
pub const JSON: &str = "application/json; charset=UTF-8";
/// HTML (iframe, htmlfile).
pub const HTML: &str = "text/html; charset=UTF-8";
/// Server-sent events: exactly this, as the protocol and sockjs-node send it (the format is
/// UTF-8 by definition).
pub const EVENT_STREAM: &str = "text/event-stream";

/// A response with a complete body.
pub fn full(
    status: StatusCode,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Response<HttpBody> {
    let mut res = Response::new(Full::new(body.into()).boxed());
    *res.status_mut() = status;
    if let Some(ct) = content_type {
        set(res.headers_mut(), header::CONTENT_TYPE, ct);
    }
    res
}

/// A response without a body.
pub fn empty(status: StatusCode) -> Response<HttpBody> {
    let mut res = Response::new(Empty::new().boxed());
    *res.status_mut() = status;
    res
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<HttpBody> {
    full(status, Some(TEXT_PLAIN), body)
}

/// 404 with no body.
pub fn not_found() -> Response<HttpBody> {
    empty(StatusCode::NOT_FOUND)
}

/// 405 with `Allow`, no content type and no body, as the protocol tests expect.
pub fn method_not_allowed(allow: &'static str) -> Response<HttpBody> {
    let mut res = empty(StatusCode::METHOD_NOT_ALLOWED);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// Sets a header from a string; values that are not valid header text are skipped.
pub fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// CORS: echo the `Origin` with credentials, or `*` without them when there is none; echo
/// requested headers. `Origin: null` (sandboxed iframes, `file://` pages) is echoed as
/// sockjs-node does: only requests whose origin passed the allowlist get here, and `null`
/// passes only an allowlist that names it (or none at all).
pub fn cors(res: &mut HeaderMap, req: &HeaderMap) {
    match req.get(header::ORIGIN) {
        Some(origin) => {
            res.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            res.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            res.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    res.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(h) = req
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|h| !h.is_empty())
    {
        res.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
}

/// Forbids caching.
pub fn no_cache(res: &mut HeaderMap) {
    res.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

/// Allows caching for a year (`Cache-Control`, `Expires`).
pub fn cache_for_a_year(res: &mut HeaderMap) {
    set(
        res,
        header::CACHE_CONTROL,
        &format!("public, max-age={CACHE_FOR_SECS}"),
    );
    let expires = SystemTime::now() + Duration::from_secs(CACHE_FOR_SECS);
    set(res, header::EXPIRES, &httpdate::fmt_http_date(expires));
}

/// `JSESSIONID` for sticky load balancers: the client's value echoed, else `dummy`.
pub fn jsessionid(res: &mut HeaderMap, req: &HeaderMap) {
    let value = cookie_value(req, "JSESSIONID").unwrap_or("dummy");
    set(
        res,
        header::SET_COOKIE,
        &format!("JSESSIONID={value}; Path=/"),
    );
}

/// The value of cookie `name` in the request's `Cookie` headers, if it is a plain token.
fn cookie_value<'a>(req: &'a HeaderMap, name: &str) -> Option<&'a str> {
    req.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';'))
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit.
    #[error("request body too large")]
    TooLarge,
    /// The client went away or sent a malformed body.
    #[error("request body unreadable")]
    Unreadable,
    /// The body did not arrive in time.
    #[error("request body timed out")]
    TimedOut,
}

/// Reads a whole request body of at most `limit` bytes within `timeout`.
pub async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Unreadable),
    }
}

/// The answer to a body that could not be read; a timed-out one also closes the connection
/// (the rest of the body may still come and could not be told from the next request).
pub fn body_error(e: &BodyError) -> Response<HttpBody> {
    match e {
        BodyError::TooLarge => text(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large."),
        BodyError::Unreadable => text(StatusCode::BAD_REQUEST, "Unreadable body."),
        BodyError::TimedOut => {
            let mut res = text(StatusCode::REQUEST_TIMEOUT, "Request body timed out.");
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); `None` if the result is not
/// UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first value of `name` in a URL-encoded query or form.
pub fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| percent_decode(k, true).as_deref() == Some(name))
        .and_then(|(_, v)| percent_decode(v, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("%63allback", false).as_deref(),
            Some("callback")
        );
        assert_eq!(percent_decode("a+b%20c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(
            percent_decode("%5B%22x%22%5D", true).as_deref(),
            Some("[\"x\"]")
        );
        assert_eq!(percent_decode("bad%zz%", true).as_deref(), Some("bad%zz%"));
        assert_eq!(percent_decode("%ff", true), None);
    }

    #[test]
    fn form_values() {
        assert_eq!(form_value("c=cb&t=1", "c").as_deref(), Some("cb"));
        assert_eq!(form_value("t=1&c=%63b", "c").as_deref(), Some("cb"));
        assert_eq!(form_value("d=", "d").as_deref(), Some(""));
        assert_eq!(form_value("p=p", "d"), None);
        assert_eq!(form_value("", "d"), None);
    }

    #[test]
    fn cors_echoes_origin_or_star() {
        let mut req = HeaderMap::new();
        let mut res = HeaderMap::new();
        cors(&mut res, &req);
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(res.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

        req.insert(header::ORIGIN, HeaderValue::from_static("null"));
        let mut res = HeaderMap::new();
        cors(&mut res, &req);
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_ORIGIN], "null");
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");

        req.insert(header::ORIGIN, HeaderValue::from_static("http://a.example"));
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("a, b"),
        );
        let mut res = HeaderMap::new();
        cors(&mut res, &req);
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.example");
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(res[header::ACCESS_CONTROL_ALLOW_HEADERS], "a, b");
    }

    #[test]
    fn jsessionid_echoes_or_defaults() {
        let mut req = HeaderMap::new();
        let mut res = HeaderMap::new();
        jsessionid(&mut res, &req);
        assert_eq!(res[header::SET_COOKIE], "JSESSIONID=dummy; Path=/");
        req.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; JSESSIONID=abcdef"),
        );
        jsessionid(&mut res, &req);
        assert_eq!(res[header::SET_COOKIE], "JSESSIONID=abcdef; Path=/");
    }
}
