//! Reload (a bad file keeps the old policy; live identities are untouched), the failed-login
//! limiter, `hash-password`, and that no secret shows in any error, Debug output or log line.

mod policy_common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use policy_common::*;
use stompgate::policy::{
    hash_password_io, AuthError, HashPasswordArgs, LimiterSettings, LoginLimiter, Policy,
    PolicyHandle,
};
use stompgate::stomp::Command;

fn policy_text(role: &str) -> String {
    format!(
        r#"
        [[auth]]
        type = "static"
        users_file = "users.toml"
        [[acl]]
        role = "{role}"
        action = "allow"
        commands = ["SEND"]
        destination = "/queue/a"
        "#
    )
}

#[test]
fn reload_swaps_good_files_and_keeps_the_old_policy_on_bad_ones() {
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("alice", "pw1", &["writer"], "")]),
    );
    let path = dir.write("policy.toml", policy_text("writer"));
    let handle = PolicyHandle::load(&path, None).unwrap();
    let login = |pw: &str| connect(&[("login", "alice"), ("passcode", pw)]);
    let session_identity = handle
        .current()
        .authenticate(&login("pw1"), &meta())
        .unwrap();
    assert!(handle
        .current()
        .check(&session_identity, Command::Send, Some("/queue/a"))
        .is_ok());
    assert_eq!(
        handle.current().files(),
        vec![path.clone(), dir.path().join("users.toml")]
    );
    assert!(handle.reload_if_changed().is_none(), "nothing changed yet");

    // a broken policy file: the old policy stays in force
    std::fs::write(&path, "[[auth]]\ntype = \"static\"\nusers_file = \n").unwrap();
    assert!(handle.reload().is_err());
    assert!(handle
        .current()
        .authenticate(&login("pw1"), &meta())
        .is_ok());
    // a broken users file (bad hash): same
    std::fs::write(&path, policy_text("writer")).unwrap();
    dir.write("users.toml", "[[user]]\nname = \"alice\"\nhash = \"pw2\"\n");
    let err = handle.reload().unwrap_err();
    assert!(!err.to_string().contains("pw2"), "{err}");
    assert!(handle
        .current()
        .authenticate(&login("pw1"), &meta())
        .is_ok());

    // a good change: new password and a new ACL take effect; the live identity is untouched
    dir.write(
        "users.toml",
        users_toml(&[("alice", "pw2", &["writer"], "")]),
    );
    std::fs::write(&path, policy_text("someone-else")).unwrap();
    // mtime granularity can hide two writes in the same tick; force a visible change
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(handle.reload_if_changed().expect("change seen").is_ok());
    let now = handle.current();
    assert_eq!(
        now.authenticate(&login("pw1"), &meta()),
        Err(AuthError::BadCredentials)
    );
    assert!(now.authenticate(&login("pw2"), &meta()).is_ok());
    assert_eq!(session_identity.roles, vec!["writer"]);
    assert!(now
        .check(&session_identity, Command::Send, Some("/queue/a"))
        .is_err());
}

#[test]
fn limiter_blocks_after_burst_refills_over_time_and_stays_bounded() {
    let settings = LimiterSettings {
        burst: 3,
        refill_every: Duration::from_secs(10),
        address_burst: 50,
        address_refill_every: Duration::from_secs(1),
        max_addresses: 100,
    };
    let mut l = LoginLimiter::new(settings);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let other: IpAddr = "192.0.2.2".parse().unwrap();
    let t0 = Instant::now();
    for i in 0..3 {
        assert!(l.try_take(ip, "alice", t0).is_ok(), "attempt {i}");
    }
    assert_eq!(l.try_take(ip, "alice", t0), Err(AuthError::RateLimited));
    assert!(
        l.try_take(other, "alice", t0).is_ok(),
        "other addresses are not affected"
    );
    assert_eq!(
        l.try_take(ip, "alice", t0 + Duration::from_secs(9)),
        Err(AuthError::RateLimited)
    );
    assert!(
        l.try_take(ip, "alice", t0 + Duration::from_secs(10))
            .is_ok(),
        "one token back"
    );
    assert_eq!(
        l.try_take(ip, "alice", t0 + Duration::from_secs(10)),
        Err(AuthError::RateLimited)
    );

    // memory stays bounded under a flood of addresses
    for i in 0..10_000u32 {
        let t = t0 + Duration::from_millis(u64::from(i));
        let _ = l.try_take(IpAddr::from(i.to_be_bytes()), "alice", t);
        assert!(l.len() <= 100);
    }
}

