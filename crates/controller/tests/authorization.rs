//! Walks the "who may do what" table of docs/authorization.md: every row,
//! for every role, with concrete requests against a real controller.
//!
//! Each row's endpoint text maps to requests below; a row without a
//! mapping (or a mapping without a row) fails the test, so the table and
//! the code cannot drift apart. A 401/403/404 of the table must be the
//! exact answer; a success code must not be answered with a denial (the
//! request may still fail for other reasons, e.g. 400 for bad input).

mod support;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{example_repo, push, Api, Controller};

/// The table's columns, in order.
const COLUMNS: [&str; 5] = ["anonymous", "stranger", "collaborator", "owner", "admin"];
const ANONYMOUS: usize = 0;
const STRANGER: usize = 1;
const COLLABORATOR: usize = 2;
const OWNER: usize = 3;
const ADMIN: usize = 4;

const DENIALS: [u16; 3] = [401, 403, 404];

/// What each row of the table is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CertsList,
    CertsCreate,
    CertShowDelete,
    CertAttachDetach,
    DomainsRead,
    DomainsCreate,
    DomainsDelete,
    Health,
    Metrics,
    Root,
    OpenApi,
    Register,
    Login,
    WhoamiLogout,
    RevokeTokens,
    AppsList,
    AppsCreate,
    AppShow,
    AppDestroy,
    BuildsReleasesRead,
    BuildCreate,
    Rollback,
    ConfigRead,
    ConfigWrite,
    Scale,
    PodsRead,
    Restart,
    Exec,
    Logs,
    SettingsRead,
    SettingsWrite,
    PermsRead,
    PermsCreate,
    PermsDelete,
    Git,
    GitOther,
}

/// The endpoint text of each row, exactly as the table spells it.
const MAPPING: &[(&str, Kind)] = &[
    ("`GET /healthz`, `GET /readiness`", Kind::Health),
    (
        "`GET /metrics` (app names, process counts; open like `/healthz`, an open question)",
        Kind::Metrics,
    ),
    ("`GET /v2/`", Kind::Root),
    (
        "`GET /v2/openapi.json` (the API's description)",
        Kind::OpenApi,
    ),
    ("`POST /v2/auth/register/`", Kind::Register),
    ("`POST /v2/auth/login/`", Kind::Login),
    (
        "`GET /v2/auth/whoami/`, `POST /v2/auth/logout/`",
        Kind::WhoamiLogout,
    ),
    ("`DELETE /v2/admin/users/<u>/tokens/`", Kind::RevokeTokens),
    ("`GET /v2/certs/`", Kind::CertsList),
    ("`POST /v2/certs/`", Kind::CertsCreate),
    (
        "`GET`, `DELETE /v2/certs/<name>/` (the key is never shown)",
        Kind::CertShowDelete,
    ),
    (
        "`POST /v2/certs/<name>/domain/`, `DELETE .../domain/<domain>/`",
        Kind::CertAttachDetach,
    ),
    ("`GET .../domains/`", Kind::DomainsRead),
    ("`POST .../domains/`", Kind::DomainsCreate),
    ("`DELETE .../domains/<domain>/`", Kind::DomainsDelete),
    ("`GET /v2/apps/`", Kind::AppsList),
    ("`POST /v2/apps/`", Kind::AppsCreate),
    ("`GET /v2/apps/<id>/`", Kind::AppShow),
    ("`DELETE /v2/apps/<id>/`", Kind::AppDestroy),
    (
        "`GET .../builds/`, `.../releases/`, `.../releases/v<N>/`",
        Kind::BuildsReleasesRead,
    ),
    ("`POST .../builds/`", Kind::BuildCreate),
    ("`POST .../releases/rollback/`", Kind::Rollback),
    ("`GET .../config/`", Kind::ConfigRead),
    ("`POST .../config/`", Kind::ConfigWrite),
    ("`POST .../scale/`, `.../ptypes/scale/`", Kind::Scale),
    (
        "`GET .../pods/`, `.../pods/<type>/`, `.../pods/<name>/describe/`",
        Kind::PodsRead,
    ),
    (
        "`POST .../pods/restart/`, `.../pods/<type>/restart/`, `.../pods/<type>/<name>/restart/`",
        Kind::Restart,
    ),
    ("`GET (WS) .../pods/<name>/exec/`", Kind::Exec),
    ("`GET .../logs/`, WS `.../logs`", Kind::Logs),
    (
        "`GET .../settings/`, `.../settings/autoscale/<type>/history/`",
        Kind::SettingsRead,
    ),
    ("`POST .../settings/`", Kind::SettingsWrite),
    ("`GET .../perms/`", Kind::PermsRead),
    ("`POST .../perms/`", Kind::PermsCreate),
    ("`DELETE .../perms/<user>/`", Kind::PermsDelete),
    (
        "git `info/refs`, `git-upload-pack`, `git-receive-pack`",
        Kind::Git,
    ),
    ("any other `/git/...` path", Kind::GitOther),
];

