//! Authentication backends, table-tested: each accepts the right credentials and refuses wrong,
//! expired, not-yet-valid, wrong-audience, wrong-issuer, `alg: none` and HS/RS-confused ones,
//! with the right `AuthError` kind.

mod policy_common;

use jsonwebtoken::Algorithm;
use policy_common::*;
use serde_json::json;
use stompgate::policy::{AuthError, AuthSource, Policy};

/// Headers as name/value pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];
/// The user accepted, or the refusal.
type Outcome<'a> = Result<&'a str, AuthError>;

fn static_policy(dir: &TempDir) -> Policy {
    dir.write(
        "users.toml",
        users_toml(&[
            (
                "alice",
                "correct horse",
                &["reader"],
                "claims = { tenant = \"acme\" }",
            ),
            ("bob", "battery staple", &[], ""),
        ]),
    );
    let bcrypt_hash = bcrypt::hash("imported", 4).unwrap();
    dir.write(
        "legacy.toml",
        format!("[[user]]\nname = \"carol\"\nhash = {bcrypt_hash:?}\n"),
    );
    dir.policy(
        r#"
        [[auth]]
        type = "static"
        users_file = "users.toml"
        roles = ["user"]
        [[auth]]
        type = "static"
        users_file = "legacy.toml"
        "#,
    )
}

#[test]
fn static_backend_table() {
    let dir = TempDir::new();
    let p = static_policy(&dir);
    let cases: &[(Headers, Outcome)] = &[
        (
            &[("login", "alice"), ("passcode", "correct horse")],
            Ok("alice"),
        ),
        (
            &[("login", "bob"), ("passcode", "battery staple")],
            Ok("bob"),
        ),
        (&[("login", "carol"), ("passcode", "imported")], Ok("carol")),
        (
            &[("login", "alice"), ("passcode", "correct horsE")],
            Err(AuthError::BadCredentials),
        ),
        (&[("login", "alice")], Err(AuthError::BadCredentials)),
        (
            &[("login", "mallory"), ("passcode", "correct horse")],
            Err(AuthError::BadCredentials),
        ),
        (
            &[("login", "carol"), ("passcode", "imported!")],
            Err(AuthError::BadCredentials),
        ),
        (
            &[("passcode", "correct horse")],
            Err(AuthError::MissingCredentials),
        ),
        (&[], Err(AuthError::MissingCredentials)),
        (
            &[
                ("login", "alice"),
                ("passcode", "correct horse"),
                ("Passcode", "x"),
            ],
            Err(AuthError::AmbiguousCredentials),
        ),
        (
            &[
                ("login", "alice"),
                ("LOGIN", "bob"),
                ("passcode", "correct horse"),
            ],
            Err(AuthError::AmbiguousCredentials),
        ),
    ];
    for (headers, want) in cases {
        let got = p.authenticate(&connect(headers), &meta());
        let want = *want;
        assert_eq!(
            got.map(|id| id.user),
            want.map(str::to_owned),
            "{headers:?}"
        );
    }
    let alice = p
        .authenticate(
            &connect(&[("login", "alice"), ("passcode", "correct horse")]),
            &meta(),
        )
        .unwrap();
    assert_eq!(alice.source, AuthSource::Static);
    assert_eq!(alice.roles, vec!["user", "reader"]);
    assert_eq!(alice.claims["tenant"], "acme");
}

#[test]
fn overlong_password_is_refused_without_hashing() {
    let dir = TempDir::new();
    let p = static_policy(&dir);
    let long = "x".repeat(stompgate::policy::MAX_PASSWORD_BYTES + 1);
    let r = p.authenticate(
        &connect(&[("login", "alice"), ("passcode", &long)]),
        &meta(),
    );
    assert_eq!(r.unwrap_err(), AuthError::BadCredentials);
}

