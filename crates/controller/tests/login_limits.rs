//! Failed logins are limited per username and per client address: the
//! attempt after the limit is a 429 with Retry-After until the window has
//! passed.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Api, Controller};

/// (status, Retry-After seconds) of a login.
fn login(controller: &Controller, username: &str, password: &str) -> (u16, Option<u64>) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v2/auth/login/", controller.url))
        .json(&json!({"username": username, "password": password}))
        .send()
        .expect("login request");
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.status().as_u16(), retry)
}

#[test]
fn a_username_is_locked_out_after_its_failures() {
    let controller = Controller::start(&[
        ("DRYCC_LOGIN_MAX_FAILURES", "3"),
        // Long enough that four password checks fit in it on a loaded
        // machine (each is an argon2 hash); short enough to wait out.
        ("DRYCC_LOGIN_WINDOW", "15"),
        ("DRYCC_LOGIN_MAX_FAILURES_PER_ADDRESS", "100"),
    ]);
    Api::new(&controller.url).login("alice", "pass-word-alice");
    Api::new(&controller.url).login("bob", "pass-word-bob");

    for _ in 0..3 {
        assert_eq!(login(&controller, "alice", "wrong").0, 400);
    }
    let (status, retry) = login(&controller, "alice", "wrong");
    assert_eq!(status, 429);
    let retry = retry.expect("a Retry-After header");
    assert!((1..=15).contains(&retry), "Retry-After: {retry}");
    // The right password is refused too while locked; other users log in.
    assert_eq!(login(&controller, "alice", "pass-word-alice").0, 429);
    assert_eq!(login(&controller, "bob", "pass-word-bob").0, 200);

    // Once the window has passed, the right password works.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match login(&controller, "alice", "pass-word-alice").0 {
            200 => break,
            429 => {}
            other => panic!("login answered {other}"),
        }
        assert!(Instant::now() < deadline, "still locked out after 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
    // And the success reset the count: the limit applies afresh.
    for _ in 0..3 {
        assert_eq!(login(&controller, "alice", "wrong").0, 400);
    }
    assert_eq!(login(&controller, "alice", "wrong").0, 429);
}

#[test]
fn an_address_is_locked_out_across_usernames() {
    let controller = Controller::start(&[
        ("DRYCC_LOGIN_MAX_FAILURES", "100"),
        ("DRYCC_LOGIN_MAX_FAILURES_PER_ADDRESS", "4"),
    ]);
    Api::new(&controller.url).login("alice", "pass-word-alice");
    for name in ["u1", "u2", "u3", "alice"] {
        assert_eq!(login(&controller, name, "wrong").0, 400);
    }
    let (status, retry) = login(&controller, "someone-else", "wrong");
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{retry:?}");
    assert_eq!(login(&controller, "alice", "pass-word-alice").0, 429);
}
