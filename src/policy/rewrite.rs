//! The CONNECT rewrite: the client never chooses the broker identity or vhost
//! (docs/ARCHITECTURE.md invariant 2).

use crate::config::Secret;
use crate::stomp::Frame;

/// Who the gateway presents itself as to the broker for one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamIdentity {
    /// Broker `login`.
    pub login: Option<String>,
    /// Broker `passcode`.
    pub passcode: Option<Secret>,
    /// Broker `host` (vhost).
    pub host: Option<String>,
}

/// Header names the client may never choose, compared without regard to case so that `Login`
/// or `HOST` cannot slip past a broker that reads headers case-insensitively.
const GUARDED: [&str; 3] = ["login", "passcode", "host"];

/// Removes every client copy of `login`, `passcode` and `host` (any case) from a CONNECT/STOMP
/// frame and puts the gateway's values first.
pub fn rewrite_connect(frame: &mut Frame, id: &UpstreamIdentity) {
    frame.remove_headers_where(|h| {
        GUARDED
            .iter()
            .any(|g| h.name.eq_ignore_ascii_case(g.as_bytes()))
    });
    if let Some(host) = &id.host {
        frame.set_header_first("host", host.clone());
    }
    if let Some(pass) = &id.passcode {
        frame.set_header_first("passcode", pass.expose().to_owned());
    }
    if let Some(login) = &id.login {
        frame.set_header_first("login", login.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::Command;

    #[test]
    fn every_client_copy_goes_and_ours_come_first() {
        let mut f = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("login", "guest")
            .with_header("Login", "guest")
            .with_header("PASSCODE", "guest")
            .with_header("host", "/")
            .with_header("host", "other");
        let id = UpstreamIdentity {
            login: Some("svc".into()),
            passcode: Some(Secret::new("pw")),
            host: Some("vh".into()),
        };
        rewrite_connect(&mut f, &id);
        let names: Vec<_> = f.headers().iter().map(|h| h.name.clone()).collect();
        assert_eq!(names, vec!["login", "passcode", "host", "accept-version"]);
        assert_eq!(f.header("login"), Some("svc"));
        assert_eq!(f.header("passcode"), Some("pw"));
        assert_eq!(f.header("host"), Some("vh"));
    }
}
