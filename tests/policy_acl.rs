//! Destination ACLs and the identity → broker mapping: allow/deny as written, placeholders,
//! glob escaping, default deny, templates, and the CONNECT rewrite that follows.

mod policy_common;

use policy_common::*;
use stompgate::policy::{
    rewrite_connect, AuthSource, DeniedKind, Identity, Policy, PolicyError, UpstreamIdentity,
};
use stompgate::stomp::{Command, Frame};

const ACL_POLICY: &str = r#"
[[auth]]
type = "passthrough"

[[acl]]
role = "reader"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/exchange/FanoutDemandExchange"

[[acl]]
role = "user"
action = "deny"
commands = ["SEND"]
destination = "/queue/user.{user}.admin"

[[acl]]
role = "user"
action = "allow"
commands = ["SEND", "SUBSCRIBE"]
destination = "/queue/user.{user}.*"

[[acl]]
role = "tenant"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/topic/{claims.tenant}/**"

[[acl]]
role = "*"
action = "allow"
commands = ["SUBSCRIBE"]
destination = "/topic/public"
"#;

fn id(user: &str, roles: &[&str]) -> Identity {
    Identity::new(
        user,
        roles.iter().map(|r| r.to_string()).collect(),
        AuthSource::Jwt,
    )
}

fn allowed(p: &Policy, id: &Identity, cmd: Command, dest: &str) -> bool {
    p.check(id, cmd, Some(dest)).is_ok()
}

#[test]
fn acl_table() {
    let dir = TempDir::new();
    let p = dir.policy(ACL_POLICY);
    let reader = id("r", &["reader"]);
    let alice = id("alice", &["user"]);
    let mut tenant = id("t", &["tenant"]);
    tenant.claims.insert("tenant".into(), "acme".into());
    let nobody = id("n", &[]);
    use Command::{Send, Subscribe};
    let cases: &[(&Identity, Command, &str, bool)] = &[
        (&reader, Subscribe, "/exchange/FanoutDemandExchange", true),
        (&reader, Send, "/exchange/FanoutDemandExchange", false),
        (&reader, Subscribe, "/exchange/FanoutDemandExchange2", false),
        (&reader, Subscribe, "/queue/user.r.in", false),
        (&alice, Send, "/queue/user.alice.in", true),
        (&alice, Subscribe, "/queue/user.alice.out", true),
        (&alice, Send, "/queue/user.alice.admin", false), // deny before allow
        (&alice, Subscribe, "/queue/user.alice.admin", true), // deny is SEND only
        (&alice, Send, "/queue/user.bob.in", false),
        (&alice, Send, "/queue/user.alice.a/b", false), // `*` stops at `/`
        (&alice, Send, "/queue/user.alicex.in", false),
        (&tenant, Subscribe, "/topic/acme/a/b/c", true), // `**` crosses `/`
        (&tenant, Subscribe, "/topic/other/a", false),
        (&nobody, Subscribe, "/topic/public", true),
        (&nobody, Subscribe, "/topic/private", false), // default deny, even with no rules of its own
        (&nobody, Send, "/topic/public", false),
    ];
    for (who, cmd, dest, want) in cases {
        assert_eq!(
            allowed(&p, who, *cmd, dest),
            *want,
            "{} {cmd} {dest}",
            who.user
        );
    }
    // other commands are not the ACL's business
    assert!(p.check(&nobody, Command::Ack, None).is_ok());
    assert!(p.check(&nobody, Command::Unsubscribe, Some("/x")).is_ok());
}

#[test]
fn placeholder_values_are_literal_so_they_cannot_widen_a_glob() {
    let dir = TempDir::new();
    let p = dir.policy(ACL_POLICY);
    let star = id("*", &["user"]);
    assert!(allowed(&p, &star, Command::Send, "/queue/user.*.in"));
    assert!(!allowed(&p, &star, Command::Send, "/queue/user.bob.in"));
    let stars = id("**", &["user"]);
    assert!(!allowed(&p, &stars, Command::Send, "/queue/user.a/b.in"));
    let mut sneaky = id("t", &["tenant"]);
    sneaky.claims.insert("tenant".into(), "*".into());
    assert!(!allowed(&p, &sneaky, Command::Subscribe, "/topic/acme/x"));
    assert!(allowed(&p, &sneaky, Command::Subscribe, "/topic/*/x"));
}

