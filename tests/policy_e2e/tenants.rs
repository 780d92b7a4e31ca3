//! Two browser users, two vhosts: alice becomes `svc-a` on `tenant-a`, bob `svc-b` on
//! `tenant-b` (login and vhost rendered from each user's `tenant` claim). Both use the same
//! queue name; each sees only the messages sent in their own vhost.

use crate::common::unique;
use crate::policy_common::TempDir;
use crate::support::*;

const POLICY: &str = r#"
[[auth]]
type = "static"
users_file = "users.toml"

[[upstream.user]]
user = "alice"
login = "svc-{claims.tenant}"
passcode = "svc-a-secret"
vhost = "tenant-{claims.tenant}"

[[upstream.user]]
user = "bob"
login = "svc-{claims.tenant}"
passcode = "svc-b-secret"
vhost = "tenant-{claims.tenant}"
"#;

#[tokio::test]
async fn two_users_land_in_two_vhosts_and_see_only_their_own_messages() {
    let (alice_pw, bob_pw) = (secret("alice-tenant-2Df"), secret("bob-tenant-6Hj"));
    let dir = TempDir::new();
    dir.write("users.toml", users_file(&alice_pw, &bob_pw));
    let gw = start(dir, POLICY).await;
    let q = unique("/queue/tenant-shared");

    // The client asks for vhost `/`: the gateway decides, from the user's claims.
    let mut alice = gw.connected(&connect("alice", &alice_pw, "")).await;
    let mut bob = gw.connected(&connect("bob", &bob_pw, "")).await;
    alice.subscribe("a", &q).await;
    bob.subscribe("b", &q).await;

    alice.send_to(&q, "from-alice-1").await;
    let got = alice.frame().await;
    assert_eq!(body(&got), "from-alice-1", "{got}");
    bob.send_to(&q, "from-bob-1").await;
    let got = bob.frame().await;
    assert_eq!(
        body(&got),
        "from-bob-1",
        "bob's first message is his own: {got}"
    );
    alice.send_to(&q, "from-alice-2").await;
    let got = alice.frame().await;
    assert_eq!(
        body(&got),
        "from-alice-2",
        "nothing of bob's reached alice: {got}"
    );
    alice.expect_quiet().await;
    bob.expect_quiet().await;

    // The admin view agrees: two sessions, two broker users, two vhosts.
    let rows = gw.ctx.metrics.connections().list();
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|s| s.view())
        .filter_map(|v| Some((v.broker_user?, v.vhost?)))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("svc-a".to_owned(), "tenant-a".to_owned()),
            ("svc-b".to_owned(), "tenant-b".to_owned())
        ]
    );
}
