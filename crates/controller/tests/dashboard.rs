//! The dashboard's security over HTTP, against a real controller: every
//! action needs the session and its CSRF token, a user sees only their
//! apps, and no config secret reaches a page unasked.

mod support;

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use support::{fixture_repo, push, Api, Controller};

/// A browser without a browser: cookies kept by hand, redirects not
/// followed, so every answer is seen as it is.
struct Visitor {
    client: Client,
    url: String,
    session: Option<String>,
    csrf: String,
}

fn cookie_of(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(str::to_string))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
}

/// The first CSRF token in a page.
fn csrf_in(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..start + 64].to_string()
}

impl Visitor {
    fn new(url: &str) -> Visitor {
        Visitor {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            url: url.to_string(),
            session: None,
            csrf: String::new(),
        }
    }

    fn sign_in(url: &str, username: &str, password: &str) -> Visitor {
        let mut visitor = Visitor::new(url);
        let form = visitor
            .client
            .get(format!("{url}/dashboard/login"))
            .send()
            .expect("login page");
        let login = cookie_of(&form, "drycc_login").expect("the form's cookie");
        let page = form.text().expect("body");
        let answer = visitor
            .client
            .post(format!("{url}/dashboard/login"))
            .header(COOKIE, format!("drycc_login={login}"))
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf", &csrf_in(&page)),
            ])
            .send()
            .expect("sign in");
        assert_eq!(answer.status(), 303, "signed in");
        let set = answer
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("drycc_session="))
            .expect("a session cookie")
            .to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        visitor.session = cookie_of(&answer, "drycc_session");
        let (status, page) = visitor.get("/dashboard/");
        assert_eq!(status, 200, "{page}");
        visitor.csrf = csrf_in(&page);
        visitor
    }

    fn with_cookie(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.session {
            Some(session) => request.header(COOKIE, format!("drycc_session={session}")),
            None => request,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .with_cookie(self.client.get(format!("{}{path}", self.url)))
            .send()
            .expect("get");
        (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        )
    }

    /// The first bytes of a stream (an SSE answer never ends by itself).
    fn get_start(&self, path: &str) -> (u16, String) {
        let mut response = self
            .with_cookie(self.client.get(format!("{}{path}", self.url)))
            .send()
            .expect("get");
        let status = response.status().as_u16();
        let mut buffer = vec![0u8; 64 * 1024];
        let read = std::io::Read::read(&mut response, &mut buffer).unwrap_or(0);
        (
            status,
            String::from_utf8_lossy(&buffer[..read]).into_owned(),
        )
    }

    /// POST a form; `csrf` is sent as given (None: not at all).
    fn post(
        &self,
        path: &str,
        csrf: Option<&str>,
        fields: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let response = self
            .with_cookie(self.client.post(format!("{}{path}", self.url)))
            .form(&form)
            .send()
            .expect("post");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, location, response.text().unwrap_or_default())
    }
}

/// A controller with an admin (the first user), alice (no admin) with the
/// webapp fixture pushed to `app`, and bob.
fn setup(app: &str) -> (Controller, Api, Api) {
    let controller = Controller::start(&[]);
    Api::new(&controller.url).login("root", "root-password");
    let mut alice = Api::new(&controller.url);
    alice.login("alice", "alice-password");
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    let created = alice.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);
    let repo = fixture_repo("webapp");
    let token = alice.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    (controller, alice, bob)
}