#[test]
fn http_basic_backend_table() {
    let dir = TempDir::new();
    dir.write(
        "users.toml",
        users_toml(&[("alice", "pw:with:colons", &["reader"], "")]),
    );
    let p = dir.policy("[[auth]]\ntype = \"http-basic\"\nusers_file = \"users.toml\"\n");
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let good = format!("Basic {}", b64("alice:pw:with:colons"));
    let bad = format!("Basic {}", b64("alice:nope"));
    let cases: Vec<(Vec<(&str, &str)>, Outcome)> = vec![
        (vec![("authorization", &good)], Ok("alice")),
        (
            vec![("authorization", &bad)],
            Err(AuthError::BadCredentials),
        ),
        (
            vec![("authorization", "Basic !!!notbase64")],
            Err(AuthError::BadCredentials),
        ),
        (
            vec![("authorization", "Bearer abc")],
            Err(AuthError::MissingCredentials),
        ),
        (vec![], Err(AuthError::MissingCredentials)),
        (
            vec![("authorization", &good), ("authorization", &good)],
            Err(AuthError::AmbiguousCredentials),
        ),
    ];
    for (headers, want) in cases {
        let got = p.authenticate(&connect(&[]), &meta_with(&headers, None, None));
        assert_eq!(
            got.map(|id| id.user),
            want.map(str::to_owned),
            "{headers:?}"
        );
    }
}

fn jwt_policy(dir: &TempDir, keys: &str) -> Policy {
    dir.policy(&format!(
        r#"
        [[auth]]
        type = "jwt"
        issuer = "https://idp.test"
        audience = "stompgate"
        leeway = "5s"
        sources = {{ passcode = true, authorization_header = true, cookie = "tok", query_param = "access_token" }}
        roles = ["jwt-user"]
        {keys}
        "#
    ))
}

fn jwt_user(p: &Policy, token: &str) -> Result<String, AuthError> {
    p.authenticate(
        &connect(&[("login", "ignored"), ("passcode", token)]),
        &meta(),
    )
    .map(|id| id.user)
}

#[test]
fn jwt_backend_table_for_every_key_type() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    let es256 = generated_key(Algorithm::ES256);
    let es384 = generated_key(Algorithm::ES384);
    let ed = generated_key(Algorithm::EdDSA);
    for (name, k) in [
        ("rsa", &rsa),
        ("es256", &es256),
        ("es384", &es384),
        ("ed", &ed),
    ] {
        dir.write(&format!("{name}.pem"), &k.public_pem);
    }
    let hs_secret = "0123456789abcdef0123456789abcdef-test-only";
    dir.write("hs.secret", format!("{hs_secret}\n"));
    let p = jwt_policy(
        &dir,
        r#"
        [[auth.key]]
        alg = "RS256"
        pem_file = "rsa.pem"
        [[auth.key]]
        alg = "ES256"
        pem_file = "es256.pem"
        [[auth.key]]
        alg = "ES384"
        pem_file = "es384.pem"
        [[auth.key]]
        alg = "EdDSA"
        pem_file = "ed.pem"
        [[auth.key]]
        alg = "HS256"
        secret_file = "hs.secret"
        "#,
    );
    let t = now();
    let with = |patch: serde_json::Value| {
        let mut c = claims("alice");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for k in [&rsa, &es256, &es384, &ed] {
        let cases = [
            (with(json!({})), Ok("alice".to_owned())),
            (with(json!({"exp": t - 60})), Err(AuthError::TokenExpired)),
            (with(json!({"exp": t - 2})), Ok("alice".to_owned())), // inside the 5 s leeway
            (
                with(json!({"nbf": t + 600})),
                Err(AuthError::TokenNotYetValid),
            ),
            (
                with(json!({"aud": "other-service"})),
                Err(AuthError::WrongAudience),
            ),
            (
                with(json!({"aud": ["a", "stompgate"]})),
                Ok("alice".to_owned()),
            ),
            (
                with(json!({"iss": "https://evil.test"})),
                Err(AuthError::WrongIssuer),
            ),
        ];
        for (c, want) in cases {
            assert_eq!(jwt_user(&p, &sign(k, None, &c)), want, "{:?} {c}", k.alg);
        }
    }
    let hs = sign_hs(Algorithm::HS256, hs_secret.as_bytes(), &claims("hs-user"));
    assert_eq!(jwt_user(&p, &hs), Ok("hs-user".into()));
    let wrong_secret = sign_hs(
        Algorithm::HS256,
        b"another secret, 32 bytes or more!!",
        &claims("x"),
    );
    assert_eq!(jwt_user(&p, &wrong_secret), Err(AuthError::TokenInvalid));
}

