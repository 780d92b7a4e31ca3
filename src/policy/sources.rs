//! [`RequestCredentials`]: which credentials the configured backends read from the HTTP request
//! itself (cookies, `Authorization`) rather than from the CONNECT frame. The SockJS layer asks
//! this to bind a session to the credential that opened it and to tell whether a browser sends
//! that credential on its own (a cookie, cached HTTP Basic), which makes cross-site requests
//! without an `Origin` dangerous.

use super::backend::Backend;

/// The request-borne credentials a policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCredentials {
    /// Cookie names a `jwt` backend reads (`sources.cookie`).
    pub cookies: Vec<String>,
    /// An `http-basic` backend reads `Authorization: Basic`.
    pub basic: bool,
    /// A `jwt` backend reads `Authorization: Bearer` (`sources.authorization_header`).
    pub bearer: bool,
}

impl RequestCredentials {
    /// What `backends` read from the request.
    pub(super) fn of(backends: &[Backend]) -> RequestCredentials {
        let mut out = RequestCredentials::default();
        for backend in backends {
            match backend {
                Backend::HttpBasic(_) => out.basic = true,
                Backend::Jwt(jwt) => {
                    let sources = jwt.sources();
                    out.bearer |= sources.authorization_header;
                    if let Some(name) = &sources.cookie {
                        if !out.cookies.contains(name) {
                            out.cookies.push(name.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Whether a browser attaches the credential to requests by itself, cross-site ones
    /// included: a cookie, or HTTP Basic credentials it has cached.
    pub fn ambient(&self) -> bool {
        !self.cookies.is_empty() || self.basic
    }

    /// Whether `Authorization` carries a credential.
    pub fn reads_authorization(&self) -> bool {
        self.basic || self.bearer
    }
}
