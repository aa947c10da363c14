//! Tokens expire after DRYCC_TOKEN_TTL, logout revokes one, and an admin
//! revokes every token of a user.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Api, Controller};

fn as_user(controller: &Controller, token: &str) -> Api {
    let mut api = Api::new(&controller.url);
    api.token = Some(token.to_string());
    api
}

#[test]
fn tokens_expire_after_their_lifetime() {
    let controller = Controller::start(&[("DRYCC_TOKEN_TTL", "10")]);
    let mut api = Api::new(&controller.url);
    api.login("root", "pass-word-root");
    assert_eq!(
        api.get("/v2/auth/whoami/").status,
        200,
        "a fresh token works"
    );
    let token = api.token.clone().expect("token");

    // Poll (the lifetime is the only clock) until the token is refused.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let answer = api.get("/v2/auth/whoami/");
        if answer.status != 200 {
            break answer;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(
        refused.body["detail"], "Token expired: log in again (drycc auth:login).",
        "{}",
        refused.text
    );
    // The git endpoint refuses it too.
    let git = reqwest::blocking::Client::new()
        .get(format!(
            "{}/git/anything.git/info/refs?service=git-upload-pack",
            controller.url
        ))
        .basic_auth("root", Some(&token))
        .send()
        .expect("git request");
    assert_eq!(git.status().as_u16(), 401);

    // A new login gives a working token again.
    api.login("root", "pass-word-root");
    assert_eq!(api.get("/v2/auth/whoami/").status, 200);
    assert_ne!(api.token.as_deref(), Some(token.as_str()));
}

#[test]
fn logout_and_admin_revocation() {
    let controller = Controller::start(&[]);
    let mut root = Api::new(&controller.url);
    root.login("root", "pass-word-root");
    let mut alice = Api::new(&controller.url);
    alice.login("alice", "pass-word-alice");
    let first = alice.token.clone().expect("token");
    alice.login("alice", "pass-word-alice");
    let second = alice.token.clone().expect("token");
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "pass-word-bob");

    // Logout revokes only the token it is called with.
    let logout = as_user(&controller, &first).post("/v2/auth/logout/", json!({}));
    assert_eq!(logout.status, 204, "{}", logout.text);
    assert_eq!(
        as_user(&controller, &first).get("/v2/auth/whoami/").status,
        401
    );
    assert_eq!(
        as_user(&controller, &second).get("/v2/auth/whoami/").status,
        200
    );

    // Only an admin may revoke a user's tokens.
    let path = "/v2/admin/users/alice/tokens/";
    assert_eq!(
        Api::new(&controller.url)
            .request("DELETE", path, None)
            .status,
        401
    );
    assert_eq!(bob.request("DELETE", path, None).status, 403);
    assert_eq!(
        as_user(&controller, &second).get("/v2/auth/whoami/").status,
        200
    );
    let unknown = root.request("DELETE", "/v2/admin/users/nobody/tokens/", None);
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    // Then every token of the user stops working, and nobody else's.
    alice.login("alice", "pass-word-alice");
    let third = alice.token.clone().expect("token");
    let revoked = root.request("DELETE", path, None);
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    for token in [&second, &third] {
        let answer = as_user(&controller, token).get("/v2/auth/whoami/");
        assert_eq!(answer.status, 401, "{}", answer.text);
        assert_eq!(answer.body["detail"], "Invalid token.");
    }
    assert_eq!(bob.get("/v2/auth/whoami/").status, 200);
    assert_eq!(root.get("/v2/auth/whoami/").status, 200);
    // Logging in again works.
    alice.login("alice", "pass-word-alice");
    assert_eq!(alice.get("/v2/auth/whoami/").status, 200);
}
