//! Pulling credentials out of a CONNECT frame and the upgrade request, refusing any that appear
//! more than once (docs/ARCHITECTURE.md invariant 3: ambiguity is refused, not guessed at).
//!
//! Every function returns `Ok(None)` when its credential is simply absent, so a backend can
//! step aside for the next one.

use base64::Engine;

use super::error::AuthError;
use crate::stomp::Frame;
use crate::transport::ClientMeta;

/// Longest token accepted from any source, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The CONNECT `login` and `passcode` (exact-case names; any second copy in any case is
/// ambiguous). `Ok(None)` when there is no `login`.
pub fn connect_login(frame: &Frame) -> Result<Option<(&str, &[u8])>, AuthError> {
    for name in ["login", "passcode"] {
        let copies = frame
            .headers()
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .count();
        if copies > 1 {
            return Err(AuthError::AmbiguousCredentials);
        }
    }
    let Some(login) = frame.header("login") else {
        return Ok(None);
    };
    let passcode = frame.header_bytes("passcode").unwrap_or_default();
    Ok(Some((login, passcode)))
}

/// The CONNECT `passcode` alone (for a JWT carried there), as text.
pub fn connect_passcode(frame: &Frame) -> Result<Option<&str>, AuthError> {
    let copies = frame
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(b"passcode"))
        .count();
    if copies > 1 {
        return Err(AuthError::AmbiguousCredentials);
    }
    match frame.header_bytes("passcode") {
        None => Ok(None),
        Some([]) => Ok(None),
        Some(b) => std::str::from_utf8(b)
            .map(Some)
            .map_err(|_| AuthError::TokenInvalid),
    }
}

/// The one `Authorization` header of the upgrade request, if its scheme is `scheme`
/// (case-insensitive). `Ok(None)` when absent or another scheme.
fn authorization<'a>(meta: &'a ClientMeta, scheme: &str) -> Result<Option<&'a str>, AuthError> {
    let mut all = meta.headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(AuthError::AmbiguousCredentials);
    }
    let value = value.to_str().map_err(|_| AuthError::BadCredentials)?;
    let Some((s, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    Ok(s.eq_ignore_ascii_case(scheme).then(|| rest.trim()))
}

/// `Authorization: Bearer <token>`.
pub fn bearer(meta: &ClientMeta) -> Result<Option<&str>, AuthError> {
    authorization(meta, "Bearer")
}

/// `Authorization: Basic <base64(user:password)>`.
pub fn basic(meta: &ClientMeta) -> Result<Option<(String, Vec<u8>)>, AuthError> {
    let Some(b64) = authorization(meta, "Basic")? else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| AuthError::BadCredentials)?;
    let colon = raw
        .iter()
        .position(|&b| b == b':')
        .ok_or(AuthError::BadCredentials)?;
    let user = std::str::from_utf8(&raw[..colon]).map_err(|_| AuthError::BadCredentials)?;
    Ok(Some((user.to_owned(), raw[colon + 1..].to_vec())))
}

/// The value of cookie `name`; a cookie given twice is ambiguous.
pub fn cookie(meta: &ClientMeta, name: &str) -> Result<Option<String>, AuthError> {
    let mut found = None;
    for header in meta.headers.get_all(http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return Err(AuthError::AmbiguousCredentials);
                }
                found = Some(v.trim_matches('"').to_owned());
            }
        }
    }
    Ok(found)
}

/// The value of query parameter `name` (percent-decoded); a parameter given twice is ambiguous.
pub fn query_param(meta: &ClientMeta, name: &str) -> Result<Option<String>, AuthError> {
    let Some(query) = meta.query.as_deref() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).as_deref() == Some(name) {
            if found.is_some() {
                return Err(AuthError::AmbiguousCredentials);
            }
            found = Some(percent_decode(v).ok_or(AuthError::TokenInvalid)?);
        }
    }
    Ok(found)
}

/// Decodes `%XX` escapes and `+` (as a space); `None` for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The user name a login attempt claims, for the failed-login limiter: the CONNECT `login`,
/// else the HTTP Basic user, else empty (tokens and certificates name no user up front).
/// Never a secret; repeated or malformed headers give an empty name (the backends refuse them).
pub fn claimed_user(frame: &Frame, meta: &ClientMeta) -> String {
    if let Ok(Some((login, _))) = connect_login(frame) {
        return login.to_owned();
    }
    match basic(meta) {
        Ok(Some((user, _))) => user,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::Command;
    use crate::transport::TransportKind;

    fn meta(headers: &[(&str, &str)], query: Option<&str>) -> ClientMeta {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        ClientMeta {
            peer: "127.0.0.1:1".parse().unwrap(),
            transport: TransportKind::WebSocket,
            tls: false,
            headers: map,
            query: query.map(str::to_owned),
            client_cert: None,
        }
    }

    #[test]
    fn repeated_credentials_are_ambiguous() {
        let f = Frame::new(Command::Connect)
            .with_header("login", "a")
            .with_header("Login", "b");
        assert_eq!(connect_login(&f), Err(AuthError::AmbiguousCredentials));
        let m = meta(
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            None,
        );
        assert_eq!(bearer(&m), Err(AuthError::AmbiguousCredentials));
        let m = meta(&[("cookie", "t=a; x=1"), ("cookie", "t=b")], None);
        assert_eq!(cookie(&m, "t"), Err(AuthError::AmbiguousCredentials));
        let m = meta(&[], Some("access_token=a&access%5Ftoken=b"));
        assert_eq!(
            query_param(&m, "access_token"),
            Err(AuthError::AmbiguousCredentials)
        );
    }

    #[test]
    fn single_credentials_are_found() {
        let m = meta(
            &[
                ("authorization", "basic YWxpY2U6cHc6eA=="),
                ("cookie", "a=1; tok=\"x.y.z\""),
            ],
            Some("a=b&access_token=x%2Ey.z"),
        );
        assert_eq!(basic(&m), Ok(Some(("alice".into(), b"pw:x".to_vec()))));
        assert_eq!(bearer(&m), Ok(None));
        assert_eq!(cookie(&m, "tok"), Ok(Some("x.y.z".into())));
        assert_eq!(query_param(&m, "access_token"), Ok(Some("x.y.z".into())));
        assert_eq!(query_param(&m, "nope"), Ok(None));
    }
}