/// The page shows the API's message (HTML-escaped) for the same request.
fn assert_same_refusal(page: &str, api: &serde_json::Value) {
    let detail = api["detail"]
        .as_str()
        .expect("a detail")
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;");
    assert!(
        page.contains(&format!(r#"role="alert">{detail}</p>"#)),
        "the API's message {detail:?} in {page}"
    );
}

fn web_count(api: &Api, app: &str) -> usize {
    api.pods_of(app, "web").len()
}

#[test]
fn every_action_needs_the_session_and_its_csrf_token() {
    let app = "guarded-app";
    let (controller, alice_api, _) = setup(app);
    let alice = Visitor::sign_in(&controller.url, "alice", "alice-password");
    let bob = Visitor::sign_in(&controller.url, "bob", "bob-password");
    let anonymous = Visitor::new(&controller.url);
    let forged = Visitor {
        csrf: bob.csrf.clone(),
        ..Visitor::sign_in(&controller.url, "alice", "alice-password")
    };
    let actions: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/dashboard/apps/{app}/scale"),
            vec![("type", "web"), ("count", "2")],
        ),
        (
            format!("/dashboard/apps/{app}/restart"),
            vec![("type", "web")],
        ),
        (format!("/dashboard/apps/{app}/restart"), vec![]),
        (
            format!("/dashboard/apps/{app}/rollback"),
            vec![("version", "2")],
        ),
        (
            format!("/dashboard/apps/{app}/autoscale"),
            vec![
                ("type", "web"),
                ("min", "1"),
                ("max", "2"),
                ("cpu_percent", "50"),
            ],
        ),
        (
            format!("/dashboard/apps/{app}/autoscale/unset"),
            vec![("type", "web")],
        ),
        ("/dashboard/logout".to_string(), vec![]),
    ];
    let releases = alice_api.get(&format!("/v2/apps/{app}/releases/")).body["count"].clone();
    for (path, fields) in &actions {
        let (status, _, body) = anonymous.post(path, Some(&alice.csrf), fields);
        assert_eq!(status, 401, "{path} without a session: {body}");
        assert!(body.contains("Sign in first"), "{body}");
        let (status, _, body) = alice.post(path, None, fields);
        assert_eq!(status, 403, "{path} without the CSRF token: {body}");
        assert!(body.contains("CSRF token is missing or wrong"), "{body}");
        let (status, _, _) = alice.post(path, Some("0".repeat(64).as_str()), fields);
        assert_eq!(status, 403, "{path} with a wrong CSRF token");
        let (status, _, _) = forged.post(path, Some(&forged.csrf), fields);
        assert_eq!(status, 403, "{path} with another session's CSRF token");
    }
    // Nothing of it happened.
    assert_eq!(web_count(&alice_api, app), 1);
    let after = alice_api.get(&format!("/v2/apps/{app}/releases/")).body["count"].clone();
    assert_eq!(releases, after, "no rollback");
    let settings = alice_api.get(&format!("/v2/apps/{app}/settings/"));
    assert_eq!(settings.body["autoscale"], json!({}), "{}", settings.text);
    let (status, _) = alice.get(&format!("/dashboard/apps/{app}"));
    assert_eq!(status, 200, "the session survived the logout attempts");

    // With both, the action is the API's: done, or refused in its words.
    let (status, location, body) = alice.post(
        &format!("/dashboard/apps/{app}/scale"),
        Some(&alice.csrf),
        &[("type", "web"), ("count", "2")],
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, format!("/dashboard/apps/{app}?done=scaled"));
    assert_eq!(web_count(&alice_api, app), 2);
    let (status, _, body) = alice.post(
        &format!("/dashboard/apps/{app}/scale"),
        Some(&alice.csrf),
        &[("type", "nosuch"), ("count", "1")],
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("Container type nosuch does not exist in application"),
        "{body}"
    );
    let (status, _, body) = alice.post(
        &format!("/dashboard/apps/{app}/scale"),
        Some(&alice.csrf),
        &[("type", "web"), ("count", "many")],
    );
    let api = alice_api.post(&format!("/v2/apps/{app}/scale/"), json!({"web": "many"}));
    assert_eq!(status, api.status, "{body}");
    assert_same_refusal(&body, &api.body);

    // A type's restart and a rollback go through; a rule on a type without
    // a CPU limit is refused as the API refuses it.
    let (status, location, body) = alice.post(
        &format!("/dashboard/apps/{app}/restart"),
        Some(&alice.csrf),
        &[("type", "web")],
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, format!("/dashboard/apps/{app}?done=restarted"));
    let (status, location, body) = alice.post(
        &format!("/dashboard/apps/{app}/rollback"),
        Some(&alice.csrf),
        &[("version", "2")],
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        location,
        format!("/dashboard/apps/{app}/releases?done=rolled-back")
    );
    let releases = alice_api.get(&format!("/v2/apps/{app}/releases/"));
    assert_eq!(
        releases.body["results"][0]["summary"], "alice rolled back to v2",
        "{}",
        releases.text
    );
    let rule = [
        ("type", "web"),
        ("min", "1"),
        ("max", "2"),
        ("cpu_percent", "50"),
    ];
    let (status, _, body) = alice.post(
        &format!("/dashboard/apps/{app}/autoscale"),
        Some(&alice.csrf),
        &rule,
    );
    let api = alice_api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"web": {"min": 1, "max": 2, "cpu_percent": 50}}}),
    );
    assert_eq!((status, api.status), (400, 400), "{body}");
    assert_same_refusal(&body, &api.body);

    // The sign-in form has its own token: without the cookie's value, no
    // sign-in.
    let client = &anonymous.client;
    let refused = client
        .post(format!("{}/dashboard/login", controller.url))
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("csrf", "x"),
        ])
        .send()
        .expect("post");
    assert_eq!(refused.status(), 403);
    assert!(cookie_of(&refused, "drycc_session").is_none());

    // Streams and the chart's data need the session too.
    for path in [
        format!("/dashboard/apps/{app}/events"),
        format!("/dashboard/apps/{app}/logs/stream"),
        format!("/dashboard/apps/{app}/autoscale/web/history"),
    ] {
        let (status, _) = anonymous.get(&path);
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = anonymous.get(&format!("/dashboard/apps/{app}"));
    assert_eq!(status, 303, "pages send an anonymous visitor to sign in");

    // Signing out ends the session, here and for the API.
    let session = alice.session.clone().expect("session");
    let (status, location, _) = alice.post("/dashboard/logout", Some(&alice.csrf), &[]);
    assert_eq!((status, location.as_str()), (303, "/dashboard/login"));
    let (status, _) = alice.get(&format!("/dashboard/apps/{app}"));
    assert_eq!(status, 303);
    let (status, _, _) = alice.post(
        &format!("/dashboard/apps/{app}/scale"),
        Some(&alice.csrf),
        &[("type", "web"), ("count", "1")],
    );
    assert_eq!(status, 401);
    let mut replay = Api::new(&controller.url);
    replay.token = Some(session);
    assert_eq!(replay.get("/v2/auth/whoami/").status, 401);
}

