//! Headers that make a broker create, bind, consume or route to something other than the
//! destination the ACL checked. Under a policy with rules, a frame carrying one is refused
//! unless the rule that allowed its destination allows that header (and its value) explicitly.
//!
//! The list comes from the brokers' STOMP documentation and source (RabbitMQ 3.10's
//! `rabbit_stomp` headers and queue arguments; ActiveMQ 5.17's STOMP subscription options);
//! `docs/policy.md` gives the reason for each entry. Pure: no I/O.

use super::destination::Dialect;
use crate::stomp::Command;

/// One guarded header (or family of headers, by prefix).
#[derive(Debug)]
pub struct Guard {
    /// The header as the broker spells it (a prefix ends in `*`).
    pub name: &'static str,
    /// Whether `name` (without its `*`) is a prefix.
    prefix: bool,
    /// The commands on which the broker acts on it.
    commands: &'static [Command],
    /// The brokers that act on it.
    dialects: &'static [Dialect],
}

use Command::{Send, Subscribe, Unsubscribe};
use Dialect::{ActiveMq, RabbitMq};

/// Every guarded header. Order matters only for messages: an exact name before the prefix
/// that also covers it.
pub const GUARDS: &[Guard] = &[
    // RabbitMQ: the queue a subscription consumes (an existing durable queue is consumed and
    // stays bound); on UNSUBSCRIBE with `durable`, the queue deleted.
    guard("x-queue-name", &[Subscribe, Unsubscribe], &[RabbitMq]),
    // RabbitMQ queue arguments on the queue it declares: dead-lettering routes to another
    // exchange, TTL and length limits drop messages, `x-queue-type` changes the queue.
    guard("x-*", &[Subscribe, Send], &[RabbitMq]),
    // RabbitMQ: a durable subscription queue outlives the session; on SEND, a declare
    // parameter of `/queue/`; on UNSUBSCRIBE, deletes the subscription's queue.
    guard("durable", &[Subscribe, Send, Unsubscribe], &[RabbitMq]),
    // RabbitMQ: the older name of `durable` on SUBSCRIBE (on SEND it is the delivery mode).
    guard("persistent", &[Subscribe, Unsubscribe], &[RabbitMq]),
    // RabbitMQ: a queue that is not deleted when its consumer leaves.
    guard("auto-delete", &[Subscribe, Send], &[RabbitMq]),
    // RabbitMQ: an exclusive queue shuts other consumers out.
    guard("exclusive", &[Subscribe, Send], &[RabbitMq]),
    // Both: RabbitMQ creates and subscribes a `/temp-queue/` named here; any value sends the
    // receiver's answer to a destination the ACL never checked.
    guard("reply-to", &[Send], &[RabbitMq, ActiveMq]),
    // ActiveMQ subscription options: durable subscriptions (`activemq.subscriptionName`, also
    // on UNSUBSCRIBE, which deletes one), retroactive replay, exclusive consumers, priority.
    guard("activemq.*", &[Subscribe, Send, Unsubscribe], &[ActiveMq]),
    // The ActiveMQ family's other names for a durable subscription (Artemis reads them).
    guard(
        "durable-subscription-name",
        &[Subscribe, Unsubscribe],
        &[ActiveMq],
    ),
    guard(
        "durable-subscriber-name",
        &[Subscribe, Unsubscribe],
        &[ActiveMq],
    ),
    // ActiveMQ: converts bodies to and from Java objects (XStream/Jettison) on the broker.
    guard("transformation", &[Subscribe, Send], &[ActiveMq]),
];

const fn guard(
    name: &'static str,
    commands: &'static [Command],
    dialects: &'static [Dialect],
) -> Guard {
    let bytes = name.as_bytes();
    Guard {
        name,
        prefix: bytes[bytes.len() - 1] == b'*',
        commands,
        dialects,
    }
}

impl Guard {
    /// Whether `name` is this header in any letter case.
    fn covers(&self, name: &[u8]) -> bool {
        if self.prefix {
            let stem = &self.name.as_bytes()[..self.name.len() - 1];
            name.len() > stem.len() && name[..stem.len()].eq_ignore_ascii_case(stem)
        } else {
            name.eq_ignore_ascii_case(self.name.as_bytes())
        }
    }

    /// Whether `name` is spelt as the broker reads it (a prefix in its own case; the rest of
    /// a prefixed name is the client's business).
    pub fn spelt_canonically(&self, name: &[u8]) -> bool {
        let stem = self.name.trim_end_matches('*').as_bytes();
        name.starts_with(stem)
    }

    fn applies(&self, dialect: Dialect, command: Command) -> bool {
        self.commands.contains(&command)
            && (dialect == Dialect::Generic || self.dialects.contains(&dialect))
    }
}