/// One row of the table: the codes each column allows.
struct Row {
    line: usize,
    endpoint: String,
    cells: Vec<BTreeSet<u16>>,
}

/// The status codes of a cell: every three-digit number in it.
fn codes(cell: &str) -> BTreeSet<u16> {
    cell.split(|c: char| !c.is_ascii_digit())
        .filter(|word| word.len() == 3)
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// The rows of the table below its `| endpoint | anonymous | ...` header;
/// `=` repeats the cell to the left, `as anonymous` the first one.
fn parse_table(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.first() == Some(&"endpoint") {
            assert_eq!(cells[1..], COLUMNS, "line {}: the columns", index + 1);
            in_table = true;
            continue;
        }
        if !in_table || cells.iter().all(|c| c.chars().all(|c| c == '-')) {
            continue;
        }
        assert_eq!(cells.len(), 6, "line {}: six cells: {line}", index + 1);
        let mut resolved: Vec<BTreeSet<u16>> = Vec::new();
        for cell in &cells[1..] {
            let set = match *cell {
                "=" => resolved.last().cloned().unwrap_or_default(),
                "as anonymous" => resolved.first().cloned().unwrap_or_default(),
                other => codes(other),
            };
            assert!(
                !set.is_empty(),
                "line {}: no status code in the cell {cell:?}",
                index + 1
            );
            resolved.push(set);
        }
        rows.push(Row {
            line: index + 1,
            endpoint: cells[0].to_string(),
            cells: resolved,
        });
    }
    rows
}

/// One request sent and its answer. `claims` names the code of the cell
/// the request stands for when the cell lists several.
struct Probe {
    what: String,
    claims: Option<u16>,
    status: u16,
}

fn probe(what: impl Into<String>, claims: Option<u16>, status: u16) -> Probe {
    Probe {
        what: what.into(),
        claims,
        status,
    }
}

/// Somebody who sends requests: a column of the table and credentials.
struct Actor {
    label: &'static str,
    column: usize,
    api: Api,
    /// `user:token` for git's Basic auth; `None` sends none.
    basic: Option<(String, String)>,
    /// Username and password to log in with.
    login: (String, String),
}

/// A controller with registration limited (`admin_only`/`disabled`), an
/// admin and (when registration allows) a plain user on it.
struct Strict {
    controller: Controller,
    admin: Option<String>,
    user: Option<String>,
}

struct World {
    controller: Controller,
    actors: Vec<Actor>,
    /// The pushed app, with processes.
    app: String,
    /// An app without a build (cheap config changes and rollbacks).
    idle: String,
    owner_name: String,
    collaborator_name: String,
    admin_only: Strict,
    disabled: Strict,
    sequence: Cell<u32>,
}

fn api_with(url: &str, token: Option<&str>) -> Api {
    let mut api = Api::new(url);
    api.token = token.map(str::to_string);
    api
}

fn password(user: &str) -> String {
    format!("pass-word-{user}")
}

fn login(url: &str, user: &str) -> Api {
    let mut api = Api::new(url);
    api.login(user, &password(user));
    api
}

fn token(api: &Api) -> String {
    api.token.clone().unwrap_or_default()
}

