//! Protocol version and heart-beat negotiation (STOMP 1.2 §"Heart-beating").

use std::time::Duration;

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping.
    V1_0,
    /// STOMP 1.1: escapes `\n`, `\c`, `\\`.
    V1_1,
    /// STOMP 1.2: also `\r`.
    V1_2,
}

impl Version {
    /// Parses `1.0`, `1.1` or `1.2`.
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// `1.0`, `1.1` or `1.2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// The WebSocket subprotocol name (`v12.stomp`, ...).
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V1_0 => "v10.stomp",
            Version::V1_1 => "v11.stomp",
            Version::V1_2 => "v12.stomp",
        }
    }

    /// Parses a WebSocket subprotocol name.
    pub fn from_subprotocol(s: &str) -> Option<Version> {
        match s.trim() {
            "v10.stomp" => Some(Version::V1_0),
            "v11.stomp" => Some(Version::V1_1),
            "v12.stomp" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// The highest version listed in an `accept-version` header (absent means 1.0).
    pub fn highest_accepted(accept_version: Option<&str>) -> Option<Version> {
        match accept_version {
            None => Some(Version::V1_0),
            Some(list) => list.split(',').filter_map(Version::parse).max(),
        }
    }
}

/// A `heart-beat` header value: `cx,cy` in milliseconds (0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeat {
    /// Smallest interval at which the sender can send heart-beats.
    pub send_ms: u32,
    /// Desired interval at which the sender wants to receive heart-beats.
    pub recv_ms: u32,
}

/// Parses a `heart-beat` header (`"10000,10000"`). Absent or malformed parts are refused.
pub fn parse_heartbeat(value: &str) -> Option<HeartBeat> {
    let (a, b) = value.split_once(',')?;
    Some(HeartBeat {
        send_ms: a.trim().parse().ok()?,
        recv_ms: b.trim().parse().ok()?,
    })
}

/// The negotiated intervals for one side, given what it sent (`ours`) in its frame and what the
/// peer sent (`theirs`). Returns (how often we must send, how often we expect to receive);
/// `None` means no heart-beat in that direction.
pub fn negotiate_heartbeat(
    ours: HeartBeat,
    theirs: HeartBeat,
) -> (Option<Duration>, Option<Duration>) {
    let pick =
        |a: u32, b: u32| (a != 0 && b != 0).then(|| Duration::from_millis(u64::from(a.max(b))));
    (
        pick(ours.send_ms, theirs.recv_ms),
        pick(ours.recv_ms, theirs.send_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_version_wins_and_absent_means_1_0() {
        assert_eq!(
            Version::highest_accepted(Some("1.0,1.2,1.1")),
            Some(Version::V1_2)
        );
        assert_eq!(Version::highest_accepted(None), Some(Version::V1_0));
        assert_eq!(Version::highest_accepted(Some("2.0")), None);
    }

    #[test]
    fn heartbeat_takes_the_larger_and_zero_disables() {
        let client = parse_heartbeat("10000,5000").unwrap();
        let server = parse_heartbeat("2000,20000").unwrap();
        let (send, recv) = negotiate_heartbeat(client, server);
        assert_eq!(send, Some(Duration::from_millis(20000)));
        assert_eq!(recv, Some(Duration::from_millis(5000)));
        let (send, recv) = negotiate_heartbeat(parse_heartbeat("0,0").unwrap(), server);
        assert_eq!((send, recv), (None, None));
        assert!(parse_heartbeat("x,1").is_none());
    }
}