#[test]
fn limiter_settings_come_from_the_policy() {
    let dir = TempDir::new();
    let p = dir.policy(
        "[[auth]]\ntype = \"passthrough\"\n[login_limit]\nburst = 5\nrefill_every = \"1m\"\n",
    );
    let s = p.login_limit();
    assert_eq!((s.burst, s.refill_every), (5, Duration::from_secs(60)));
    assert_eq!(s.max_addresses, LimiterSettings::default().max_addresses);
}

#[test]
fn hash_password_prints_a_default_cost_argon2id_hash_that_verifies() {
    let mut out = Vec::new();
    hash_password_io(&HashPasswordArgs::default(), &b"s3cret-pw\n"[..], &mut out).unwrap();
    let phc = String::from_utf8(out).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(phc.ends_with('\n') && !phc.contains("s3cret"));
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        format!("[[user]]\nname = \"a\"\nhash = {:?}\n", phc.trim()),
    );
    let p = dir.policy("[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n");
    assert!(p
        .authenticate(
            &connect(&[("login", "a"), ("passcode", "s3cret-pw")]),
            &meta()
        )
        .is_ok());

    let file = dir.write("pw.txt", "from-file\n");
    let mut out = Vec::new();
    let args = HashPasswordArgs {
        password_file: Some(file),
    };
    hash_password_io(&args, &b""[..], &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().starts_with("$argon2id$"));
    assert!(hash_password_io(&HashPasswordArgs::default(), &b"\n"[..], Vec::new()).is_err());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_in_errors_debug_or_logs() {
    const SECRETS: [&str; 4] = [
        "alice-password",
        "svc-broker-pw",
        "hmac-secret-0123456789abcdef-0123",
        "inline-pw-42",
    ];
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("alice", SECRETS[0], &["r"], "")]),
    );
    dir.write("svc.secret", SECRETS[1]);
    dir.write("hs.secret", SECRETS[2]);
    let text = format!(
        r#"
        [[auth]]
        type = "static"
        users_file = "users.toml"
        [[auth]]
        type = "jwt"
        sources = {{ passcode = true, authorization_header = true }}
        [[auth.key]]
        alg = "HS256"
        secret_file = "hs.secret"
        [upstream.default]
        login = "svc"
        passcode_file = "svc.secret"
        [[upstream.role]]
        role = "r"
        login = "svc2"
        passcode = "{}"
        "#,
        SECRETS[3]
    );
    let buf = Captured::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let mut shown = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let _ = Policy::load(&dir.write("pt.toml", "[[auth]]\ntype = \"passthrough\"\n"));
        let p = dir.policy(&text);
        shown.push(format!("{p:?}"));
        let ok = connect(&[("login", "alice"), ("passcode", SECRETS[0])]);
        let alice = p.authenticate(&ok, &meta()).unwrap();
        shown.push(format!("{alice:?}"));
        let up = p.upstream_for(&alice, &ok).unwrap();
        shown.push(format!("{up:?}"));
        let wrong = connect(&[
            ("login", "alice"),
            ("passcode", &format!("{}x", SECRETS[0])),
        ]);
        let e = p.authenticate(&wrong, &meta()).unwrap_err();
        shown.push(format!("{e} {e:?}"));
        let forged = sign_hs(
            jsonwebtoken::Algorithm::HS256,
            b"wrong-secret-wrong-secret-wrong-secret",
            &claims("x"),
        );
        let bearer = format!("Bearer {forged}");
        let e = p
            .authenticate(
                &connect(&[]),
                &meta_with(&[("authorization", &bearer)], None, None),
            )
            .unwrap_err();
        shown.push(format!("{e} {e:?}"));
        // config errors about secrets: wrong types, short secrets
        let bad = text.replace(
            &format!("passcode = \"{}\"", SECRETS[3]),
            &format!("passcode = [\"{}\"]", SECRETS[3]),
        );
        let e = Policy::load(&dir.write("bad.toml", bad)).unwrap_err();
        shown.push(format!("{e} {e:?}"));
        // a syntax error on a secret's line must not quote the line
        let unterminated = text.replace(
            &format!("passcode = \"{}\"", SECRETS[3]),
            &format!("passcode = \"{}", SECRETS[3]),
        );
        let e = Policy::load(&dir.write("bad.toml", unterminated)).unwrap_err();
        shown.push(format!("{e} {e:?}"));
        let raw =
            toml::from_str::<toml::Value>(&format!("passcode = \"{}", SECRETS[3])).unwrap_err();
        assert!(
            raw.to_string().contains(SECRETS[3]),
            "toml's own Display does quote the line"
        );
        dir.write(
            "users-bad.toml",
            format!("[[user]]\nname = \"a\"\nhash = \"{}\"\n", SECRETS[0]),
        );
        let e = Policy::load(&dir.write(
            "bad2.toml",
            "[[auth]]\ntype = \"static\"\nusers_file = \"users-bad.toml\"\n",
        ))
        .unwrap_err();
        shown.push(format!("{e} {e:?}"));
        dir.write(
            "users-bad.toml",
            format!(
                "[[user]]\nname = \"a\"\nhash = {{ x = \"{}\" }}\n",
                SECRETS[0]
            ),
        );
        let e = Policy::load(&dir.write(
            "bad2.toml",
            "[[auth]]\ntype = \"static\"\nusers_file = \"users-bad.toml\"\n",
        ))
        .unwrap_err();
        shown.push(format!("{e} {e:?}"));
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("passthrough"),
        "the passthrough warning is logged: {logs}"
    );
    shown.push(logs);
    for s in &shown {
        for secret in SECRETS {
            assert!(!s.contains(secret), "secret {secret:?} leaked in {s}");
        }
    }
}

