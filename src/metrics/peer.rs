//! The client's address as operators want to see it: the TCP peer, unless that peer is a
//! trusted proxy, in which case `X-Forwarded-For` is read from the right, skipping further
//! trusted hops (the left-most entries are whatever the client claimed and are not believed).

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Most `X-Forwarded-For` entries looked at (a bound on work per request).
const MAX_FORWARDED_HOPS: usize = 32;

/// The client address behind `peer`, honouring `X-Forwarded-For` only from `trusted` proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if hops.len() < MAX_FORWARDED_HOPS => hops.push(canonical(ip)),
                Ok(_) => {}
                // An unparsable hop: stop believing anything left of it.
                Err(_) => hops.clear(),
            }
        }
    }
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so `10.0.0.0/8` matches `::ffff:10.1.2.3`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &[]), ip("10.1.1.1"));
    }

    #[test]
    fn spoofed_left_entries_are_ignored() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // client claims 1.2.3.4; the real client 198.51.100.7 went through two proxies.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        let all_trusted = headers(&["10.9.9.9"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &all_trusted, &trusted),
            ip("10.9.9.9")
        );
        let garbage = headers(&["nonsense"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &garbage, &trusted),
            ip("10.0.0.1")
        );
    }
}