impl World {
    fn set_up() -> World {
        let controller = Controller::start(&[
            // Few wrong passwords lock a name out (429), none the address.
            ("DRYCC_LOGIN_MAX_FAILURES", "2"),
            ("DRYCC_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000"),
        ]);
        let url = controller.url.clone();
        // The first user is the admin.
        let admin = login(&url, "root");
        let owner = login(&url, "olive");
        let collaborator = login(&url, "carl");
        let stranger = login(&url, "sam");
        // Somebody whose tokens get revoked, and somebody to share with.
        login(&url, "vic");
        login(&url, "spare");

        let app = "authz-app".to_string();
        let created = owner.post("/v2/apps/", json!({"id": app}));
        assert_eq!(created.status, 201, "{}", created.text);
        let repo = example_repo();
        let (ok, output) = push(repo.path(), &url, &app, "olive", &token(&owner));
        assert!(ok, "git push: {output}");
        owner.wait_pods(&app, Duration::from_secs(60), "web up", |pods| {
            !pods.is_empty() && pods.iter().all(|p| p["state"] == "up")
        });
        let idle = "authz-idle".to_string();
        let created = owner.post("/v2/apps/", json!({"id": idle}));
        assert_eq!(created.status, 201, "{}", created.text);
        // v2 and v3: something to roll back to.
        for value in ["1", "2"] {
            let answer = owner.post(
                &format!("/v2/apps/{idle}/config/"),
                json!({"values": {"SETUP": value}}),
            );
            assert_eq!(answer.status, 201, "{}", answer.text);
        }
        for shared in [&app, &idle] {
            let answer = owner.post(
                &format!("/v2/apps/{shared}/perms/"),
                json!({"username": "carl"}),
            );
            assert_eq!(answer.status, 201, "{}", answer.text);
        }

        let actor = |label, column, api: Api, user: &str| Actor {
            label,
            column,
            basic: Some((user.to_string(), token(&api))),
            login: (user.to_string(), password(user)),
            api,
        };
        let actors = vec![
            Actor {
                label: "anonymous (no token)",
                column: ANONYMOUS,
                api: api_with(&url, None),
                basic: None,
                login: ("olive".into(), password("olive")),
            },
            Actor {
                label: "anonymous (a wrong token)",
                column: ANONYMOUS,
                api: api_with(&url, Some("not-a-token")),
                basic: Some(("olive".into(), "not-a-token".into())),
                login: ("olive".into(), password("olive")),
            },
            actor("stranger", STRANGER, stranger, "sam"),
            actor("collaborator", COLLABORATOR, collaborator, "carl"),
            actor("owner", OWNER, owner, "olive"),
            actor("admin", ADMIN, admin, "root"),
        ];

        let admin_only = {
            let controller = Controller::start(&[("DRYCC_REGISTRATION_MODE", "admin_only")]);
            let admin = login(&controller.url, "root");
            let registered = admin.post(
                "/v2/auth/register/",
                json!({"username": "plain", "password": password("plain")}),
            );
            assert_eq!(registered.status, 201, "{}", registered.text);
            let user = login(&controller.url, "plain");
            Strict {
                admin: admin.token,
                user: user.token,
                controller,
            }
        };
        let disabled = {
            let controller = Controller::start(&[("DRYCC_REGISTRATION_MODE", "disabled")]);
            let admin = login(&controller.url, "root");
            Strict {
                admin: admin.token,
                user: None,
                controller,
            }
        };

        World {
            controller,
            actors,
            app,
            idle,
            owner_name: "olive".into(),
            collaborator_name: "carl".into(),
            admin_only,
            disabled,
            sequence: Cell::new(0),
        }
    }

    fn url(&self) -> &str {
        &self.controller.url
    }

    fn owner(&self) -> &Api {
        self.actors
            .iter()
            .find(|actor| actor.column == OWNER)
            .map(|actor| &actor.api)
            .expect("an owner")
    }

    /// A name not used before.
    fn fresh(&self, prefix: &str) -> String {
        let next = self.sequence.get() + 1;
        self.sequence.set(next);
        format!("{prefix}{next}")
    }

