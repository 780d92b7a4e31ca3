//! Broker dialects and their destination grammar: what a destination names on RabbitMQ or
//! ActiveMQ, and which of its characters the broker reads as syntax (wildcards, composites,
//! escapes, options) rather than as part of a name.
//!
//! The ACL uses this to keep a rule from allowing more than it says: a destination the dialect
//! cannot classify is refused, and a rule's glob wildcards (`*`, `**`) never stand for a
//! *reserved* character. A reserved character passes only where the rule's own text has it
//! literally (`/topic/prices.>` allows ActiveMQ's `>` subscription; `/queue/user.{user}.*` does
//! not allow `/queue/user.dash.x,other`). Pure: no I/O.

use serde::Deserialize;

use crate::stomp::Command;

/// Which broker the gateway talks to; decides the destination grammar and the guarded headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// RabbitMQ's STOMP plugin: `/exchange/`, `/queue/`, `/amq/queue/`, `/topic/`,
    /// `/temp-queue/`, `/reply-queue/`; `*`/`#` in subscribed routing keys; `%XX` escapes.
    #[value(name = "rabbitmq")]
    RabbitMq,
    /// ActiveMQ Classic: `/queue/`, `/topic/`, `/temp-queue/`, `/temp-topic/`; composites
    /// (`,`), wildcards (`*`, `>`), destination options (`?`).
    #[value(name = "activemq")]
    ActiveMq,
    /// Any other broker: every destination is accepted as a name, and every character either
    /// broker reads as syntax is reserved (the strictest reading of both).
    #[default]
    Generic,
}

impl Dialect {
    /// The dialect a CONNECTED frame's `server` header announces (`RabbitMQ/3.10.8`,
    /// `ActiveMQ/5.17.2`); [`Dialect::Generic`] for anything else or nothing.
    pub fn detect(server: Option<&[u8]>) -> Dialect {
        let product = server.unwrap_or_default();
        let product = product.split(|&b| b == b'/').next().unwrap_or_default();
        if product.eq_ignore_ascii_case(b"RabbitMQ") {
            Dialect::RabbitMq
        } else if product.eq_ignore_ascii_case(b"ActiveMQ") {
            Dialect::ActiveMq
        } else {
            Dialect::Generic
        }
    }

    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::RabbitMq => "rabbitmq",
            Dialect::ActiveMq => "activemq",
            Dialect::Generic => "generic",
        }
    }
}

/// A set of bytes below 64 (every reserved character is: `#%*,>?`), as a bit mask: the test
/// per byte is a shift and a compare, on the relay's per-frame path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved(u64);

impl Reserved {
    /// No reserved characters.
    pub const NONE: Reserved = Reserved(0);
    /// Every character either broker reads as syntax.
    pub const ALL: Reserved = Reserved::of(b"%*#,>?");
    /// `.` alone: lets the matcher's property test reserve a byte its random texts contain.
    #[cfg(test)]
    pub(crate) const DOT_FOR_TESTS: Reserved = Reserved::of(b".");

    const fn of(bytes: &[u8]) -> Reserved {
        let mut bits = 0u64;
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] < 64, "reserved characters are below 64");
            bits |= 1 << bytes[i];
            i += 1;
        }
        Reserved(bits)
    }

    /// Whether `b` is reserved.
    #[inline]
    pub fn contains(self, b: u8) -> bool {
        b < 64 && (self.0 >> b) & 1 == 1
    }

    /// Whether any byte of `text` is reserved.
    #[inline]
    pub fn any_in(self, text: &[u8]) -> bool {
        self.0 != 0 && text.iter().any(|&b| self.contains(b))
    }
}

/// What kind of broker resource a destination names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RabbitMQ `/exchange/NAME[/KEY]`.
    Exchange,
    /// `/queue/NAME`.
    Queue,
    /// RabbitMQ `/amq/queue/NAME` (an existing queue, not declared).
    AmqQueue,
    /// `/topic/NAME` (RabbitMQ: a routing key on `amq.topic`).
    Topic,
    /// `/temp-queue/NAME`.
    TempQueue,
    /// RabbitMQ `/reply-queue/NAME`.
    ReplyQueue,
    /// ActiveMQ `/temp-topic/NAME`.
    TempTopic,
    /// A name the generic dialect does not look into.
    Other,
}