#[test]
fn jwt_refuses_none_confusion_tampering_and_missing_claims() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    dir.write("rsa.pem", &rsa.public_pem);
    let p = jwt_policy(
        &dir,
        "[[auth.key]]\nalg = \"RS256\"\npem_file = \"rsa.pem\"\n",
    );
    let good = sign(&rsa, None, &claims("alice"));
    assert_eq!(jwt_user(&p, &good), Ok("alice".into()));

    // alg: none, with and without a stolen signature
    assert_eq!(
        jwt_user(&p, &unsigned(&claims("alice"))),
        Err(AuthError::TokenInvalid)
    );
    let sig = good.rsplit('.').next().unwrap();
    assert_eq!(
        jwt_user(&p, &format!("{}{sig}", unsigned(&claims("alice")))),
        Err(AuthError::TokenInvalid)
    );
    // HS/RS confusion: the RSA public key used as an HMAC secret
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let forged = sign_hs(alg, rsa.public_pem.as_bytes(), &claims("alice"));
        assert_eq!(
            jwt_user(&p, &forged),
            Err(AuthError::TokenInvalid),
            "{alg:?}"
        );
    }
    // a different algorithm of the same family is not the pinned one
    let es = generated_key(Algorithm::ES256);
    assert_eq!(
        jwt_user(&p, &sign(&es, None, &claims("alice"))),
        Err(AuthError::TokenInvalid)
    );
    // tampered payload keeps the RS256 header and signature
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims("admin").to_string())
    };
    parts[1] = &evil;
    assert_eq!(jwt_user(&p, &parts.join(".")), Err(AuthError::TokenInvalid));
    // missing exp / sub; garbage
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        jwt_user(&p, &sign(&rsa, None, &no_exp)),
        Err(AuthError::TokenInvalid)
    );
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        jwt_user(&p, &sign(&rsa, None, &no_sub)),
        Err(AuthError::TokenInvalid)
    );
    let mut no_aud = claims("alice");
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        jwt_user(&p, &sign(&rsa, None, &no_aud)),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(jwt_user(&p, "not.a.jwt"), Err(AuthError::TokenInvalid));
    let huge = format!("{}.{}.sig", "a".repeat(10_000), "b".repeat(10_000));
    assert_eq!(jwt_user(&p, &huge), Err(AuthError::TokenInvalid));
    assert_eq!(
        jwt_user(&p, "plain password"),
        Err(AuthError::MissingCredentials)
    );
}

#[test]
fn jwt_keys_are_pinned_at_load() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    dir.write("rsa.pem", &rsa.public_pem);
    dir.write("hs.secret", "0123456789abcdef0123456789abcdef");
    dir.write("short.secret", "short");
    let bad = [
        "alg = \"HS256\"\npem_file = \"rsa.pem\"", // an RSA PEM is never an HMAC secret
        "alg = \"RS256\"\nsecret_file = \"hs.secret\"", // nor the other way round
        "alg = \"ES256\"\npem_file = \"rsa.pem\"", // an RSA key cannot verify ES256
        "alg = \"none\"\npem_file = \"rsa.pem\"",
        "alg = \"HS256\"\nsecret_file = \"short.secret\"", // too short to be a real secret
        "alg = \"RS256\"",
    ];
    for keys in bad {
        let text = format!(
            "[[auth]]\ntype = \"jwt\"\nsources = {{ passcode = true }}\n[[auth.key]]\n{keys}\n"
        );
        let path = dir.write("bad.toml", &text);
        assert!(Policy::load(&path).is_err(), "should refuse: {keys}");
    }
    let no_source = "[[auth]]\ntype = \"jwt\"\nsources = {}\n[[auth.key]]\nalg = \"RS256\"\npem_file = \"rsa.pem\"\n";
    assert!(Policy::load(&dir.write("bad.toml", no_source)).is_err());
}

