//! Every backend through the gateway: the right credentials get CONNECTED from RabbitMQ, the
//! wrong ones an ERROR naming the kind of failure (never the secret) and a close 1008.

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::policy_common::{
    claims, fixture, generated_key, jwk, now, rsa_key, sign, sign_hs, unsigned, TempDir,
};
use crate::support::*;

const BAD: &str = "authentication failed: bad credentials";
const NONE: &str = "authentication failed: no credentials";
const INVALID: &str = "authentication failed: invalid token";
const EXPIRED: &str = "authentication failed: token expired";
const NOT_YET: &str = "authentication failed: token not yet valid";
const AUDIENCE: &str = "authentication failed: token has the wrong audience";
const ISSUER: &str = "authentication failed: token has the wrong issuer";

/// Upgrade headers, query string, and the expected ERROR message.
type Case<'a> = (&'a [(&'a str, &'a str)], String, &'a str);

/// A JWT-only CONNECT: no login, the token (if any) in `passcode`.
fn token_connect(token: &str) -> String {
    connect("", token, "")
}

#[tokio::test]
async fn static_users_with_argon2id_and_bcrypt_hashes() {
    let (alice_pw, bob_pw) = (secret("alice-static-9Qz"), secret("bob-static-4Kw"));
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&alice_pw, &bob_pw));
    let policy =
        format!("[[auth]]\ntype = \"static\"\nusers_file = \"users.toml\"\n{UPSTREAM_DEFAULT}");
    let gw = start(dir, &policy).await;

    gw.connected(&connect("alice", &alice_pw, "")).await;
    gw.connected(&connect("bob", &bob_pw, "")).await;
    for (user, pw, want) in [
        ("alice", "alice-static-9Qy", BAD),
        ("bob", alice_pw.as_str(), BAD),
        ("mallory", alice_pw.as_str(), BAD),
        ("alice", "", BAD),
        ("", "", NONE),
    ] {
        let r = gw.refused(&connect(user, pw, "")).await;
        assert_refused(&r, want);
        assert!(!r.frame.contains(&alice_pw) && !r.frame.contains(&bob_pw));
    }
    // Each refusal is counted by its reason.
    let metrics = gw.ctx.metrics.render();
    for line in [
        "stompgate_auth_failures_total{reason=\"bad_credentials\"} 4",
        "stompgate_auth_failures_total{reason=\"missing_credentials\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
}

/// The HS256 policy: tokens in the CONNECT `passcode`, as RabbitMQ's OAuth plugin expects.
async fn hs256_gateway(secret_bytes: &str) -> Gw {
    let dir = TempDir::new();
    dir.write("hs256.secret", secret_bytes);
    let policy = format!(
        r#"
[[auth]]
type = "jwt"
issuer = "https://idp.test"
audience = "stompgate"
leeway = "5s"
sources = {{ passcode = true }}
[[auth.key]]
alg = "HS256"
secret_file = "hs256.secret"
{UPSTREAM_DEFAULT}"#
    );
    start(dir, &policy).await
}

#[tokio::test]
async fn jwt_hs256_from_the_passcode() {
    let key = secret("hs256-test-secret-0123456789-abcdefghij");
    let gw = hs256_gateway(&key).await;
    let hs = |c: &serde_json::Value| secret(sign_hs(Algorithm::HS256, key.as_bytes(), c));

    gw.connected(&token_connect(&hs(&claims("alice")))).await;
    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    let expired = hs(&c);
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 3600);
    let early = hs(&c);
    let mut c = claims("alice");
    c["aud"] = json!("another-service");
    let wrong_aud = hs(&c);
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    let wrong_iss = hs(&c);
    let none = secret(unsigned(&claims("alice")));
    let other_key = secret(sign_hs(
        Algorithm::HS256,
        b"another-secret-of-the-same-length-000",
        &claims("alice"),
    ));
    let rs = secret(sign(&rsa_key(), None, &claims("alice")));
    for (token, want) in [
        (&expired, EXPIRED),
        (&early, NOT_YET),
        (&wrong_aud, AUDIENCE),
        (&wrong_iss, ISSUER),
        (&none, INVALID),
        (&other_key, INVALID),
        (&rs, INVALID),
    ] {
        let r = gw.refused(&token_connect(token)).await;
        assert_refused(&r, want);
        assert!(!r.frame.contains(token.as_str()) && !r.frame.contains(&key));
    }
    // Not JWT-shaped: a password for some other backend, and there is none.
    assert_refused(&gw.refused(&token_connect("hunter2")).await, NONE);
}

/// RS256 from a PEM file and from a JWKS, ES256 from the JWKS, plus an HS256 key so that the
/// HS/RS confusion attack has a target; tokens from the `Authorization` header, a cookie or
/// the `access_token` query parameter.
async fn asymmetric_gateway(es_jwk: serde_json::Value) -> Gw {
    let dir = TempDir::new();
    dir.write(
        "rs256.pem",
        std::fs::read(fixture("test-only-rsa-public.pem")).unwrap(),
    );
    let mut jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("test-only-jwks.json")).unwrap()).unwrap();
    jwks["keys"].as_array_mut().unwrap().push(es_jwk);
    dir.write("jwks.json", jwks.to_string());
    dir.write(
        "hs256.secret",
        secret("hs-key-next-to-rsa-0123456789abcdef"),
    );
    let policy = format!(
        r#"
[[auth]]
type = "jwt"
issuer = "https://idp.test"
audience = "stompgate"
leeway = "5s"
jwks_file = "jwks.json"
sources = {{ authorization_header = true, cookie = "access_token", query_param = "access_token" }}
[[auth.key]]
alg = "RS256"
pem_file = "rs256.pem"
[[auth.key]]
alg = "HS256"
secret_file = "hs256.secret"
{UPSTREAM_DEFAULT}"#
    );
    start(dir, &policy).await
}