/// A destination the dialect understood: its kind and the characters that are syntax in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The resource kind.
    pub kind: Kind,
    /// Characters the broker reads as syntax here: a rule's wildcards never match them.
    pub reserved: Reserved,
}

const RABBITMQ_PREFIXES: [(&str, Kind); 6] = [
    ("/exchange/", Kind::Exchange),
    ("/queue/", Kind::Queue),
    ("/amq/queue/", Kind::AmqQueue),
    ("/topic/", Kind::Topic),
    ("/temp-queue/", Kind::TempQueue),
    ("/reply-queue/", Kind::ReplyQueue),
];

const ACTIVEMQ_PREFIXES: [(&str, Kind); 4] = [
    ("/queue/", Kind::Queue),
    ("/topic/", Kind::Topic),
    ("/temp-queue/", Kind::TempQueue),
    ("/temp-topic/", Kind::TempTopic),
];

/// RabbitMQ unescapes `%XX` in destination names.
const RABBITMQ_NAME: Reserved = Reserved::of(b"%");
/// In a subscribed routing key (a binding key) `*` and `#` are wildcards.
const RABBITMQ_BINDING: Reserved = Reserved::of(b"%*#");
/// Composites (`,`), wildcards (`*`, `>`) and destination options (`?`), on every command.
const ACTIVEMQ: Reserved = Reserved::of(b",*>?");

/// Classifies `dest` as the broker would read it for `command`; `None` when the dialect has
/// no such destination (an unknown prefix, an empty name, a queue name with a `/`).
pub fn classify(dialect: Dialect, command: Command, dest: &str) -> Option<Classified> {
    match dialect {
        Dialect::RabbitMq => classify_rabbitmq(command, dest),
        Dialect::ActiveMq => {
            let (kind, _) = split_prefix(&ACTIVEMQ_PREFIXES, dest)?;
            Some(Classified {
                kind,
                reserved: ACTIVEMQ,
            })
        }
        Dialect::Generic => (!dest.is_empty()).then_some(Classified {
            kind: Kind::Other,
            reserved: Reserved::ALL,
        }),
    }
}

fn classify_rabbitmq(command: Command, dest: &str) -> Option<Classified> {
    let (kind, name) = split_prefix(&RABBITMQ_PREFIXES, dest)?;
    let key_is_binding = command == Command::Subscribe;
    let reserved = match kind {
        Kind::Topic | Kind::Exchange if key_is_binding => RABBITMQ_BINDING,
        _ => RABBITMQ_NAME,
    };
    let well_formed = match kind {
        // `/exchange/NAME/KEY`: the exchange name itself has no `/`.
        Kind::Exchange => !name.starts_with('/'),
        Kind::Topic => true,
        _ => !name.contains('/'),
    };
    well_formed.then_some(Classified { kind, reserved })
}

