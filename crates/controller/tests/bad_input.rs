//! Bad input of every kind gets a 4xx with a clear message, and nothing
//! changes: not the store, not the running processes.

mod support;

use serde_json::{json, Value};
use support::{fixture_repo, push, Api, Controller};

fn snapshot(api: &Api, app: &str) -> (Value, Value, Vec<String>) {
    let app_body = api.get(&format!("/v2/apps/{app}/")).body;
    let releases = api.get(&format!("/v2/apps/{app}/releases/")).body["results"].clone();
    let mut pods: Vec<String> = api
        .pods(app)
        .iter()
        .map(|p| format!("{} {}", p["name"], p["state"]))
        .collect();
    pods.sort();
    (app_body["structure"].clone(), releases, pods)
}

fn detail(answer: &support::Answer) -> String {
    answer.body["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);

    // No token, a wrong token.
    let answer = api.get("/v2/apps/");
    assert_eq!(answer.status, 401);
    assert!(!detail(&answer).is_empty());
    assert_eq!(
        api.get("/v2/").status,
        401,
        "GET /v2/ without a token answers 401"
    );
    api.token = Some("not-a-token".into());
    let answer = api.get("/v2/apps/");
    assert_eq!(answer.status, 401);
    assert_eq!(detail(&answer), "Invalid token.");

    api.login("owner", "pass-word-1");

    // Every response, errors included, carries the API version headers.
    for path in ["/v2/", "/v2/apps/", "/healthz", "/no/such/path"] {
        let response =
            reqwest::blocking::get(format!("{}{path}", controller.url)).expect("request");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            header("DRYCC_API_VERSION").as_deref(),
            Some("2.3"),
            "{path}"
        );
        assert_eq!(
            header("DRYCC_PLATFORM_VERSION").as_deref(),
            Some(env!("CARGO_PKG_VERSION")),
            "{path}"
        );
    }
    let app = "bad-input-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);

    // Scale before any build.
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"web": 1}));
    assert_eq!(answer.status, 400);
    assert_eq!(detail(&answer), "No build associated with this release");

    // A bad Procfile rejects the push with the parser's message.
    let bad = fixture_repo("badprocfile");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(bad.path(), &controller.url, app, "owner", &token);
    assert!(!ok, "a bad Procfile must reject the push:\n{output}");
    assert!(output.contains("line 2, column 1"), "{output}");
    assert!(output.contains("did you mean \"web-1\"?"), "{output}");
    assert!(output.contains("line 3"), "{output}");
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        1
    );
    assert!(api.get(&format!("/v2/apps/{app}/builds/")).body["results"]
        .as_array()
        .is_some_and(|b| b.is_empty()));

    // Every grammar rule of the Procfile rejects the push with its message.
    for (procfile, message) in [
        ("web:\n", "line 1, column 5: no command after ':'"),
        (
            ": echo hi\n",
            "line 1, column 1: missing process type before ':'",
        ),
        ("web echo hi\n", "line 1, column 4: no ':' on this line"),
        (
            "we b: echo\n",
            "line 1, column 3: invalid process type \"we b\"",
        ),
        (
            "web.1: echo\n",
            "line 1, column 4: invalid process type \"web.1\"",
        ),
        (
            "web: a\nweb: b\n",
            "line 2, column 1: duplicate process type \"web\": already defined on line 1",
        ),
        ("Web_1: echo\n", "did you mean \"web-1\"?"),
        (
            "run: echo\n",
            "process type \"run\" is reserved for one-off commands",
        ),
        ("# only a comment\n", "Procfile declares no process types"),
    ] {
        std::fs::write(bad.path().join("Procfile"), procfile).expect("write Procfile");
        support::commit_all(bad.path(), "next");
        let (ok, output) = push(bad.path(), &controller.url, app, "owner", &token);
        assert!(!ok, "{procfile:?} must reject the push:\n{output}");
        assert!(
            output.contains(message),
            "{procfile:?}: expected {message:?} in:\n{output}"
        );
    }
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        1,
        "no release from a bad Procfile"
    );

    // A good push, then the baseline.
    let good = fixture_repo("webapp");
    let (ok, output) = push(good.path(), &controller.url, app, "owner", &token);
    assert!(ok, "{output}");
    let baseline = snapshot(&api, app);

    let scale = |body: Value| api.post(&format!("/v2/apps/{app}/scale/"), body);
    for (body, status, message) in [
        (json!({"web": -1}), 400, "Invalid scaling format: "),
        (json!({"web": "two"}), 400, "Invalid scaling format: "),
        (json!({"web": 1.5}), 400, "Invalid scaling format: "),
        (json!({"web": 101}), 400, "Invalid scaling format: "),
        (
            json!({"web": 2, "sleeper": -1}),
            400,
            "Invalid scaling format: ",
        ),
        (json!([1, 2]), 400, "Invalid scaling format: "),
        (
            json!({"worker": 1}),
            404,
            "Container type worker does not exist in application",
        ),
        (
            json!({"run": 1}),
            400,
            "Cannot set scale for reserved types, procfile type is: run",
        ),
    ] {
        let answer = scale(body.clone());
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert!(
            detail(&answer).starts_with(message),
            "{body}: {}",
            answer.text
        );
    }

    // Autoscale rules are validated; a type without a CPU limit is refused.
    for (rule, message) in [
        (
            json!({"web": {"min": 1, "max": 3, "cpu_percent": 50}}),
            "drycc limits:set --cpu web=<value>",
        ),
        (
            json!({"sleeper": {"min": 3, "max": 2, "cpu_percent": 50}}),
            "1 <= min <= max",
        ),
        (
            json!({"sleeper": {"min": 0, "max": 2, "cpu_percent": 50}}),
            "1 <= min <= max",
        ),
        (
            json!({"sleeper": {"min": 1, "max": 2, "cpu_percent": 0}}),
            "cpu_percent must be at least 1",
        ),
        (
            json!({"sleeper": {"min": 1, "max": 2}}),
            "\"cpu_percent\" must be a positive integer",
        ),
        (
            json!({"nope": {"min": 1, "max": 2, "cpu_percent": 5}}),
            "Container type nope does not exist",
        ),
    ] {
        let answer = api.post(
            &format!("/v2/apps/{app}/settings/"),
            json!({"autoscale": rule}),
        );
        assert!(
            answer.status == 400 || answer.status == 404,
            "{rule}: {}",
            answer.text
        );
        assert!(detail(&answer).contains(message), "{rule}: {}", answer.text);
    }

    // An autoscaled type refuses manual scaling with 409.
    let limits = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"cpu": {"sleeper": "500m"}}),
    );
    assert_eq!(limits.status, 201, "{}", limits.text);
    let rule = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"sleeper": {"min": 1, "max": 2, "cpu_percent": 75}}}),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let answer = scale(json!({"sleeper": 2}));
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert!(detail(&answer).contains("drycc autoscale:unset sleeper"));
    let unset = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"sleeper": null}}),
    );
    assert_eq!(unset.status, 201, "{}", unset.text);
    scale(json!({"sleeper": 0}));
    let baseline = {
        let (structure, releases, pods) = snapshot(&api, app);
        assert_eq!(structure, baseline.0);
        (structure, releases, pods)
    };

    // Malformed and oversized bodies.
    let answer = api.raw(
        "POST",
        &format!("/v2/apps/{app}/scale/"),
        "application/json",
        b"{\"web\": ".to_vec(),
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(detail(&answer).contains("JSON"), "{}", answer.text);
    let huge = format!(
        "{{\"values\": {{\"X\": \"{}\"}}}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let answer = api.raw(
        "POST",
        &format!("/v2/apps/{app}/config/"),
        "application/json",
        huge.into_bytes(),
    );
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(detail(&answer).contains("too large"), "{}", answer.text);
    let answer = api.raw(
        "POST",
        &format!("/v2/apps/{app}/config/"),
        "text/plain",
        b"x".to_vec(),
    );
    assert_eq!(answer.status, 415, "{}", answer.text);

    // Bad config values.
    for body in [
        json!({"values": {"1BAD": "x"}}),
        json!({"cpu": {"web": "fast"}}),
        json!({"memory": {"web": "lots"}}),
        json!({"termination_grace_period": {"web": "soon"}}),
        json!({"healthcheck": {"web": {"readinessProbe": {"nothing": 1}}}}),
        json!({"registry": {"token": "x"}}),
    ] {
        let answer = api.post(&format!("/v2/apps/{app}/config/"), body.clone());
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    let answer = api.post(&format!("/v2/apps/{app}/config/"), json!({"values": {}}));
    assert_eq!(answer.status, 409);
    assert_eq!(detail(&answer), "owner changed nothing - release stopped");

    // Unknown app, invalid app names.
    let answer = api.get("/v2/apps/no-such-app/");
    assert_eq!(answer.status, 404);
    let answer = api.post("/v2/apps/no-such-app/scale/", json!({"web": 1}));
    assert_eq!(answer.status, 404);
    for name in [
        "UPPER",
        "ab",
        "-lead",
        "trail-",
        "under_score",
        "drycc-system",
        "default",
        &"a".repeat(64),
    ] {
        let answer = api.post("/v2/apps/", json!({"id": name}));
        assert_eq!(answer.status, 400, "{name}: {}", answer.text);
        assert!(
            detail(&answer).starts_with("id: App name"),
            "{name}: {}",
            answer.text
        );
    }

    // Another user's app: 404 to read, 403 to write.
    let mut other = Api::new(&controller.url);
    other.login("mallory", "pass-word-2");
    assert_eq!(other.get(&format!("/v2/apps/{app}/")).status, 404);
    assert_eq!(other.get(&format!("/v2/apps/{app}/pods/")).status, 404);
    assert_eq!(
        other
            .post(&format!("/v2/apps/{app}/scale/"), json!({"web": 3}))
            .status,
        403
    );
    assert_eq!(
        other
            .request("DELETE", &format!("/v2/apps/{app}/"), None)
            .status,
        403
    );
    assert_eq!(
        other
            .post(
                &format!("/v2/apps/{app}/config/"),
                json!({"values": {"A": "b"}})
            )
            .status,
        403
    );
    let (ok, _) = push(
        good.path(),
        &other.url,
        app,
        "mallory",
        other.token.as_deref().unwrap_or_default(),
    );
    assert!(!ok, "another user cannot push");

    // Sharing: a granted user can read and write; revoked, 404 again.
    assert_eq!(
        api.post(
            &format!("/v2/apps/{app}/perms/"),
            json!({"username": "nobody-here"})
        )
        .status,
        404
    );
    assert_eq!(
        api.post(
            &format!("/v2/apps/{app}/perms/"),
            json!({"username": "mallory"})
        )
        .status,
        201
    );
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/perms/")).body["users"],
        json!(["mallory"])
    );
    assert_eq!(other.get(&format!("/v2/apps/{app}/")).status, 200);
    assert_eq!(other.get(&format!("/v2/apps/{app}/pods/")).status, 200);
    assert_eq!(
        other
            .post(
                &format!("/v2/apps/{app}/perms/"),
                json!({"username": "mallory"})
            )
            .status,
        403,
        "only the owner shares"
    );
    assert_eq!(
        api.request("DELETE", &format!("/v2/apps/{app}/perms/mallory/"), None)
            .status,
        204
    );
    assert_eq!(other.get(&format!("/v2/apps/{app}/")).status, 404);

    // Bad rollbacks.
    for (body, message) in [
        (json!({"version": -1}), "version cannot be below 0"),
        (
            json!({"version": 1}),
            "Cannot roll back to initial release.",
        ),
    ] {
        let answer = api.post(&format!("/v2/apps/{app}/releases/rollback/"), body);
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(detail(&answer), message);
    }

    // Lists page with links.
    let page = api.get(&format!("/v2/apps/{app}/releases/?limit=1&offset=1"));
    assert_eq!(page.status, 200);
    assert_eq!(page.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        page.body["next"],
        format!("/v2/apps/{app}/releases?limit=1&offset=2")
    );
    assert_eq!(
        page.body["previous"],
        format!("/v2/apps/{app}/releases?limit=1&offset=0")
    );

    // Nothing changed.
    assert_eq!(snapshot(&api, app), baseline);
    assert!(
        !controller.log().contains("panicked"),
        "{}",
        controller.log()
    );
}