/// Whether a header whose name starts `name` (possibly followed by more of its line) may be
/// guarded: a test of its first bytes, in any letter case, that rules out the common headers
/// (`destination`, `content-length`, `receipt`, …) before their line is split. Never false for
/// a guarded name.
#[inline]
pub fn may_be_guarded(name: &[u8]) -> bool {
    // `| 0x20` lowercases a letter; no other byte becomes one of these letters.
    let lower = |i: usize| name.get(i).map_or(0, |b| b | 0x20);
    let (a, b, c) = (lower(0), lower(1), lower(2));
    (a == b'x' && name.get(1) == Some(&b'-'))
        || matches!(
            [a, b, c],
            [b'd', b'u', b'r']
                | [b'p', b'e', b'r']
                | [b'a', b'u', b't']
                | [b'e', b'x', b'c']
                | [b'r', b'e', b'p']
                | [b'a', b'c', b't']
                | [b't', b'r', b'a']
        )
}

/// The guard covering header `name` (any letter case) on `command` for `dialect`; the
/// generic dialect guards what either broker acts on.
#[inline]
pub fn guard_for(dialect: Dialect, command: Command, name: &[u8]) -> Option<&'static Guard> {
    if !may_be_guarded(name) {
        return None;
    }
    GUARDS
        .iter()
        .find(|g| g.covers(name) && g.applies(dialect, command))
}

/// The guard covering `name` on any of `commands` in any dialect: whether a rule may name it.
pub fn guard_in_any_dialect(commands: &[Command], name: &str) -> Option<&'static Guard> {
    commands
        .iter()
        .find_map(|&c| guard_for(Dialect::Generic, c, name.as_bytes()))
}

/// Commands whose headers are guarded at all.
pub fn has_guards(command: Command) -> bool {
    matches!(command, Send | Subscribe | Unsubscribe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(d: Dialect, c: Command, name: &str) -> Option<&'static str> {
        guard_for(d, c, name.as_bytes()).map(|g| g.name)
    }

    #[test]
    fn guard_table() {
        use Dialect::Generic;
        let cases: &[(Dialect, Command, &str, Option<&str>)] = &[
            (RabbitMq, Subscribe, "x-queue-name", Some("x-queue-name")),
            (RabbitMq, Subscribe, "X-Queue-Name", Some("x-queue-name")),
            (RabbitMq, Unsubscribe, "x-queue-name", Some("x-queue-name")),
            (RabbitMq, Subscribe, "x-message-ttl", Some("x-*")),
            (RabbitMq, Send, "x-dead-letter-exchange", Some("x-*")),
            (RabbitMq, Send, "x-", None),
            (RabbitMq, Subscribe, "durable", Some("durable")),
            (RabbitMq, Subscribe, "persistent", Some("persistent")),
            (RabbitMq, Send, "persistent", None),
            (RabbitMq, Subscribe, "auto-delete", Some("auto-delete")),
            (RabbitMq, Subscribe, "exclusive", Some("exclusive")),
            (RabbitMq, Send, "reply-to", Some("reply-to")),
            (RabbitMq, Subscribe, "activemq.subscriptionName", None),
            (RabbitMq, Subscribe, "destination", None),
            (RabbitMq, Subscribe, "prefetch-count", None),
            (RabbitMq, Ack, "x-queue-name", None),
            (
                ActiveMq,
                Subscribe,
                "activemq.subscriptionName",
                Some("activemq.*"),
            ),
            (
                ActiveMq,
                Unsubscribe,
                "ACTIVEMQ.subscriptionName",
                Some("activemq.*"),
            ),
            (
                ActiveMq,
                Subscribe,
                "activemq.retroactive",
                Some("activemq.*"),
            ),
            (ActiveMq, Send, "reply-to", Some("reply-to")),
            (ActiveMq, Send, "transformation", Some("transformation")),
            (ActiveMq, Subscribe, "x-queue-name", None),
            (ActiveMq, Subscribe, "selector", None),
            (ActiveMq, Send, "JMSXGroupID", None),
            (ActiveMq, Send, "persistent", None),
            (Generic, Subscribe, "x-queue-name", Some("x-queue-name")),
            (Generic, Subscribe, "activemq.exclusive", Some("activemq.*")),
            (Generic, Send, "content-type", None),
        ];
        use Command::Ack;
        for (d, c, name, want) in cases {
            assert_eq!(guarded(*d, *c, name), *want, "{d:?} {c} {name}");
        }
    }

    #[test]
    fn the_prefilter_passes_every_guarded_name() {
        for g in GUARDS {
            let name = g.name.replace('*', "anything");
            for n in [name.clone(), name.to_uppercase()] {
                assert!(may_be_guarded(n.as_bytes()), "{n}");
                assert!(may_be_guarded(format!("{n}:value").as_bytes()), "{n}");
            }
        }
        for common in [
            "destination",
            "content-length",
            "content-type",
            "receipt",
            "id",
            "ack",
        ] {
            assert!(!may_be_guarded(common.as_bytes()), "{common}");
        }
    }

    #[test]
    fn canonical_spelling() {
        let g = guard_for(RabbitMq, Subscribe, b"X-QUEUE-NAME").unwrap();
        assert!(!g.spelt_canonically(b"X-QUEUE-NAME"));
        assert!(g.spelt_canonically(b"x-queue-name"));
        let g = guard_for(ActiveMq, Subscribe, b"activemq.subscriptionName").unwrap();
        assert!(g.spelt_canonically(b"activemq.subscriptionName"));
        assert!(!g.spelt_canonically(b"ActiveMQ.subscriptionName"));
    }
}
