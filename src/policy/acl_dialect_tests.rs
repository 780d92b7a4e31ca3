//! The ACL under each broker's grammar, and the guarded headers.

use super::*;
use crate::policy::schema::PolicyFile;
use crate::policy::AuthSource;
use Dialect::{ActiveMq, Generic, RabbitMq};

/// The README's dashboard policy, a per-user rule, and a deny before a topic wildcard.
const RULES: &str = r#"
    [[acl]]
    role = "*"
    action = "allow"
    commands = ["SUBSCRIBE"]
    destination = "/exchange/FanoutDemandExchange"
    headers = { "x-queue-name" = "dash-{user}-*", "durable" = "true", "auto-delete" = "false" }

    [[acl]]
    role = "*"
    action = "allow"
    commands = ["SEND", "SUBSCRIBE"]
    destination = "/queue/user.{user}.*"
    headers = { "activemq.subscriptionName" = "{user}-*" }

    [[acl]]
    role = "*"
    action = "deny"
    commands = ["SUBSCRIBE"]
    destination = "/topic/feed.secret"

    [[acl]]
    role = "*"
    action = "allow"
    commands = ["SUBSCRIBE"]
    destination = "/topic/feed.*"

    [[acl]]
    role = "*"
    action = "allow"
    commands = ["SUBSCRIBE"]
    destination = "/topic/prices.>"
"#;

fn acl(text: &str) -> Result<Acl, PolicyError> {
    let file: PolicyFile = toml::from_str(text).expect("toml");
    Acl::compile(file.acl, Path::new("policy.toml"))
}

fn alice() -> Identity {
    Identity::new("alice", vec![], AuthSource::Jwt)
}

fn frame(command: Command, destination: &str, headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(command).with_header("destination", destination.to_owned());
    for (k, v) in headers {
        f = f.with_header(k.to_string(), v.to_string());
    }
    f
}

fn verdict(d: Dialect, f: &Frame) -> Result<(), DeniedKind> {
    let acl = acl(RULES).unwrap();
    let dest = f.header_bytes("destination");
    acl.check_client_frame(&alice(), f, dest, d, true)
        .map_err(|e| e.kind)
}

#[test]
fn destinations_under_each_dialect() {
    use Command::{Send, Subscribe};
    use DeniedKind::{NotAllowed, UnknownDestination};
    let ok = Ok(());
    let cases: &[(Dialect, Command, &str, Result<(), DeniedKind>)] = &[
        (RabbitMq, Subscribe, "/exchange/FanoutDemandExchange", ok),
        (RabbitMq, Send, "/queue/user.alice.in", ok),
        // A composite: one queue to the gateway, two to ActiveMQ.
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.x,secret",
            Err(NotAllowed),
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.x,>",
            Err(NotAllowed),
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.x,/topic/t",
            Err(NotAllowed),
        ),
        (
            Generic,
            Subscribe,
            "/queue/user.alice.x,secret",
            Err(NotAllowed),
        ),
        // `,` is a plain character in a RabbitMQ queue name.
        (RabbitMq, Subscribe, "/queue/user.alice.x,y", ok),
        // Wildcards the rule does not write literally.
        (ActiveMq, Subscribe, "/topic/feed.*", Err(NotAllowed)),
        (RabbitMq, Subscribe, "/topic/feed.*", Err(NotAllowed)),
        (RabbitMq, Subscribe, "/topic/feed.#", Err(NotAllowed)),
        (ActiveMq, Subscribe, "/topic/feed.>", Err(NotAllowed)),
        (ActiveMq, Subscribe, "/topic/feed.news", ok),
        (ActiveMq, Subscribe, "/topic/feed.secret", Err(NotAllowed)),
        // ... and the ones it does.
        (ActiveMq, Subscribe, "/topic/prices.>", ok),
        (ActiveMq, Subscribe, "/topic/prices.x>", Err(NotAllowed)),
        // RabbitMQ: `*` is literal in a queue name and on SEND.
        (RabbitMq, Send, "/queue/user.alice.*", ok),
        (ActiveMq, Send, "/queue/user.alice.*", Err(NotAllowed)),
        // Escapes and options that would name something else.
        (RabbitMq, Send, "/queue/user.alice.%2e", Err(NotAllowed)),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.x?consumer.exclusive=true",
            Err(NotAllowed),
        ),
        // What the dialect has no name for.
        (RabbitMq, Send, "/temp-topic/x", Err(UnknownDestination)),
        (
            ActiveMq,
            Subscribe,
            "/exchange/FanoutDemandExchange",
            Err(UnknownDestination),
        ),
        (
            RabbitMq,
            Send,
            "/queue/user.alice.a/b",
            Err(UnknownDestination),
        ),
    ];
    for (d, c, dest, want) in cases {
        assert_eq!(
            verdict(*d, &frame(*c, dest, &[])),
            *want,
            "{d:?} {c} {dest}"
        );
    }
}