    /// A process of the app (named afresh: restarts replace them).
    fn pod(&self) -> String {
        let pods = self.owner().wait_pods(
            &self.app,
            Duration::from_secs(60),
            "a web process up",
            |pods| {
                pods.iter()
                    .any(|p| p["type"] == "web" && p["state"] == "up")
            },
        );
        pods.iter()
            .find(|p| p["type"] == "web" && p["state"] == "up")
            .and_then(|p| p["name"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The status of a request with the upgrade headers of a WebSocket.
    fn websocket(&self, actor: &Actor, path: &str) -> u16 {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Error;

        let url = format!("{}{path}", self.url().replacen("http://", "ws://", 1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut request = url.as_str().into_client_request().expect("ws request");
            if let Some(token) = &actor.api.token {
                request.headers_mut().insert(
                    "Authorization",
                    format!("token {token}").parse().expect("header"),
                );
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok((mut socket, response)) => {
                    let _ = socket.close(None).await;
                    response.status().as_u16()
                }
                Err(Error::Http(response)) => response.status().as_u16(),
                Err(other) => panic!("WebSocket {url}: {other}"),
            }
        })
    }

    /// A request to the git endpoint with the actor's Basic credentials.
    fn git(&self, actor: &Actor, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let client = &actor.api.client;
        let url = format!("{}{path}", self.url());
        let mut request = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        if let Some((user, token)) = &actor.basic {
            request = request.basic_auth(user, Some(token));
        }
        if let Some(body) = body {
            let service = path.rsplit('/').next().unwrap_or_default();
            request = request
                .header("Content-Type", format!("application/x-{service}-request"))
                .body(body.to_string());
        }
        let response = request.send().expect("git request sent");
        let challenge = response
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (response.status().as_u16(), challenge)
    }

    fn admin(&self) -> &Api {
        self.actors
            .iter()
            .find(|actor| actor.column == ADMIN)
            .map(|actor| &actor.api)
            .expect("an admin")
    }

    /// A certificate upload named `name` for `<host>.example.com`.
    fn cert_body(&self, name: &str, host: &str) -> Value {
        let certified = rcgen::generate_simple_self_signed(vec![format!("{host}.example.com")])
            .expect("certificate");
        json!({
            "name": name,
            "certificate": certified.cert.pem(),
            "key": certified.key_pair.serialize_pem(),
        })
    }

    /// Attach and detach: somebody else's certificate (404), the actor's own
    /// to a domain of an app they may not change (403), or of one they may
    /// (201, then 204).
    fn walk_attach(&self, actor: &Actor) -> Vec<Probe> {
        let api = &actor.api;
        let owner = self.owner();
        // A domain of an app the owner keeps to themselves, and one of the
        // shared app.
        let private = self.fresh("authz-private-");
        let created = owner.post("/v2/apps/", json!({"id": private}));
        assert_eq!(created.status, 201, "{}", created.text);
        let add_domain = |app: &str| {
            let host = self.fresh("tls-");
            let domain = format!("{host}.example.com");
            let added = owner.post(
                &format!("/v2/apps/{app}/domains/"),
                json!({"domain": domain}),
            );
            assert_eq!(added.status, 201, "{}", added.text);
            (host, domain)
        };
        let (private_host, private_domain) = add_domain(&private);
        let (shared_host, shared_domain) = add_domain(&self.idle);
        let attach = |name: &str, domain: &str| {
            let path = format!("/v2/certs/{name}/domain/");
            let status = api.post(&path, json!({"domain": domain})).status;
            (format!("POST {path} {domain}"), status)
        };
        if actor.column == ANONYMOUS {
            let name = self.fresh("anon-target-");
            let made = owner.post("/v2/certs/", self.cert_body(&name, &private_host));
            assert_eq!(made.status, 201, "{}", made.text);
            let (what, status) = attach(&name, &private_domain);
            let path = format!("/v2/certs/{name}/domain/{private_domain}/");
            let detach = api.request("DELETE", &path, None).status;
            return vec![
                probe(what, None, status),
                probe(format!("DELETE {path}"), None, detach),
            ];
        }
        let mut probes = Vec::new();
        if actor.column == OWNER || actor.column == ADMIN {
            let own = self.fresh("mine-");
            let made = api.post("/v2/certs/", self.cert_body(&own, &private_host));
            assert_eq!(made.status, 201, "{}", made.text);
            let (what, status) = attach(&own, &private_domain);
            probes.push(probe(what, Some(201), status));
            let path = format!("/v2/certs/{own}/domain/{private_domain}/");
            let status = api.request("DELETE", &path, None).status;
            probes.push(probe(format!("DELETE {path}"), Some(204), status));
            return probes;
        }
        // Stranger and collaborator: the owner's certificate is not theirs.
        let foreign = self.fresh("theirs-");
        let made = owner.post("/v2/certs/", self.cert_body(&foreign, &shared_host));
        assert_eq!(made.status, 201, "{}", made.text);
        let (what, status) = attach(&foreign, &shared_domain);
        probes.push(probe(what, Some(404), status));
        // Their own certificate, to a domain of the app nobody shared.
        let own = self.fresh("mine-");
        let made = api.post("/v2/certs/", self.cert_body(&own, &private_host));
        assert_eq!(made.status, 201, "{}", made.text);
        let (what, status) = attach(&own, &private_domain);
        probes.push(probe(what, Some(403), status));
        probes
    }

    /// The requests that stand for one row, sent as `actor`.
    fn walk(&self, kind: Kind, actor: &Actor) -> Vec<Probe> {
        let api = &actor.api;
        let app = &self.app;
        let idle = &self.idle;
        let get = |path: String| probe(format!("GET {path}"), None, api.get(&path).status);
        let post = |path: String, body: Value| {
            let status = api.post(&path, body.clone()).status;
            probe(format!("POST {path} {body}"), None, status)
        };
        let delete = |path: String| {
            let status = api.request("DELETE", &path, None).status;
            probe(format!("DELETE {path}"), None, status)
        };
        match kind {
            Kind::CertsList => vec![get("/v2/certs/".into())],
            Kind::CertsCreate => {
                let name = self.fresh("walked-");
                vec![post("/v2/certs/".into(), self.cert_body(&name, &name))]
            }
            Kind::CertShowDelete => {
                // Somebody else's certificate: the owner's (the admin's for
                // the owner).
                let other = self.fresh("foreign-");
                let maker = if actor.column == OWNER {
                    self.admin()
                } else {
                    self.owner()
                };
                let made = maker.post("/v2/certs/", self.cert_body(&other, &other));
                assert_eq!(made.status, 201, "{}", made.text);
                if actor.column == ANONYMOUS {
                    return vec![
                        get(format!("/v2/certs/{other}/")),
                        delete(format!("/v2/certs/{other}/")),
                    ];
                }
                let own = self.fresh("own-");
                let made = api.post("/v2/certs/", self.cert_body(&own, &own));
                assert_eq!(made.status, 201, "{}", made.text);
                let foreign = api.get(&format!("/v2/certs/{other}/")).status;
                let foreign_claim = if actor.column == ADMIN { 200 } else { 404 };
                vec![
                    probe(
                        format!("GET own /v2/certs/{own}/"),
                        Some(200),
                        api.get(&format!("/v2/certs/{own}/")).status,
                    ),
                    probe(
                        format!("GET foreign /v2/certs/{other}/"),
                        Some(foreign_claim),
                        foreign,
                    ),
                    probe(
                        format!("DELETE own /v2/certs/{own}/"),
                        Some(204),
                        api.request("DELETE", &format!("/v2/certs/{own}/"), None)
                            .status,
                    ),
                ]
            }
            Kind::CertAttachDetach => self.walk_attach(actor),
            Kind::DomainsRead => vec![get(format!("/v2/apps/{app}/domains/"))],
            Kind::DomainsCreate => {
                let domain = format!("{}.example.com", self.fresh("added-"));
                vec![post(
                    format!("/v2/apps/{idle}/domains/"),
                    json!({"domain": domain}),
                )]
            }
            Kind::DomainsDelete => {
                let domain = format!("{}.example.com", self.fresh("doomed-"));
                let added = self.owner().post(
                    &format!("/v2/apps/{idle}/domains/"),
                    json!({"domain": domain}),
                );
                assert_eq!(added.status, 201, "{}", added.text);
                vec![delete(format!("/v2/apps/{idle}/domains/{domain}/"))]
            }
            Kind::Health => vec![get("/healthz".into()), get("/readiness".into())],
            Kind::Metrics => vec![get("/metrics".into())],
            Kind::Root => vec![get("/v2/".into())],
            Kind::OpenApi => vec![get("/v2/openapi.json".into())],
            Kind::Register => {
                let mut probes = Vec::new();
                let user = self.fresh("newcomer");
                let body = json!({"username": user, "password": password(&user)});
                let status = api.post("/v2/auth/register/", body).status;
                probes.push(probe("register (enabled)", Some(201), status));
                // The same token means nothing to the other controllers:
                // there an admin, a plain user or nobody asks.
                let token = match actor.column {
                    ANONYMOUS => api.token.clone(),
                    ADMIN => self.admin_only.admin.clone(),
                    _ => self.admin_only.user.clone(),
                };
                let strict = api_with(&self.admin_only.controller.url, token.as_deref());
                let status = strict
                    .post("/v2/auth/register/", registration(&user))
                    .status;
                let claims = if actor.column == ADMIN { 201 } else { 403 };
                probes.push(probe("register (admin_only)", Some(claims), status));
                if matches!(actor.column, ANONYMOUS | ADMIN) {
                    let token = match actor.column {
                        ADMIN => self.disabled.admin.clone(),
                        _ => api.token.clone(),
                    };
                    let strict = api_with(&self.disabled.controller.url, token.as_deref());
                    let status = strict
                        .post("/v2/auth/register/", registration(&user))
                        .status;
                    probes.push(probe("register (disabled)", Some(403), status));
                }
                probes
            }
            Kind::Login => {
                let (user, secret) = &actor.login;
                let status = api
                    .post(
                        "/v2/auth/login/",
                        json!({"username": user, "password": secret}),
                    )
                    .status;
                let mut probes = vec![probe(format!("log in as {user}"), Some(200), status)];
                // An unknown name fails like a wrong password; after two
                // failures the name is locked out.
                let locked = self.fresh("locked");
                let wrong = json!({"username": locked, "password": "wrong"});
                for _ in 0..2 {
                    let status = api.post("/v2/auth/login/", wrong.clone()).status;
                    probes.push(probe("a wrong password", Some(400), status));
                }
                let status = api.post("/v2/auth/login/", wrong).status;
                probes.push(probe("a locked-out name", Some(429), status));
                probes
            }
            Kind::WhoamiLogout => {
                let whoami = api.get("/v2/auth/whoami/").status;
                // Log out a token of its own, not the one the walk uses.
                let throwaway = if actor.column == ANONYMOUS {
                    api_with(self.url(), api.token.as_deref())
                } else {
                    let (user, secret) = &actor.login;
                    let answer = api.post(
                        "/v2/auth/login/",
                        json!({"username": user, "password": secret}),
                    );
                    assert_eq!(answer.status, 200, "{}", answer.text);
                    api_with(self.url(), answer.body["token"].as_str())
                };
                let logout = throwaway.post("/v2/auth/logout/", json!({})).status;
                if actor.column != ANONYMOUS {
                    assert_eq!(
                        throwaway.get("/v2/auth/whoami/").status,
                        401,
                        "the token logged out still works"
                    );
                }
                vec![
                    probe("GET /v2/auth/whoami/", Some(200), whoami),
                    probe("POST /v2/auth/logout/", Some(204), logout),
                ]
            }
            Kind::RevokeTokens => {
                let mut probes = vec![];
                let answer = api.request("DELETE", "/v2/admin/users/vic/tokens/", None);
                probes.push(probe(
                    "DELETE /v2/admin/users/vic/tokens/",
                    Some(204),
                    answer.status,
                ));
                let answer = api.request("DELETE", "/v2/admin/users/nobody-at-all/tokens/", None);
                if actor.column == ADMIN {
                    probes.push(probe("revoke an unknown user's", Some(404), answer.status));
                } else {
                    probes.push(probe("revoke an unknown user's", None, answer.status));
                }
                probes
            }
            Kind::AppsList => {
                let answer = api.get("/v2/apps/");
                if answer.status == 200 {
                    let ids: Vec<&str> = answer.body["results"]
                        .as_array()
                        .map(|apps| apps.iter().filter_map(|a| a["id"].as_str()).collect())
                        .unwrap_or_default();
                    let sees = ids.contains(&app.as_str());
                    assert_eq!(
                        sees,
                        actor.column != STRANGER,
                        "{} sees the app in the list: {ids:?}",
                        actor.label
                    );
                }
                vec![probe("GET /v2/apps/", None, answer.status)]
            }
            Kind::AppsCreate => {
                let id = self.fresh("authz-new-");
                vec![post("/v2/apps/".into(), json!({"id": id}))]
            }
            Kind::AppShow => vec![get(format!("/v2/apps/{app}/"))],
            Kind::AppDestroy => {
                let doomed = self.fresh("authz-doomed-");
                let owner = self.owner();
                let created = owner.post("/v2/apps/", json!({"id": doomed}));
                assert_eq!(created.status, 201, "{}", created.text);
                let shared = owner.post(
                    &format!("/v2/apps/{doomed}/perms/"),
                    json!({"username": self.collaborator_name}),
                );
                assert_eq!(shared.status, 201, "{}", shared.text);
                vec![delete(format!("/v2/apps/{doomed}/"))]
            }
            Kind::BuildsReleasesRead => vec![
                get(format!("/v2/apps/{app}/builds/")),
                get(format!("/v2/apps/{app}/releases/")),
                get(format!("/v2/apps/{app}/releases/v2/")),
            ],
            // Building an image is not cheap: a blank one is a 400 once
            // the permission is granted.
            Kind::BuildCreate => vec![post(
                format!("/v2/apps/{app}/builds/"),
                json!({"image": ""}),
            )],
            Kind::Rollback => vec![post(
                format!("/v2/apps/{idle}/releases/rollback/"),
                json!({"version": 2}),
            )],
            Kind::ConfigRead => vec![get(format!("/v2/apps/{app}/config/"))],
            Kind::ConfigWrite => vec![post(
                format!("/v2/apps/{idle}/config/"),
                json!({"values": {"WALKED_BY": actor.column.to_string()}}),
            )],
            Kind::Scale => vec![
                post(format!("/v2/apps/{app}/scale/"), json!({"web": 1})),
                post(format!("/v2/apps/{app}/ptypes/scale/"), json!({"web": 1})),
            ],
            Kind::PodsRead => {
                let pod = self.pod();
                vec![
                    get(format!("/v2/apps/{app}/pods/")),
                    get(format!("/v2/apps/{app}/pods/web/")),
                    get(format!("/v2/apps/{app}/pods/{pod}/describe/")),
                ]
            }
            Kind::Restart => {
                let mut probes = vec![
                    post(format!("/v2/apps/{app}/pods/restart/"), json!({})),
                    post(format!("/v2/apps/{app}/pods/web/restart/"), json!({})),
                ];
                let pod = self.pod();
                probes.push(post(
                    format!("/v2/apps/{app}/pods/web/{pod}/restart/"),
                    json!({}),
                ));
                probes
            }
            Kind::Exec => {
                let path = format!("/v2/apps/{app}/pods/{}/exec/", self.pod());
                let status = self.websocket(actor, &path);
                vec![probe(format!("WS {path}"), None, status)]
            }
            Kind::Logs => {
                let path = format!("/v2/apps/{app}/logs/");
                let status = api.get(&path).status;
                let mut probes = vec![probe(format!("GET {path}"), Some(200), status)];
                let path = format!("/v2/apps/{app}/logs");
                let status = self.websocket(actor, &path);
                probes.push(probe(format!("WS {path}"), Some(101), status));
                probes
            }
            Kind::SettingsRead => vec![
                get(format!("/v2/apps/{app}/settings/")),
                get(format!("/v2/apps/{app}/settings/autoscale/web/history/")),
            ],
            Kind::SettingsWrite => vec![post(
                format!("/v2/apps/{app}/settings/"),
                json!({"routable": true}),
            )],
            Kind::PermsRead => vec![get(format!("/v2/apps/{app}/perms/"))],
            Kind::PermsCreate => vec![post(
                format!("/v2/apps/{app}/perms/"),
                json!({"username": "spare"}),
            )],
            Kind::PermsDelete => {
                let owner = self.owner();
                let grant = |user: &str| {
                    let answer =
                        owner.post(&format!("/v2/apps/{app}/perms/"), json!({"username": user}));
                    assert_eq!(answer.status, 201, "share with {user}: {}", answer.text);
                };
                grant("spare");
                let path = format!("/v2/apps/{app}/perms/spare/");
                let status = api.request("DELETE", &path, None).status;
                let mut probes = vec![probe(format!("DELETE {path}"), Some(403), status)];
                if actor.column != COLLABORATOR {
                    probes[0].claims = None;
                } else {
                    // A collaborator may leave; shared again afterwards.
                    let path = format!("/v2/apps/{app}/perms/{}/", self.collaborator_name);
                    let status = api.request("DELETE", &path, None).status;
                    probes.push(probe(
                        format!("DELETE {path} (themselves)"),
                        Some(204),
                        status,
                    ));
                    grant(&self.collaborator_name);
                }
                probes
            }
            Kind::Git => {
                let base = format!("/git/{app}.git");
                let mut probes = Vec::new();
                for service in ["git-upload-pack", "git-receive-pack"] {
                    let path = format!("{base}/info/refs?service={service}");
                    let (status, challenge) = self.git(actor, "GET", &path, None);
                    if status == 401 {
                        assert!(
                            challenge.starts_with("Basic"),
                            "{}: a 401 without a Basic challenge: {challenge:?}",
                            actor.label
                        );
                    }
                    probes.push(probe(format!("GET {path}"), None, status));
                    // A flush packet: no wants, no ref updates.
                    let path = format!("{base}/{service}");
                    let (status, _) = self.git(actor, "POST", &path, Some("0000"));
                    probes.push(probe(format!("POST {path}"), None, status));
                }
                probes
            }
            Kind::GitOther => [
                format!("/git/{app}.git/HEAD"),
                format!("/git/{app}.git/objects/info/packs"),
                format!("/git/{app}/info/refs?service=git-upload-pack"),
                format!("/git/{app}.git/info/refs?service=git-bogus"),
                format!("/git/{app}.git/info/refs"),
            ]
            .into_iter()
            .map(|path| {
                let (status, _) = self.git(actor, "GET", &path, None);
                probe(format!("GET {path}"), None, status)
            })
            .collect(),
        }
    }
}

/// A registration on the strict controllers (a name of their own).
fn registration(user: &str) -> Value {
    json!({"username": format!("{user}-strict"), "password": password(user)})
}

/// Whether `probes` answer as the cell says; the complaints otherwise.
fn judge(row: &Row, actor: &Actor, probes: &[Probe]) -> Vec<String> {
    let cell = &row.cells[actor.column];
    let mut complaints = Vec::new();
    let where_ = format!("line {} {}, {}", row.line, row.endpoint, actor.label);
    if probes.is_empty() {
        complaints.push(format!("{where_}: no request"));
    }
    for probe in probes {
        let expected = if cell.len() == 1 {
            cell.first().copied()
        } else {
            probe.claims
        };
        let Some(expected) = expected else {
            complaints.push(format!(
                "{where_}: {} stands for none of the codes {cell:?}",
                probe.what
            ));
            continue;
        };
        if !cell.contains(&expected) {
            complaints.push(format!(
                "{where_}: {} answered {}, which the table ({cell:?}) does not list as {expected}",
                probe.what, probe.status
            ));
            continue;
        }
        let fine = if DENIALS.contains(&expected) || expected == 429 || expected == 400 {
            probe.status == expected
        } else {
            !DENIALS.contains(&probe.status)
        };
        if !fine {
            complaints.push(format!(
                "{where_}: {} answered {}, the table says {expected}",
                probe.what, probe.status
            ));
        }
    }
    // Every code of a cell is walked.
    if cell.len() > 1 {
        let claimed: BTreeSet<u16> = probes.iter().filter_map(|p| p.claims).collect();
        for code in cell.difference(&claimed) {
            complaints.push(format!("{where_}: no request stands for {code}"));
        }
    }
    complaints
}

#[test]
fn the_authorization_table_holds() {
    let started = Instant::now();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/authorization.md");
    let text = std::fs::read_to_string(path).expect("docs/authorization.md");
    let rows = parse_table(&text);
    assert!(rows.len() >= 20, "the table has {} rows", rows.len());

    // The table and the mapping name the same rows.
    let mut kinds = Vec::new();
    let mut unmapped = Vec::new();
    for row in &rows {
        match MAPPING.iter().find(|(text, _)| *text == row.endpoint) {
            Some((_, kind)) => kinds.push(*kind),
            None => unmapped.push(format!("line {}: {}", row.line, row.endpoint)),
        }
    }
    assert!(
        unmapped.is_empty(),
        "rows of docs/authorization.md without requests in this test:\n{}",
        unmapped.join("\n")
    );
    let stale: Vec<&str> = MAPPING
        .iter()
        .filter(|(text, _)| !rows.iter().any(|row| row.endpoint == *text))
        .map(|(text, _)| *text)
        .collect();
    assert!(
        stale.is_empty(),
        "mapped endpoints missing from the table: {stale:?}"
    );

    let world = World::set_up();
    let set_up = started.elapsed();
    let mut complaints = Vec::new();
    let mut sent = 0;
    for (row, kind) in rows.iter().zip(kinds) {
        for actor in &world.actors {
            let probes = world.walk(kind, actor);
            sent += probes.len();
            complaints.extend(judge(row, actor, &probes));
        }
    }
    // The walk changed nothing it should not have: the owner still owns
    // and shares the app.
    let perms = world.owner().get(&format!("/v2/apps/{}/perms/", world.app));
    assert_eq!(perms.status, 200, "{}", perms.text);
    assert!(
        perms.text.contains(&world.collaborator_name),
        "{}",
        perms.text
    );
    assert_eq!(
        world.owner().get(&format!("/v2/apps/{}/", world.app)).body["owner"],
        world.owner_name.as_str()
    );
    eprintln!(
        "walked {} rows with {sent} requests in {:?} (set-up {set_up:?})",
        rows.len(),
        started.elapsed()
    );
    assert!(
        complaints.is_empty(),
        "docs/authorization.md and the controller disagree:\n{}",
        complaints.join("\n")
    );
}