#[test]
fn jwt_from_jwks_uses_kid_and_pinned_alg() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    std::fs::copy(fixture("test-only-jwks.json"), dir.path().join("jwks.json")).unwrap();
    let p = jwt_policy(&dir, "jwks_file = \"jwks.json\"\n");
    assert_eq!(
        jwt_user(&p, &sign(&rsa, Some("test-rsa-1"), &claims("alice"))),
        Ok("alice".into())
    );
    assert_eq!(
        jwt_user(&p, &sign(&rsa, None, &claims("alice"))),
        Ok("alice".into())
    );
    assert_eq!(
        jwt_user(&p, &sign(&rsa, Some("rotated-away"), &claims("a"))),
        Err(AuthError::UnknownKey)
    );
    let forged = sign_hs(
        Algorithm::HS256,
        rsa.public_pem.as_bytes(),
        &claims("alice"),
    );
    assert_eq!(jwt_user(&p, &forged), Err(AuthError::TokenInvalid));
    // a JWKS key's alg conflicting with jwks_alg is refused at load
    let text = "[[auth]]\ntype = \"jwt\"\njwks_file = \"jwks.json\"\njwks_alg = \"RS512\"\nsources = { passcode = true }\n";
    assert!(Policy::load(&dir.write("bad.toml", text)).is_err());
}

#[test]
fn jwt_sources_are_each_enabled_explicitly() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    dir.write("rsa.pem", &rsa.public_pem);
    let tok = sign(&rsa, None, &claims("alice"));
    let only_header = dir.policy(
        "[[auth]]\ntype = \"jwt\"\naudience = \"stompgate\"\nsources = { authorization_header = true }\n[[auth.key]]\nalg = \"RS256\"\npem_file = \"rsa.pem\"\n",
    );
    let bearer = format!("Bearer {tok}");
    let cookie = format!("x=1; tok={tok}");
    let query = format!("a=b&access_token={tok}");
    let by_header = meta_with(&[("authorization", &bearer)], None, None);
    let by_cookie = meta_with(&[("cookie", &cookie)], None, None);
    let by_query = meta_with(&[], Some(&query), None);
    let by_passcode = connect(&[("passcode", &tok)]);
    assert_eq!(
        only_header
            .authenticate(&connect(&[]), &by_header)
            .unwrap()
            .user,
        "alice"
    );
    for m in [&by_cookie, &by_query] {
        assert_eq!(
            only_header.authenticate(&connect(&[]), m),
            Err(AuthError::MissingCredentials)
        );
    }
    assert_eq!(
        only_header.authenticate(&by_passcode, &meta()),
        Err(AuthError::MissingCredentials)
    );

    let all = jwt_policy(
        &dir,
        "[[auth.key]]\nalg = \"RS256\"\npem_file = \"rsa.pem\"\n",
    );
    for m in [&by_header, &by_cookie, &by_query] {
        let id = all.authenticate(&connect(&[]), m).unwrap();
        assert_eq!((id.user.as_str(), id.source), ("alice", AuthSource::Jwt));
        assert_eq!(id.roles, vec!["jwt-user", "reader"]);
        assert_eq!(id.claims["tenant"], "acme");
    }
    let twice = meta_with(&[], Some(&format!("{query}&access_token=x")), None);
    assert_eq!(
        all.authenticate(&connect(&[]), &twice),
        Err(AuthError::AmbiguousCredentials)
    );
}