#[test]
fn placeholder_values_with_broker_syntax_fail_closed() {
    let acl = acl(RULES).unwrap();
    let sneaky = Identity::new("a,b", vec![], AuthSource::Jwt);
    let f = frame(Command::Send, "/queue/user.a,b.x", &[]);
    let dest = f.header_bytes("destination");
    assert!(acl
        .check_client_frame(&sneaky, &f, dest, ActiveMq, true)
        .is_err());
    // RabbitMQ reads `,` as part of the name: the literal value matches.
    assert!(acl
        .check_client_frame(&sneaky, &f, dest, RabbitMq, true)
        .is_ok());
}

/// (dialect, command, destination, extra headers, verdict)
type HeaderCase<'a> = (
    Dialect,
    Command,
    &'a str,
    &'a [(&'a str, &'a str)],
    Result<(), DeniedKind>,
);

#[test]
fn guarded_headers_pass_only_as_the_rule_allows() {
    use Command::{Send, Subscribe, Unsubscribe};
    use DeniedKind::{AmbiguousHeader, HeaderNotAllowed, NotAllowed};
    let fanout = "/exchange/FanoutDemandExchange";
    let ok = Ok(());
    let cases: &[HeaderCase] = &[
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "dash-alice-1")],
            ok,
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "secret")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "dash-bob-1")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "dash-alice-*")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("X-Queue-Name", "dash-alice-1")],
            Err(AmbiguousHeader),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "dash-alice-1"), ("x-queue-name", "secret")],
            Err(AmbiguousHeader),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-queue-name", "dash-alice-1"), ("X-QUEUE-NAME", "secret")],
            Err(AmbiguousHeader),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("durable", "true"), ("auto-delete", "false")],
            ok,
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("durable", "false")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("persistent", "true")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("exclusive", "true")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("x-message-ttl", "1")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Subscribe,
            fanout,
            &[("prefetch-count", "10"), ("ack", "client")],
            ok,
        ),
        (
            RabbitMq,
            Send,
            "/queue/user.alice.in",
            &[("reply-to", "/temp-queue/r")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Send,
            "/queue/user.alice.in",
            &[("x-dead-letter-exchange", "x")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Send,
            "/queue/user.alice.in",
            &[("persistent", "true")],
            ok,
        ),
        // ActiveMQ does not read RabbitMQ's headers, and the reverse.
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.in",
            &[("x-queue-name", "anything")],
            ok,
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.in",
            &[("activemq.subscriptionName", "alice-1")],
            ok,
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.in",
            &[("activemq.subscriptionName", "bob-1")],
            Err(HeaderNotAllowed),
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.in",
            &[("activemq.retroactive", "true")],
            Err(HeaderNotAllowed),
        ),
        (
            ActiveMq,
            Send,
            "/queue/user.alice.in",
            &[("transformation", "jms-object-xml")],
            Err(HeaderNotAllowed),
        ),
        (
            ActiveMq,
            Subscribe,
            "/queue/user.alice.in",
            &[("selector", "a = 1")],
            ok,
        ),
        (
            Generic,
            Subscribe,
            "/queue/user.alice.in",
            &[("x-queue-name", "anything")],
            Err(HeaderNotAllowed),
        ),
        // UNSUBSCRIBE with a guarded header is checked as the SUBSCRIBE it undoes.
        (
            RabbitMq,
            Unsubscribe,
            fanout,
            &[("durable", "true"), ("x-queue-name", "dash-alice-1")],
            ok,
        ),
        (
            RabbitMq,
            Unsubscribe,
            fanout,
            &[("durable", "true"), ("x-queue-name", "secret")],
            Err(HeaderNotAllowed),
        ),
        (
            RabbitMq,
            Unsubscribe,
            "/queue/secret",
            &[("durable", "true")],
            Err(NotAllowed),
        ),
        (RabbitMq, Unsubscribe, "/queue/secret", &[], ok),
    ];
    for (d, c, dest, headers, want) in cases {
        assert_eq!(
            verdict(*d, &frame(*c, dest, headers)),
            *want,
            "{d:?} {c} {dest} {headers:?}"
        );
    }
}

