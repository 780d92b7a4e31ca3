//! The HTTP sending transports: `xhr_send` (a JSON array body, answered with 204) and
//! `jsonp_send` (a form field `d=` or a raw body, answered with `ok`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode};

use super::http as h;
use super::payload::{parse_messages, Messages, PayloadError};
use super::session::Session;
use crate::transport::{HttpBody, LinkError};

/// Which sending transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// `xhr_send`.
    Xhr,
    /// `jsonp_send`.
    Jsonp,
}

impl SendKind {
    /// The transport for a URL segment.
    pub fn from_name(name: &str) -> Option<SendKind> {
        match name {
            "xhr_send" => Some(SendKind::Xhr),
            "jsonp_send" => Some(SendKind::Jsonp),
            _ => None,
        }
    }
}

/// The JSON payload inside a `jsonp_send` body.
fn jsonp_payload(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::BrokenJson)?;
    match h::form_value(text, "d") {
        Some(d) if !d.is_empty() => Ok(d.into_bytes()),
        _ => Err(PayloadError::Empty),
    }
}

/// 500 with the protocol's error text.
fn payload_error(e: &PayloadError) -> Response<HttpBody> {
    h::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Delivers a sending request's messages to `session` and answers it.
pub async fn deliver(
    session: &Arc<Session>,
    kind: SendKind,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<HttpBody> {
    let mut messages = Messages::default();
    let parsed = match kind {
        SendKind::Xhr => parse_messages(&body, &mut messages),
        SendKind::Jsonp => {
            jsonp_payload(headers, &body).and_then(|p| parse_messages(&p, &mut messages))
        }
    };
    if let Err(e) = parsed {
        return payload_error(&e);
    }
    match session.push_inbound(messages).await {
        Ok(()) => {}
        Err(LinkError::Overflow) => {
            return h::text(StatusCode::SERVICE_UNAVAILABLE, "Session busy.");
        }
        Err(_) => return h::not_found(),
    }
    let mut res = match kind {
        SendKind::Xhr => h::full(StatusCode::NO_CONTENT, Some(h::TEXT_PLAIN), Bytes::new()),
        SendKind::Jsonp => h::text(StatusCode::OK, "ok"),
    };
    h::no_cache(res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    #[test]
    fn jsonp_payloads() {
        assert_eq!(
            jsonp_payload(&form(), b"d=%5B%22x%22%5D").unwrap(),
            b"[\"x\"]"
        );
        assert_eq!(jsonp_payload(&form(), b"d="), Err(PayloadError::Empty));
        assert_eq!(jsonp_payload(&form(), b"p=p"), Err(PayloadError::Empty));
        assert_eq!(jsonp_payload(&form(), b""), Err(PayloadError::Empty));
        assert_eq!(
            jsonp_payload(&HeaderMap::new(), b"[\"%61bc\"]").unwrap(),
            b"[\"%61bc\"]"
        );
    }
}