#[test]
fn chain_first_accepting_backend_wins_and_most_specific_refusal_is_reported() {
    let dir = TempDir::new();
    let rsa = rsa_key();
    dir.write("rsa.pem", &rsa.public_pem);
    dir.write("users.toml", users_toml(&[("alice", "pw", &[], "")]));
    let p = dir.policy(
        r#"
        [[auth]]
        type = "static"
        users_file = "users.toml"
        [[auth]]
        type = "jwt"
        audience = "stompgate"
        sources = { passcode = true }
        [[auth.key]]
        alg = "RS256"
        pem_file = "rsa.pem"
        [[auth]]
        type = "client-cert"
        roles = ["device"]
        allowed = ["CN=sensor-1"]
        "#,
    );
    let id = p
        .authenticate(&connect(&[("login", "alice"), ("passcode", "pw")]), &meta())
        .unwrap();
    assert_eq!(id.source, AuthSource::Static);
    let tok = sign(&rsa, None, &claims("bob"));
    let id = p
        .authenticate(&connect(&[("login", "bob"), ("passcode", &tok)]), &meta())
        .unwrap();
    assert_eq!((id.user.as_str(), id.source), ("bob", AuthSource::Jwt));
    let mut expired = claims("bob");
    expired["exp"] = json!(now() - 3600);
    let expired = sign(&rsa, None, &expired);
    let r = p.authenticate(
        &connect(&[("login", "bob"), ("passcode", &expired)]),
        &meta(),
    );
    assert_eq!(r, Err(AuthError::TokenExpired));
    // a wrong password is not mistaken for a broken token by the JWT backend
    let r = p.authenticate(
        &connect(&[("login", "alice"), ("passcode", "wrong")]),
        &meta(),
    );
    assert_eq!(r, Err(AuthError::BadCredentials));
    let r = p.authenticate(
        &connect(&[("login", "alice"), ("passcode", "a.b.c")]),
        &meta(),
    );
    assert_eq!(r, Err(AuthError::TokenInvalid));
    let cert = meta_with(&[], None, Some("CN=sensor-1"));
    let id = p.authenticate(&connect(&[]), &cert).unwrap();
    assert_eq!(
        (id.user.as_str(), id.source, id.roles.clone()),
        (
            "CN=sensor-1",
            AuthSource::ClientCert,
            vec!["device".to_owned()]
        )
    );
    let other = meta_with(&[], None, Some("CN=intruder"));
    assert_eq!(
        p.authenticate(&connect(&[]), &other),
        Err(AuthError::Forbidden)
    );
    assert_eq!(
        p.authenticate(&connect(&[]), &meta()),
        Err(AuthError::MissingCredentials)
    );
}

#[test]
fn passthrough_accepts_anyone_as_their_own_login() {
    let dir = TempDir::new();
    let p = dir.policy("[[auth]]\ntype = \"passthrough\"\nroles = [\"legacy\"]\n");
    let id = p
        .authenticate(
            &connect(&[("login", "svc-a"), ("passcode", "whatever")]),
            &meta(),
        )
        .unwrap();
    assert_eq!(
        (id.user.as_str(), id.source),
        ("svc-a", AuthSource::Passthrough)
    );
    assert_eq!(id.roles, vec!["legacy"]);
    // `guest` is refused by default (RabbitMQ lets it in over the gateway's loopback), in any
    // letter case; the deny list is the policy's to change.
    for guest in ["guest", "GUEST"] {
        let r = p.authenticate(
            &connect(&[("login", guest), ("passcode", "guest")]),
            &meta(),
        );
        assert_eq!(r, Err(AuthError::LoginDenied));
    }
    let open = dir.policy("[[auth]]\ntype = \"passthrough\"\ndeny_logins = [\"root\"]\n");
    assert!(open
        .authenticate(&connect(&[("login", "guest"), ("passcode", "g")]), &meta())
        .is_ok());
    assert_eq!(
        open.authenticate(&connect(&[("login", "root"), ("passcode", "g")]), &meta()),
        Err(AuthError::LoginDenied)
    );
    let r = p.authenticate(&connect(&[("login", "a"), ("login", "b")]), &meta());
    assert_eq!(r, Err(AuthError::AmbiguousCredentials));
    // No login: the broker would apply its default user (RabbitMQ's guest) — refused.
    for headers in [
        &[("passcode", "x")][..],
        &[("login", ""), ("passcode", "x")][..],
    ] {
        let r = p.authenticate(&connect(headers), &meta());
        assert_eq!(r, Err(AuthError::MissingCredentials));
    }
}