#[test]
fn header_rules_are_validated_when_the_policy_loads() {
    let rule = |action: &str, commands: &str, headers: &str| {
        format!(
            "[[acl]]\nrole = \"*\"\naction = \"{action}\"\ncommands = {commands}\n\
             destination = \"/queue/q\"\nheaders = {headers}\n"
        )
    };
    let err = |text: String| acl(&text).unwrap_err().to_string();
    assert!(acl(&rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"x-queue-name\" = \"dash-*\" }"
    ))
    .is_ok());
    assert!(err(rule(
        "deny",
        "[\"SUBSCRIBE\"]",
        "{ \"durable\" = \"true\" }"
    ))
    .contains("only an allow rule"));
    assert!(err(rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"content-type\" = \"*\" }"
    ))
    .contains("not a header the gateway guards"));
    // `reply-to` is guarded on SEND only.
    assert!(err(rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"reply-to\" = \"/queue/r\" }"
    ))
    .contains("not a header the gateway guards"));
    assert!(err(rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"X-Queue-Name\" = \"dash-*\" }"
    ))
    .contains("as the broker spells it"));
    let any = err(rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"x-queue-name\" = \"*\" }",
    ));
    assert!(
        any.contains("acl[0].headers.x-queue-name") && any.contains("literal text"),
        "{any}"
    );
    assert!(err(rule("allow", "[\"SEND\"]", "{ \"reply-to\" = \"**\" }")).contains("literal text"));
    assert!(err(rule(
        "allow",
        "[\"SUBSCRIBE\"]",
        "{ \"durable\" = \"{nope}\" }"
    ))
    .contains("placeholder"));
}

/// The relay's frames are decoded ones, read in place: the same verdicts.
#[test]
fn decoded_frames_are_checked_as_built_ones() {
    use crate::stomp::{Decoder, Item, Limits};
    let acl = acl(RULES).unwrap();
    let check = |wire: &str| {
        let mut buf = bytes::BytesMut::from(wire.as_bytes());
        let Ok(Some(Item::Frame(f))) = Decoder::new(Limits::default()).decode(&mut buf) else {
            panic!("{wire:?} does not decode");
        };
        let dest = f.header_bytes("destination");
        acl.check_client_frame(&alice(), &f, dest, RabbitMq, true)
            .map_err(|e| e.kind)
    };
    let sub = "SUBSCRIBE\nid:1\ndestination:/exchange/FanoutDemandExchange\n";
    assert_eq!(
        check(&format!("{sub}x-queue-name:dash-alice-1\n\n\0")),
        Ok(())
    );
    assert_eq!(
        check(&format!("{sub}receipt:r\nX-Queue-Name:dash-alice-1\n\n\0")),
        Err(DeniedKind::AmbiguousHeader)
    );
    assert_eq!(
        check(&format!("{sub}x-queue-name:secret\r\n\r\n\0")),
        Err(DeniedKind::HeaderNotAllowed)
    );
    assert_eq!(
        check(&format!(
            "{sub}durable:true\nx-queue-name:dash-alice-1\ndurable:true\n\n\0"
        )),
        Err(DeniedKind::AmbiguousHeader)
    );
}

/// The relay's one pass (destination, repeats, hint) agrees with the separate lookups.
#[test]
fn the_relay_pass_finds_the_destination_and_the_hint() {
    use crate::policy::guarded::may_be_guarded;
    use crate::stomp::{Decoder, Item, Limits};
    let decode = |wire: &str| {
        let mut buf = bytes::BytesMut::from(wire.as_bytes());
        match Decoder::new(Limits::default()).decode(&mut buf) {
            Ok(Some(Item::Frame(f))) => f,
            other => panic!("{wire:?}: {other:?}"),
        }
    };
    let cases = [
        (
            "SEND\ndestination:/q\ncontent-length:0\n\n\0",
            Some(&b"/q"[..]),
            false,
            false,
        ),
        (
            "SEND\ndestination:/q\r\nDurable:x\n\n\0",
            Some(&b"/q"[..]),
            false,
            true,
        ),
        (
            "SEND\ndestination:/a\ndestination:/b\n\n\0",
            Some(&b"/a"[..]),
            true,
            false,
        ),
        ("SEND\ndestinationx:/a\nx-a:1\n\n\0", None, false, true),
        ("SEND\nreceipt:1\nreply-to:/q\n\n\0", None, false, true),
    ];
    for (wire, dest, repeated, hint) in cases {
        let f = decode(wire);
        assert_eq!(
            f.first_header_flagging("destination", may_be_guarded),
            (dest, repeated, hint),
            "{wire:?}"
        );
        let mut built = f.clone();
        built.clear_raw();
        assert_eq!(
            built.first_header_flagging("destination", may_be_guarded),
            (dest, repeated, hint),
            "{wire:?} (header list)"
        );
    }
}