#[tokio::test]
async fn jwt_rs256_and_es256_from_header_cookie_and_query() {
    let (rsa, es) = (rsa_key(), generated_key(Algorithm::ES256));
    let gw = asymmetric_gateway(jwk(&es, "es-1", true)).await;
    let no_login = connect("", "", "");
    let bearer = |t: &str| format!("Bearer {t}");
    let cookie = |t: &str| format!("theme=dark; access_token={t}");

    let rs_pem = secret(sign(&rsa, None, &claims("alice")));
    let rs_jwks = secret(sign(&rsa, Some("test-rsa-1"), &claims("alice")));
    let es_good = secret(sign(&es, Some("es-1"), &claims("alice")));
    gw.connected_with(&[("authorization", &bearer(&rs_pem))], "", &no_login)
        .await;
    gw.connected_with(&[("cookie", &cookie(&es_good))], "", &no_login)
        .await;
    gw.connected_with(&[], &format!("?access_token={rs_jwks}"), &no_login)
        .await;

    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    let expired = secret(sign(&rsa, None, &c));
    let mut c = claims("alice");
    c["aud"] = json!(["billing"]);
    let wrong_aud = secret(sign(&es, Some("es-1"), &c));
    // HS/RS confusion: an HS256 token whose HMAC key is the RSA public key's PEM.
    let confused = secret(sign_hs(
        Algorithm::HS256,
        rsa.public_pem.as_bytes(),
        &claims("alice"),
    ));
    let forged_es = secret(sign(
        &generated_key(Algorithm::ES256),
        Some("es-1"),
        &claims("alice"),
    ));
    let none = secret(unsigned(&claims("alice")));
    let cases: [Case; 5] = [
        (
            &[("authorization", &bearer(&expired))],
            String::new(),
            EXPIRED,
        ),
        (&[("cookie", &cookie(&wrong_aud))], String::new(), AUDIENCE),
        (&[], format!("?access_token={confused}"), INVALID),
        (
            &[("authorization", &bearer(&forged_es))],
            String::new(),
            INVALID,
        ),
        (&[("cookie", &cookie(&none))], String::new(), INVALID),
    ];
    for (headers, query, want) in cases {
        let r = gw.refused_with(headers, &query, &no_login).await;
        assert_refused(&r, want);
        assert!(
            !r.frame.contains("eyJ"),
            "no token in the ERROR: {}",
            r.frame
        );
    }
    assert_refused(&gw.refused(&no_login).await, NONE);
}

#[tokio::test]
async fn http_basic_on_the_upgrade() {
    let (alice_pw, bob_pw) = (secret("alice-basic-3Rt"), secret("bob-basic-8Yu"));
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&alice_pw, &bob_pw));
    let policy =
        format!("[[auth]]\ntype = \"http-basic\"\nusers_file = \"users.toml\"\n{UPSTREAM_DEFAULT}");
    let gw = start(dir, &policy).await;
    let basic = |u: &str, p: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        secret(b64.clone());
        format!("Basic {b64}")
    };
    let no_login = connect("", "", "");
    gw.connected_with(&[("authorization", &basic("bob", &bob_pw))], "", &no_login)
        .await;
    let r = gw
        .refused_with(
            &[("authorization", &basic("alice", &bob_pw))],
            "",
            &no_login,
        )
        .await;
    assert_refused(&r, BAD);
    // CONNECT login/passcode are not what this backend reads.
    assert_refused(&gw.refused(&connect("alice", &alice_pw, "")).await, NONE);
}

#[tokio::test]
async fn passthrough_lets_the_broker_decide() {
    let dir = TempDir::new();
    let gw = start(dir, "[[auth]]\ntype = \"passthrough\"\n").await;
    let to = |login: &str, pw: &str, vhost: &str| {
        format!("CONNECT\naccept-version:1.2\nhost:{vhost}\nlogin:{login}\npasscode:{pw}\nheart-beat:0,0\n\n\0")
    };
    let mut ws = gw.connected(&to("svc-a", "svc-a-secret", "tenant-a")).await;
    let q = crate::common::unique("/queue/passthrough");
    ws.subscribe("s", &q).await;
    for refused in [
        to("svc-a", "wrong-passcode", "tenant-a"),
        to("svc-a", "svc-a-secret", "tenant-b"),
    ] {
        let mut ws = gw.ws().await;
        ws.send(&refused).await;
        let f = ws.frame().await;
        assert!(f.starts_with("ERROR\n"), "the broker refuses: {f}");
        assert!(
            !f.contains("svc-a-secret") && !f.contains("wrong-passcode"),
            "{f}"
        );
        ws.close_code().await;
    }
}
