//! The static SockJS endpoints: the greeting, `/info`, the iframe page and CORS preflight
//! (`OPTIONS`) answers.

use std::hash::{BuildHasher, Hasher};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::http as h;
use crate::transport::HttpBody;

/// The greeting served at the prefix itself.
pub const GREETING: &str = "Welcome to SockJS!\n";

/// The iframe page and its `ETag`, built once.
pub struct Iframe {
    body: String,
    etag: String,
}

impl Iframe {
    /// The page loading the SockJS client from `client_url`.
    pub fn new(client_url: &str) -> Iframe {
        let url = client_url.replace('"', "%22");
        let body = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n  \
             <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
             <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
             <script src=\"{url}\"></script>\n  \
             <script>\n    document.domain = document.domain;\n    \
             SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  \
             <h2>Don't panic!</h2>\n  \
             <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
             </body>\n</html>"
        );
        let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
        Iframe { body, etag }
    }

    /// The page, or 304 when the client's `If-None-Match` holds the current `ETag`.
    pub fn respond(&self, req: &HeaderMap) -> Response<HttpBody> {
        let cached = req
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == self.etag));
        let mut res = if cached {
            h::empty(StatusCode::NOT_MODIFIED)
        } else {
            h::full(StatusCode::OK, Some(h::HTML), self.body.clone())
        };
        h::cache_for_a_year(res.headers_mut());
        h::set(res.headers_mut(), header::ETAG, &self.etag);
        res
    }
}

/// 64-bit FNV-1a: a stable fingerprint for the `ETag`.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An unpredictable number in `0..2^32` for the client's random generator.
fn entropy() -> u32 {
    // RandomState is seeded from the OS and differs per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 32) as u32
}

/// `GET {prefix}` and `{prefix}/`.
pub fn greeting() -> Response<HttpBody> {
    h::text(StatusCode::OK, GREETING)
}

/// `GET {prefix}/info`.
pub fn info(req: &HeaderMap, websocket: bool, cookie_needed: bool) -> Response<HttpBody> {
    let body = serde_json::json!({
        "websocket": websocket,
        "cookie_needed": cookie_needed,
        "origins": ["*:*"],
        "entropy": entropy(),
    });
    let mut res = h::full(StatusCode::OK, Some(h::JSON), body.to_string());
    h::no_cache(res.headers_mut());
    h::cors(res.headers_mut(), req);
    res
}

/// A CORS preflight answer: 204, cacheable for a year, with the allowed methods.
pub fn options(req: &HeaderMap, methods: &'static str) -> Response<HttpBody> {
    let mut res = h::empty(StatusCode::NO_CONTENT);
    let headers = res.headers_mut();
    h::cache_for_a_year(headers);
    h::set(
        headers,
        header::ACCESS_CONTROL_MAX_AGE,
        &h::CACHE_FOR_SECS.to_string(),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h::cors(headers, req);
    res
}

/// Whether `name` (the path part after the prefix, without its slash) names the iframe page:
/// `iframe.html` or `iframe-<version>.html` with `[0-9a-z._-]` in the version.
pub fn is_iframe_path(name: &str) -> bool {
    let Some(middle) = name
        .strip_prefix("iframe")
        .and_then(|s| s.strip_suffix(".html"))
    else {
        return false;
    };
    middle.is_empty()
        || middle.starts_with('-')
            && middle
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_paths() {
        for ok in [
            "iframe.html",
            "iframe-a.html",
            "iframe-.html",
            "iframe-0.1.2.html",
            "iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe_path(ok), "{ok}");
        }
        for bad in [
            "iframe.htm",
            "iframe",
            "IFRAME.HTML",
            "iframe.HTML",
            "iframe.xml",
            "iframe-/.html",
            "iframex.html",
        ] {
            assert!(!is_iframe_path(bad), "{bad}");
        }
    }

    #[test]
    fn iframe_etag_is_stable_and_honoured() {
        let a = Iframe::new("https://cdn.example/sockjs.js");
        let b = Iframe::new("https://cdn.example/sockjs.js");
        assert_eq!(a.etag, b.etag);
        let mut req = HeaderMap::new();
        assert_eq!(a.respond(&req).status(), StatusCode::OK);
        req.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&a.etag).unwrap(),
        );
        let res = a.respond(&req);
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(res.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn entropy_varies() {
        let values: std::collections::HashSet<u32> = (0..8).map(|_| entropy()).collect();
        assert!(values.len() > 1);
    }
}
