//! The demo page (`demo/` in the repository), compiled into the binary and served from the
//! client listener at `/` when `--demo` is on.
//!
//! The page holds no broker credentials: it connects to the gateway's WebSocket endpoint on the
//! same host and the gateway presents its own identity to the broker.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full};

use crate::transport::HttpBody;

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// What the page may load and where it may connect: its own files, and WebSockets (the page
/// accepts a `?ws=` override for another endpoint).
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const ASSETS: [(&str, Asset); 5] = [
    ("/", html(include_bytes!("../demo/index.html"))),
    ("/index.html", html(include_bytes!("../demo/index.html"))),
    ("/app.js", js(include_bytes!("../demo/app.js"))),
    (
        "/style.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            body: include_bytes!("../demo/style.css"),
        },
    ),
    (
        "/vendor/stomp.umd.min.js",
        js(include_bytes!("../demo/vendor/stomp.umd.min.js")),
    ),
];

const fn html(body: &'static [u8]) -> Asset {
    Asset {
        content_type: "text/html; charset=utf-8",
        body,
    }
}

const fn js(body: &'static [u8]) -> Asset {
    Asset {
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

/// The embedded file for a request path, if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

/// A `200` response with the embedded file for `path`, or `None` (the caller answers 404).
pub fn response(path: &str) -> Option<Response<HttpBody>> {
    let asset = asset(path)?;
    let mut resp = Response::new(Full::new(Bytes::from_static(asset.body)).boxed());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_its_files_with_types() {
        let page = asset("/").expect("index");
        assert!(page.content_type.starts_with("text/html"));
        let text = std::str::from_utf8(page.body).expect("utf-8");
        for id in [
            "status",
            "destination",
            "subscribe",
            "message",
            "send",
            "messages",
        ] {
            assert!(text.contains(&format!("id=\"{id}\"")), "missing #{id}");
        }
        assert!(text.contains("vendor/stomp.umd.min.js") && text.contains("app.js"));
        assert!(asset("/app.js")
            .expect("app")
            .content_type
            .contains("javascript"));
        assert!(asset("/style.css")
            .expect("css")
            .content_type
            .starts_with("text/css"));
        assert!(
            asset("/vendor/stomp.umd.min.js")
                .expect("stompjs")
                .body
                .len()
                > 10_000
        );
    }

    #[test]
    fn unknown_and_traversal_paths_are_not_served() {
        for p in [
            "/nope",
            "/../Cargo.toml",
            "/vendor/",
            "/vendor/stomp.umd.min.js.LICENSE",
            "",
        ] {
            assert!(asset(p).is_none(), "{p} served");
        }
    }

    #[test]
    fn page_carries_no_credentials() {
        for (_, a) in ASSETS.iter().filter(|(p, _)| !p.starts_with("/vendor")) {
            let text = String::from_utf8_lossy(a.body);
            assert!(!text.contains("passcode") && !text.contains("stompgate-secret"));
        }
    }

    #[test]
    fn responses_carry_security_headers() {
        let resp = response("/").expect("index");
        assert_eq!(resp.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(resp.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert!(response("/missing").is_none());
    }
}
