//! Sign-ups follow DRYCC_REGISTRATION_MODE; the first user is an admin.

mod support;

use serde_json::json;
use support::{Api, Controller};

fn register(api: &Api, username: &str) -> u16 {
    api.post(
        "/v2/auth/register/",
        json!({"username": username, "password": "pass-word-9"}),
    )
    .status
}

#[test]
fn admin_only_registration_needs_an_admin_token() {
    let controller = Controller::start(&[("DRYCC_REGISTRATION_MODE", "admin_only")]);
    let mut api = Api::new(&controller.url);
    api.login("root", "pass-word-0");
    let whoami = api.get("/v2/auth/whoami/");
    assert_eq!(
        whoami.body["is_superuser"], true,
        "the first user is an admin"
    );

    let anonymous = Api::new(&controller.url);
    assert_eq!(register(&anonymous, "eve"), 403);
    assert_eq!(register(&api, "dave"), 201, "an admin may register users");
    let mut dave = Api::new(&controller.url);
    dave.login("dave", "pass-word-9");
    assert_eq!(dave.get("/v2/auth/whoami/").body["is_superuser"], false);
    assert_eq!(
        register(&dave, "frank"),
        403,
        "a user who is not an admin may not"
    );

    // Logout revokes the token.
    assert_eq!(dave.post("/v2/auth/logout/", json!({})).status, 204);
    assert_eq!(dave.get("/v2/auth/whoami/").status, 401);
}

#[test]
fn disabled_registration_refuses_everyone_after_the_first() {
    let controller = Controller::start(&[("DRYCC_REGISTRATION_MODE", "disabled")]);
    let mut api = Api::new(&controller.url);
    api.login("root", "pass-word-0");
    assert_eq!(register(&api, "someone"), 403);
    assert_eq!(register(&Api::new(&controller.url), "someone"), 403);
    // Duplicate and malformed sign-ups are 4xx too.
    let open = Controller::start(&[]);
    let api = Api::new(&open.url);
    assert_eq!(register(&api, "first"), 201);
    assert_eq!(register(&api, "first"), 409);
    assert_eq!(register(&api, "bad name!"), 400);
    let answer = api.post(
        "/v2/auth/login/",
        json!({"username": "first", "password": "wrong"}),
    );
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body["detail"],
        "Unable to log in with provided credentials."
    );
}