#[test]
fn a_reloaded_policy_tells_which_live_identities_it_no_longer_accepts() {
    use stompgate::policy::{AuthSource, Identity, Revoked};
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("alice", "pw", &[], ""), ("bob", "pw", &[], "")]),
    );
    let id = |user: &str, source| Identity::new(user, vec![], source);
    let alice = id("alice", AuthSource::Static);
    let cert = id("CN=sensor-1", AuthSource::ClientCert);
    let legacy = id("legacy", AuthSource::Passthrough);
    let token = id("carol", AuthSource::Jwt);
    let before = dir.policy(
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n\
         [[auth]]\ntype = \"client-cert\"\nallowed = [\"CN=sensor-1\"]\n\
         [[auth]]\ntype = \"passthrough\"\n",
    );
    for who in [&alice, &cert, &legacy] {
        assert_eq!(before.revocation(who), None, "{}", who.user);
    }
    assert_eq!(
        before.revocation(&token),
        Some(Revoked::NoLongerAccepted),
        "no jwt backend"
    );
    dir.write("users.toml", users_toml(&[("bob", "pw", &[], "")]));
    let after = dir.policy(
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n\
         [[auth]]\ntype = \"client-cert\"\nallowed = [\"CN=sensor-2\"]\n\
         [[auth]]\ntype = \"passthrough\"\ndeny_logins = [\"guest\", \"legacy\"]\n",
    );
    assert_eq!(after.revocation(&alice), Some(Revoked::UserRemoved));
    assert_eq!(after.revocation(&id("bob", AuthSource::Static)), None);
    assert_eq!(after.revocation(&cert), Some(Revoked::NoLongerAccepted));
    assert_eq!(after.revocation(&legacy), Some(Revoked::NoLongerAccepted));
    // The same user name from another kind of backend is not the static user.
    assert_eq!(
        after.revocation(&id("bob", AuthSource::HttpBasic)),
        Some(Revoked::NoLongerAccepted)
    );
}