/// The kind and the name after the longest matching prefix; the name must not be empty.
fn split_prefix<'d>(prefixes: &[(&str, Kind)], dest: &'d str) -> Option<(Kind, &'d str)> {
    prefixes.iter().find_map(|(prefix, kind)| {
        let name = dest.strip_prefix(prefix)?;
        (!name.is_empty()).then_some((*kind, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::{Send, Subscribe};
    use Dialect::{ActiveMq, Generic, RabbitMq};

    #[test]
    fn detects_the_broker_from_connected() {
        assert_eq!(Dialect::detect(Some(b"RabbitMQ/3.10.8")), RabbitMq);
        assert_eq!(Dialect::detect(Some(b"ActiveMQ/5.17.2")), ActiveMq);
        assert_eq!(Dialect::detect(Some(b"activemq")), ActiveMq);
        assert_eq!(Dialect::detect(Some(b"Apache ActiveMQ Artemis")), Generic);
        assert_eq!(Dialect::detect(Some(b"RabbitMQish/1")), Generic);
        assert_eq!(Dialect::detect(None), Generic);
    }

    #[test]
    fn grammar_table() {
        let q = |kind| Some(kind);
        // (dialect, command, destination, kind or None when unclassifiable)
        let cases: &[(Dialect, Command, &str, Option<Kind>)] = &[
            (
                RabbitMq,
                Subscribe,
                "/exchange/FanoutDemandExchange",
                q(Kind::Exchange),
            ),
            (RabbitMq, Send, "/exchange/amq.topic/a.b", q(Kind::Exchange)),
            (RabbitMq, Send, "/exchange//x", None),
            (RabbitMq, Send, "/exchange/", None),
            (RabbitMq, Send, "/queue/a", q(Kind::Queue)),
            (RabbitMq, Send, "/queue/a/b", None),
            (RabbitMq, Send, "/queue/", None),
            (
                RabbitMq,
                Subscribe,
                "/amq/queue/existing",
                q(Kind::AmqQueue),
            ),
            (RabbitMq, Subscribe, "/topic/a.b/c", q(Kind::Topic)),
            (RabbitMq, Subscribe, "/temp-queue/r", q(Kind::TempQueue)),
            (
                RabbitMq,
                Send,
                "/reply-queue/amq.gen-1",
                q(Kind::ReplyQueue),
            ),
            (RabbitMq, Send, "/temp-topic/x", None),
            (RabbitMq, Send, "queue/a", None),
            (RabbitMq, Send, "/QUEUE/a", None),
            (ActiveMq, Send, "/queue/a.b", q(Kind::Queue)),
            (ActiveMq, Subscribe, "/topic/a.>", q(Kind::Topic)),
            (ActiveMq, Subscribe, "/temp-topic/t", q(Kind::TempTopic)),
            (ActiveMq, Subscribe, "/temp-queue/t", q(Kind::TempQueue)),
            (ActiveMq, Subscribe, "/exchange/x", None),
            (ActiveMq, Subscribe, "/amq/queue/x", None),
            (ActiveMq, Subscribe, "queue://x", None),
            (Generic, Subscribe, "anything", q(Kind::Other)),
            (Generic, Subscribe, "", None),
        ];
        for (dialect, command, dest, want) in cases {
            let got = classify(*dialect, *command, dest).map(|c| c.kind);
            assert_eq!(got, *want, "{dialect:?} {command} {dest}");
        }
    }

    #[test]
    fn reserved_characters_follow_the_broker() {
        let reserved = |d, c, dest: &str| classify(d, c, dest).unwrap().reserved;
        // RabbitMQ: `*` and `#` are wildcards only in a binding key (SUBSCRIBE to a topic or
        // an exchange); in a queue name or a routing key on SEND they are plain characters.
        assert!(reserved(RabbitMq, Subscribe, "/topic/a").contains(b'#'));
        assert!(reserved(RabbitMq, Subscribe, "/exchange/e/k").contains(b'*'));
        assert!(!reserved(RabbitMq, Send, "/topic/a").contains(b'*'));
        assert!(!reserved(RabbitMq, Subscribe, "/queue/a").contains(b'#'));
        assert!(reserved(RabbitMq, Send, "/queue/a").contains(b'%'));
        assert!(!reserved(RabbitMq, Subscribe, "/topic/a").contains(b','));
        for b in *b",*>?" {
            assert!(
                reserved(ActiveMq, Send, "/queue/a").contains(b),
                "{}",
                b as char
            );
        }
        assert!(!reserved(ActiveMq, Send, "/queue/a").contains(b'#'));
        for b in *b"%*#,>?" {
            assert!(reserved(Generic, Send, "x").contains(b), "{}", b as char);
        }
        assert!(!Reserved::ALL.contains(b'/') && !Reserved::ALL.contains(0xC3));
        assert!(Reserved::ALL.any_in(b"/queue/a,b") && !Reserved::ALL.any_in(b"/queue/a.b"));
        assert!(!Reserved::NONE.any_in(b"*"));
    }
}