#[test]
fn missing_claim_fails_closed() {
    let dir = TempDir::new();
    let p = dir.policy(
        r#"
        [[auth]]
        type = "passthrough"
        [[acl]]
        role = "*"
        action = "deny"
        commands = ["SEND"]
        destination = "/queue/{claims.tenant}.admin"
        [[acl]]
        role = "*"
        action = "allow"
        commands = ["SEND"]
        destination = "**"
        "#,
    );
    let no_claim = id("a", &[]);
    assert!(!allowed(&p, &no_claim, Command::Send, "/queue/acme.admin"));
    assert!(!allowed(&p, &no_claim, Command::Send, "/queue/anything"));
    let mut with = id("a", &[]);
    with.claims.insert("tenant".into(), "acme".into());
    assert!(!allowed(&p, &with, Command::Send, "/queue/acme.admin"));
    assert!(allowed(&p, &with, Command::Send, "/queue/anything"));
}

#[test]
fn no_rules_allow_everything() {
    let dir = TempDir::new();
    let p = dir.policy("[[auth]]\ntype = \"passthrough\"\n");
    assert!(allowed(&p, &id("a", &[]), Command::Send, "/queue/anything"));
    assert!(p.check(&id("a", &[]), Command::Send, None).is_ok());
}

#[test]
fn frames_with_missing_or_repeated_destination_are_refused() {
    let dir = TempDir::new();
    let p = dir.policy(ACL_POLICY);
    let alice = id("alice", &["user"]);
    let ok = Frame::new(Command::Send).with_header("destination", "/queue/user.alice.in");
    assert!(p.check_frame(&alice, &ok).is_ok());
    let twice = ok.clone().with_header("destination", "/queue/user.bob.in");
    let e = p.check_frame(&alice, &twice).unwrap_err();
    assert_eq!(e.kind, DeniedKind::AmbiguousDestination);
    assert_eq!(e.reason(), "ambiguous_destination");
    let none = Frame::new(Command::Subscribe).with_header("id", "0");
    assert_eq!(
        p.check_frame(&alice, &none).unwrap_err().kind,
        DeniedKind::MissingDestination
    );
    let denied = Frame::new(Command::Send).with_header("destination", "/queue/x");
    let e = p.check_frame(&alice, &denied).unwrap_err();
    assert_eq!(
        e.to_string(),
        "access refused: SEND to /queue/x is not allowed"
    );
    let ack = Frame::new(Command::Ack).with_header("id", "1");
    assert!(p.check_frame(&alice, &ack).is_ok());
}

const MAPPING_POLICY: &str = r#"
[[auth]]
type = "passthrough"

[upstream.default]
login = "svc-default"
passcode_file = "default.secret"
vhost = "/"

[[upstream.user]]
user = "root"
login = "svc-admin"
passcode = "admin-pw"
vhost = "admin"

[[upstream.role]]
role = "tenant"
login = "svc-{claims.tenant}"
passcode_file = "tenant.secret"
vhost = "tenant-{claims.tenant}"

[[upstream.role]]
role = "personal"
login = "u-{user}"
passcode = "personal-pw"
vhost = "users"
"#;

fn mapping_dir() -> TempDir {
    let dir = TempDir::new();
    dir.write("default.secret", "default-pw\n");
    dir.write("tenant.secret", "tenant-pw\n");
    dir
}

#[test]
fn mapping_by_user_role_template_and_default() {
    let dir = mapping_dir();
    let p = dir.policy(MAPPING_POLICY);
    let c = connect(&[
        ("login", "client"),
        ("passcode", "client-pw"),
        ("host", "client-vh"),
    ]);
    let up = |i: &Identity| p.upstream_for(i, &c).unwrap();
    let mut t = id("x", &["tenant", "personal"]);
    t.claims.insert("tenant".into(), "acme".into());
    let got = up(&t);
    assert_eq!(
        (got.login.as_deref(), got.host.as_deref()),
        (Some("svc-acme"), Some("tenant-acme"))
    );
    assert_eq!(got.passcode.as_ref().map(|s| s.expose()), Some("tenant-pw"));
    let got = up(&id("bob", &["personal"]));
    assert_eq!(
        (got.login.as_deref(), got.host.as_deref()),
        (Some("u-bob"), Some("users"))
    );
    let got = up(&id("root", &["tenant"])); // user entries come first
    assert_eq!(got.login.as_deref(), Some("svc-admin"));
    let got = up(&id("nobody", &[]));
    assert_eq!(
        (got.login.as_deref(), got.host.as_deref()),
        (Some("svc-default"), Some("/"))
    );
    assert_eq!(
        got.passcode.as_ref().map(|s| s.expose()),
        Some("default-pw")
    );
    // a tenant without the claim cannot be mapped
    assert!(matches!(
        p.upstream_for(&id("x", &["tenant"]), &c),
        Err(PolicyError::Template(_))
    ));
    // a claim smuggling a header is refused
    let mut evil = id("x", &["tenant"]);
    evil.claims
        .insert("tenant".into(), "a\npasscode:guest".into());
    assert!(matches!(
        p.upstream_for(&evil, &c),
        Err(PolicyError::Template(_))
    ));
}