#[test]
fn a_user_sees_only_their_apps() {
    let app = "alices-app";
    let (controller, alice_api, _) = setup(app);
    let bob = Visitor::sign_in(&controller.url, "bob", "bob-password");
    let (status, page) = bob.get("/dashboard/");
    assert_eq!(status, 200);
    assert!(!page.contains(app), "{page}");
    for path in [
        format!("/dashboard/apps/{app}"),
        format!("/dashboard/apps/{app}/releases"),
        format!("/dashboard/apps/{app}/config?reveal=1"),
        format!("/dashboard/apps/{app}/autoscale"),
        format!("/dashboard/apps/{app}/logs"),
        format!("/dashboard/apps/{app}/events"),
        format!("/dashboard/apps/{app}/logs/stream"),
        format!("/dashboard/apps/{app}/autoscale/web/history"),
    ] {
        let (status, body) = bob.get(&path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("data-type") && !body.contains("alice"),
            "{path} tells nothing of the app: {body}"
        );
    }
    // Actions with bob's own valid token: the API's refusal, nothing done.
    for (path, fields) in [
        (
            format!("/dashboard/apps/{app}/scale"),
            vec![("type", "web"), ("count", "3")],
        ),
        (format!("/dashboard/apps/{app}/restart"), vec![]),
        (format!("/dashboard/apps/{app}/rollback"), vec![]),
        (
            format!("/dashboard/apps/{app}/autoscale/unset"),
            vec![("type", "web")],
        ),
    ] {
        let (status, _, body) = bob.post(&path, Some(&bob.csrf), &fields);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("You do not have permission to perform this action."));
    }
    assert_eq!(web_count(&alice_api, app), 1);
    // Shared with bob, it is his to see.
    let shared = alice_api.post(
        &format!("/v2/apps/{app}/perms/"),
        json!({"username": "bob"}),
    );
    assert_eq!(shared.status, 201, "{}", shared.text);
    let (_, page) = bob.get("/dashboard/");
    assert!(page.contains(app), "{page}");
    let (status, page) = bob.get(&format!("/dashboard/apps/{app}"));
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-type="web""#), "{page}");
    let (status, start) = bob.get_start(&format!("/dashboard/apps/{app}/events"));
    assert_eq!(status, 200);
    assert!(start.starts_with("event: processes"), "{start}");
}

#[test]
fn no_secret_reaches_a_page_unasked() {
    let app = "secret-app";
    let (controller, alice_api, _) = setup(app);
    let (value, password) = ("s3cr3t-value-1234", "registry-pass-5678");
    let answer = alice_api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({
            "values": {"API_KEY": value},
            "registry": {"username": "deployer", "password": password},
        }),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let alice = Visitor::sign_in(&controller.url, "alice", "alice-password");
    for path in [
        "/dashboard/".to_string(),
        format!("/dashboard/apps/{app}"),
        format!("/dashboard/apps/{app}/releases"),
        format!("/dashboard/apps/{app}/config"),
        format!("/dashboard/apps/{app}/autoscale"),
        format!("/dashboard/apps/{app}/logs"),
    ] {
        let (status, page) = alice.get(&path);
        assert_eq!(status, 200, "{path}");
        assert!(!page.contains(value), "{path} shows the value unasked");
        assert!(
            !page.contains(password),
            "{path} shows the registry password"
        );
    }
    let (_, start) = alice.get_start(&format!("/dashboard/apps/{app}/logs/stream"));
    assert!(start.starts_with("event: backlog"), "{start}");
    assert!(!start.contains(value) && !start.contains(password));
    let (_, page) = alice.get(&format!("/dashboard/apps/{app}/config"));
    assert!(
        page.contains("API_KEY") && page.contains("hidden"),
        "{page}"
    );
    // Asked: the values, never the registry password.
    let (status, page) = alice.get(&format!("/dashboard/apps/{app}/config?reveal=1"));
    assert_eq!(status, 200);
    assert!(page.contains(value), "{page}");
    assert!(!page.contains(password), "{page}");
    assert!(page.contains("deployer"), "{page}");
}