#[test]
fn policy_file_errors_name_the_field() {
    let dir = TempDir::new();
    let cases = [
        ("", "auth"),
        ("[[auth]]\ntype = \"kerberos\"\n", "kerberos"),
        ("[[auth]]\ntype = \"static\"\nusers_file = \"missing.toml\"\n", "missing.toml"),
        ("[[auth]]\ntype = \"passthrough\"\nrole = [\"x\"]\n", "role"),
        ("[[auth]]\ntype = \"passthrough\"\n[[acl]]\nrole = \"r\"\naction = \"allow\"\ncommands = [\"ACK\"]\ndestination = \"/q\"\n", "acl[0].commands"),
        ("[[auth]]\ntype = \"passthrough\"\n[[acl]]\nrole = \"r\"\naction = \"allow\"\ncommands = [\"SEND\"]\ndestination = \"/q/{nope}\"\n", "acl[0].destination"),
    ];
    for (text, needle) in cases {
        let err = Policy::load(&dir.write("p.toml", text))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    dir.write(
        "users.toml",
        "[[user]]\nname = \"a\"\nhash = \"plaintext-password\"\n",
    );
    let err = Policy::load(&dir.write(
        "p.toml",
        "[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("user[0].hash"), "{err}");
}

#[test]
fn jwks_with_ec_and_ed25519_keys_and_an_encryption_key() {
    let dir = TempDir::new();
    let es = generated_key(Algorithm::ES256);
    let ed = generated_key(Algorithm::EdDSA);
    let enc = json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc", "n": "AQAB", "e": "AQAB"});
    let set = json!({"keys": [jwk(&es, "es", true), jwk(&ed, "ed", true), enc]});
    dir.write("jwks.json", set.to_string());
    let p = jwt_policy(&dir, "jwks_file = \"jwks.json\"\n");
    assert_eq!(
        jwt_user(&p, &sign(&es, Some("es"), &claims("e"))),
        Ok("e".into())
    );
    assert_eq!(
        jwt_user(&p, &sign(&ed, Some("ed"), &claims("d"))),
        Ok("d".into())
    );
    // a token naming the EC key but signed by the Ed25519 key
    assert_eq!(
        jwt_user(&p, &sign(&ed, Some("es"), &claims("x"))),
        Err(AuthError::UnknownKey)
    );
    // an EC key without alg needs jwks_alg; with a mismatching jwks_alg it is refused at load
    dir.write(
        "noalg.json",
        json!({"keys": [jwk(&es, "es", false)]}).to_string(),
    );
    let base = "[[auth]]\ntype = \"jwt\"\njwks_file = \"noalg.json\"\nsources = { passcode = true }\naudience = \"stompgate\"\n";
    assert!(Policy::load(&dir.write("a.toml", base)).is_err());
    assert!(Policy::load(&dir.write("b.toml", format!("{base}jwks_alg = \"RS256\"\n"))).is_err());
    let p = dir.policy(&format!("{base}jwks_alg = \"ES256\"\n"));
    assert_eq!(jwt_user(&p, &sign(&es, None, &claims("e"))), Ok("e".into()));
}

#[test]
fn require_exp_false_allows_a_missing_exp_only_and_identities_carry_their_end() {
    let dir = TempDir::new();
    let secret = "a-test-hmac-secret-of-32-bytes-or-more";
    dir.write("hs.secret", secret);
    let p = dir.policy(
        r#"
        [[auth]]
        type = "jwt"
        leeway = "5s"
        require_exp = false
        sources = { passcode = true }
        [[auth.key]]
        alg = "HS256"
        secret_file = "hs.secret"
        "#,
    );
    let auth = |claims: serde_json::Value| {
        let token = sign_hs(Algorithm::HS256, secret.as_bytes(), &claims);
        p.authenticate(&connect(&[("login", "x"), ("passcode", &token)]), &meta())
    };
    let no_exp = auth(json!({"sub": "a"})).unwrap();
    assert_eq!(no_exp.valid_until_unix, None, "no exp: no end of its own");
    let exp = now() + 60;
    let live = auth(json!({"sub": "a", "exp": exp})).unwrap();
    assert_eq!(
        live.valid_until_unix,
        Some(exp as u64 + 5),
        "exp plus the leeway"
    );
    assert_eq!(
        auth(json!({"sub": "a", "exp": now() - 86_400})),
        Err(AuthError::TokenExpired),
        "a present exp is always checked"
    );
    for odd in [json!("9999999999"), json!(1.5e10), json!(-1)] {
        assert_eq!(
            auth(json!({"sub": "a", "exp": odd})),
            Err(AuthError::TokenInvalid),
            "exp {odd}"
        );
    }
}