#[test]
fn passthrough_forwards_client_values_and_fallback_applies_without_mapping() {
    let dir = TempDir::new();
    let p = dir.policy("[[auth]]\ntype = \"passthrough\"\n");
    let c = connect(&[
        ("login", "legacy"),
        ("passcode", "legacy-pw"),
        ("host", "/"),
    ]);
    let who = p.authenticate(&c, &meta()).unwrap();
    let up = p.upstream_for(&who, &c).unwrap();
    assert_eq!(up.login.as_deref(), Some("legacy"));
    assert_eq!(up.passcode.as_ref().map(|s| s.expose()), Some("legacy-pw"));
    assert_eq!(up.host.as_deref(), Some("/"));
    // a non-passthrough identity with no [upstream] and no fallback cannot be mapped
    assert!(matches!(
        p.upstream_for(&id("a", &[]), &c),
        Err(PolicyError::NoUpstream(_))
    ));
    let fallback = UpstreamIdentity {
        login: Some("svc".into()),
        passcode: None,
        host: None,
    };
    let p = p.with_fallback_upstream(Some(fallback.clone()));
    assert_eq!(p.upstream_for(&id("a", &[]), &c).unwrap(), fallback);
}

#[test]
fn rewrite_after_mapping_keeps_invariant_2() {
    let dir = mapping_dir();
    let p = dir.policy(MAPPING_POLICY);
    let mut c = Frame::new(Command::Stomp)
        .with_header("accept-version", "1.2")
        .with_header("login", "guest")
        .with_header("LOGIN", "guest")
        .with_header("passcode", "guest")
        .with_header("Passcode", "guest")
        .with_header("host", "/")
        .with_header("hOsT", "other")
        .with_header("heart-beat", "0,0");
    let up = p.upstream_for(&id("bob", &["personal"]), &c).unwrap();
    rewrite_connect(&mut c, &up);
    let names: Vec<String> = c
        .headers()
        .iter()
        .map(|h| String::from_utf8_lossy(&h.name).into_owned())
        .collect();
    assert_eq!(
        names,
        ["login", "passcode", "host", "accept-version", "heart-beat"]
    );
    let values: Vec<&[u8]> = c.headers().iter().take(3).map(|h| &h.value[..]).collect();
    assert_eq!(values, [&b"u-bob"[..], b"personal-pw", b"users"]);
}

#[test]
fn origin_allowlist() {
    let dir = TempDir::new();
    let p = dir
        .policy("allowed_origins = [\"https://app.example\"]\n[[auth]]\ntype = \"passthrough\"\n");
    assert!(p.check_origin(Some("https://app.example")));
    assert!(p.check_origin(Some("HTTPS://APP.EXAMPLE")));
    assert!(!p.check_origin(Some("https://evil.example")));
    assert!(!p.check_origin(Some("null")));
    assert!(p.check_origin(None));
    let open = dir.policy("[[auth]]\ntype = \"passthrough\"\n");
    assert!(open.check_origin(Some("https://evil.example")));
}

/// A slow, obviously right reference matcher: plain recursion over the pattern text.
fn reference_match(p: &[u8], t: &[u8]) -> bool {
    match p {
        [] => t.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| reference_match(rest, &t[i..])),
        [b'*', rest @ ..] => (0..=t.len())
            .take_while(|&i| i == 0 || t[i - 1] != b'/')
            .any(|i| reference_match(rest, &t[i..])),
        [c, rest @ ..] => t.first() == Some(c) && reference_match(rest, &t[1..]),
    }
}

proptest::proptest! {
    #[test]
    fn glob_agrees_with_the_reference(p in "[ab/.*]{0,8}", t in "[ab/.]{0,10}") {
        let pieces = stompgate::policy::parse_template(&p, true).unwrap();
        proptest::prop_assert_eq!(
            stompgate::policy::glob_match(&pieces, &t),
            reference_match(p.as_bytes(), t.as_bytes()),
            "pattern {:?} text {:?}", p, t
        );
    }
}

#[test]
fn echoed_destination_is_short_and_has_no_control_characters() {
    let dir = TempDir::new();
    let p = dir.policy(ACL_POLICY);
    let long = format!("/queue/\r\n{}", "x".repeat(1000));
    let e = p
        .check(&id("a", &[]), Command::Send, Some(&long))
        .unwrap_err();
    let msg = e.to_string();
    assert!(!msg.chars().any(char::is_control), "{msg:?}");
    assert!(msg.len() < 200, "{}", msg.len());
}
