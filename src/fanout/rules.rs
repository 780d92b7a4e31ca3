//! Which SUBSCRIBE may join a shared broadcast subscription (pure, table-tested).
//!
//! A SUBSCRIBE is shared only when the page cannot tell the difference: the destination is
//! opted in by the configuration and is a broadcast destination for the broker's dialect (every
//! subscriber gets every message: never a queue, where subscribers compete), and it asks for
//! nothing a shared subscription could not give it per page (`ack` other than `auto`, a
//! `selector`, durable or named queues, `x-*` arguments: any header but `id`, `destination`,
//! `ack:auto` and `receipt`). A `receipt` is answered by the gateway once the shared broker
//! subscription is in force, as the broker's RECEIPT would be.

use crate::policy::Dialect;
use crate::stomp::{Command, Frame};

/// The headers a shareable SUBSCRIBE may carry.
const SHAREABLE_HEADERS: [&str; 4] = ["id", "destination", "ack", "receipt"];

/// The destination and subscription id of a shareable SUBSCRIBE, or `None` when the frame
/// keeps the session's own broker subscription.
pub fn shareable<'f>(
    patterns: &[String],
    dialect: Dialect,
    frame: &'f Frame,
) -> Option<(&'f [u8], &'f [u8])> {
    if frame.command != Command::Subscribe {
        return None;
    }
    let mut id = None;
    let mut destination = None;
    let mut receipt = None;
    for h in frame.headers() {
        let name = std::str::from_utf8(&h.name).ok()?;
        if !SHAREABLE_HEADERS.contains(&name) {
            return None;
        }
        let slot = match name {
            "id" => &mut id,
            "destination" => &mut destination,
            "receipt" => &mut receipt,
            _ if &h.value[..] == b"auto" => continue,
            _ => return None,
        };
        if slot.replace(&h.value[..]).is_some() {
            // A repeated header: the session's own path refuses or forwards it as today.
            return None;
        }
    }
    let (id, destination) = (id.filter(|i| !i.is_empty())?, destination?);
    let text = std::str::from_utf8(destination).ok()?;
    (is_broadcast(dialect, text) && patterns.iter().any(|p| glob(p.as_bytes(), destination)))
        .then_some((destination, id))
}

/// Whether every subscriber of `dest` gets every message, by the dialect's grammar. RabbitMQ's
/// `/exchange/NAME` may name a direct exchange too: opting such a pattern in asserts that the
/// exchanges it matches broadcast (fanout or topic), which STOMP cannot tell the gateway.
pub fn is_broadcast(dialect: Dialect, dest: &str) -> bool {
    let named = |prefix: &str| {
        dest.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    };
    match dialect {
        // ActiveMQ: `,` makes a composite destination, which may name a queue; `?` options
        // (e.g. a consumer's prefetch or retroactive flag) are the subscriber's own.
        Dialect::ActiveMq => named("/topic/") && !dest.contains([',', '?']),
        Dialect::RabbitMq => named("/topic/") || named("/exchange/"),
        Dialect::Generic => false,
    }
}

/// `*` matches within one `/`-separated segment, `**` across segments; anything else is
/// literal.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        [b'*', rest @ ..] => {
            let segment = text.iter().position(|&b| b == b'/').unwrap_or(text.len());
            (0..=segment).any(|i| glob(rest, &text[i..]))
        }
        [p, rest @ ..] => text.first() == Some(p) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribe(headers: &[(&str, &str)]) -> Frame {
        headers
            .iter()
            .fold(Frame::new(Command::Subscribe), |f, (n, v)| {
                f.with_header(n.to_string(), v.to_string())
            })
    }

    #[test]
    fn globs_match_within_and_across_segments() {
        let cases = [
            ("/exchange/Fanout*", "/exchange/FanoutDemandExchange", true),
            (
                "/exchange/Fanout*",
                "/exchange/FanoutDemandExchange/key",
                false,
            ),
            ("/topic/**", "/topic/a/b.c", true),
            ("/topic/*", "/topic/a", true),
            ("/topic/*", "/queue/a", false),
            ("/exchange/X", "/exchange/X", true),
            ("/exchange/X", "/exchange/XY", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} {t}");
        }
    }

    #[test]
    fn only_broadcast_destinations_of_the_dialect() {
        let cases = [
            (Dialect::RabbitMq, "/exchange/FanoutDemandExchange", true),
            (Dialect::RabbitMq, "/topic/prices", true),
            (Dialect::RabbitMq, "/queue/work", false),
            (Dialect::RabbitMq, "/amq/queue/work", false),
            (Dialect::RabbitMq, "/temp-queue/r", false),
            (Dialect::RabbitMq, "/exchange/", false),
            (Dialect::ActiveMq, "/topic/prices", true),
            (Dialect::ActiveMq, "/topic/a,/queue/b", false),
            (Dialect::ActiveMq, "/exchange/X", false),
            (Dialect::Generic, "/topic/prices", false),
        ];
        for (d, dest, want) in cases {
            assert_eq!(is_broadcast(d, dest), want, "{d:?} {dest}");
        }
    }

    #[test]
    fn only_plain_auto_ack_subscribes_are_shared() {
        let on = vec!["/exchange/Fanout*".to_string(), "/queue/**".to_string()];
        let dest = ("destination", "/exchange/FanoutDemandExchange");
        let shared =
            |h: &[(&str, &str)]| shareable(&on, Dialect::RabbitMq, &subscribe(h)).is_some();
        assert!(shared(&[("id", "sub-0"), dest]));
        assert!(shared(&[("id", "sub-0"), dest, ("ack", "auto")]));
        assert!(!shared(&[("id", "sub-0"), dest, ("ack", "client")]));
        assert!(!shared(&[
            ("id", "sub-0"),
            dest,
            ("ack", "client-individual")
        ]));
        assert!(!shared(&[("id", "sub-0"), dest, ("selector", "a = 1")]));
        assert!(shared(&[("id", "sub-0"), dest, ("receipt", "r1")]));
        assert!(!shared(&[
            ("id", "sub-0"),
            dest,
            ("receipt", "r1"),
            ("receipt", "r2")
        ]));
        assert!(!shared(&[("id", "sub-0"), dest, ("durable", "true")]));
        assert!(!shared(&[("id", "sub-0"), dest, ("x-queue-name", "q")]));
        assert!(!shared(&[("id", "sub-0"), dest, dest]));
        assert!(!shared(&[dest]));
        assert!(!shared(&[("id", "s"), ("destination", "/exchange/Other")]));
        // Opted in by a pattern, but a queue: never shared.
        assert!(!shared(&[("id", "s"), ("destination", "/queue/work")]));
        assert!(shareable(&[], Dialect::RabbitMq, &subscribe(&[("id", "s"), dest])).is_none());
    }
}
