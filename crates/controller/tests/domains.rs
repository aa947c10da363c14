//! Custom domains through the API and the router: an added domain reaches
//! the app at the router, a removed one gets the router's 404, bad input is
//! refused with what is allowed, and the auth rules are the config's.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{fixture_repo, push, Api, Controller};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// (status, body) of `GET /` for `host` through the router at `url`.
fn through(client: &reqwest::blocking::Client, url: &str, host: &str) -> (u16, String) {
    match client.get(format!("{url}/")).header("Host", host).send() {
        Ok(response) => (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        ),
        Err(error) => (0, error.to_string()),
    }
}

/// A controller with the webapp fixture pushed to `app` (web=1 up).
fn deployed(app: &str) -> (Controller, Api) {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    let created = api.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    (controller, api)
}

#[test]
fn an_added_domain_reaches_the_app_and_a_removed_one_does_not() {
    let app = "domained";
    let (controller, api) = deployed(app);
    let client = client();
    let router = controller.router_url.clone();
    let domains = format!("/v2/apps/{app}/domains/");

    let (status, body) = through(&client, &router, "www.example.com");
    assert_eq!(status, 404, "{body}");
    let empty = api.get(&domains);
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body["count"], 0);

    // Added (lower-cased): the router answers for it once the API has.
    let added = api.post(&domains, json!({"domain": "WWW.Example.com"}));
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["domain"], "www.example.com");
    assert_eq!(added.body["app"], app);
    assert_eq!(added.body["owner"], "alice");
    let (status, body) = through(&client, &router, "www.example.com:8080");
    assert_eq!(status, 200, "{body}\n{}", controller.log());
    assert!(body.contains(&format!("{app}-web-")), "{body}");
    // The platform's host still answers.
    let (status, _) = through(&client, &router, &format!("{app}.localhost"));
    assert_eq!(status, 200);

    let list = api.get(&domains);
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["next"], serde_json::Value::Null);
    let first = &list.body["results"][0];
    for field in ["uuid", "app", "owner", "domain", "created", "updated"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["domain"], "www.example.com");

    // Removed: the router's 404 naming the host.
    let removed = api.request("DELETE", &format!("{domains}www.example.com/"), None);
    assert_eq!(removed.status, 204, "{}", removed.text);
    let (status, body) = through(&client, &router, "www.example.com");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("www.example.com"), "{body}");
    let again = api.request("DELETE", &format!("{domains}www.example.com/"), None);
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(api.get(&domains).body["count"], 0);
}

#[test]
fn bad_domains_conflicts_and_strangers_are_refused() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    for app in ["first-app", "second-app"] {
        let created = api.post("/v2/apps/", json!({"id": app}));
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let domains = "/v2/apps/first-app/domains/";

    for bad in [
        json!({"domain": "*.example.com"}),
        json!({"domain": "-bad.example.com"}),
        json!({"domain": "under_score.example.com"}),
        json!({"domain": ""}),
        json!({"domain": "com"}),
        json!({"domain": format!("{}.com", "a".repeat(64))}),
        json!({"domain": 7}),
        json!({}),
    ] {
        let answer = api.post(domains, bad.clone());
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
        assert!(answer.body["detail"].is_string(), "{}", answer.text);
    }
    let answer = api.post(domains, json!({"domain": "*.example.com"}));
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("a-z, 0-9 and hyphens"), "{detail}");
    assert!(detail.contains("no wildcard"), "{detail}");

    // The platform's own hosts.
    for own in ["second-app.localhost", "first-app.localhost", "localhost"] {
        let answer = api.post(domains, json!({"domain": own}));
        assert_eq!(answer.status, 400, "{own}: {}", answer.text);
    }

    // One app per domain.
    let added = api.post(domains, json!({"domain": "shop.example.com"}));
    assert_eq!(added.status, 201, "{}", added.text);
    let twice = api.post(domains, json!({"domain": "shop.example.com"}));
    assert_eq!(twice.status, 409, "{}", twice.text);
    let taken = api.post(
        "/v2/apps/second-app/domains/",
        json!({"domain": "Shop.Example.com."}),
    );
    assert_eq!(taken.status, 409, "{}", taken.text);

    // Someone without access: 404 to read, 403 to write; shared: allowed.
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    assert_eq!(bob.get(domains).status, 404);
    assert_eq!(
        bob.post(domains, json!({"domain": "bob.example.com"}))
            .status,
        403
    );
    assert_eq!(
        bob.request("DELETE", &format!("{domains}shop.example.com/"), None)
            .status,
        403
    );
    assert_eq!(bob.get("/v2/apps/no-such-app/domains/").status, 404);
    let shared = api.post("/v2/apps/first-app/perms/", json!({"username": "bob"}));
    assert_eq!(shared.status, 201, "{}", shared.text);
    assert_eq!(bob.get(domains).body["count"], 1);
    let by_bob = bob.post(domains, json!({"domain": "bob.example.com"}));
    assert_eq!(by_bob.status, 201, "{}", by_bob.text);
    assert_eq!(by_bob.body["owner"], "bob");

    // Destroying the app frees its domains.
    let destroyed = api.request("DELETE", "/v2/apps/first-app/", None);
    assert_eq!(destroyed.status, 204, "{}", destroyed.text);
    let moved = api.post(
        "/v2/apps/second-app/domains/",
        json!({"domain": "shop.example.com"}),
    );
    assert_eq!(moved.status, 201, "{}", moved.text);
}
