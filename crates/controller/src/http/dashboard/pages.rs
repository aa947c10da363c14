//! The dashboard's pages: sign-in, the apps, and per app its processes,
//! releases, config, limits and autoscale rules, and logs.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, MethodRouter};
use serde_json::{json, Value};

use super::html::{self, button_form, escape, segment, Notice, Page, Tab};
use super::session::{self, Session, LOGIN_COOKIE, SESSION_COOKIE};
use super::{api_error_page, page, reader, viewer};
use crate::context::timestamp;
use crate::http::api::auth::{authenticate, too_many_message, wait_seconds, Login};
use crate::http::error::{ApiError, ApiResult};
use crate::http::Shared;
use crate::service::access::{app_for, may_access, Access};

/// `?done=` after a successful action: which fixed message to show (never
/// text from the request).
#[derive(serde::Deserialize, Default)]
pub struct Shown {
    done: Option<String>,
    reveal: Option<String>,
}

fn done(shown: &Shown) -> Option<Notice> {
    let text = match shown.done.as_deref()? {
        "scaled" => "Scaled.",
        "restarted" => "Restarted.",
        "rolled-back" => "Rolled back.",
        "rule-set" => "Autoscale rule set.",
        "rule-unset" => "Autoscale rule removed.",
        _ => return None,
    };
    Some(Notice::Done(text))
}

/// `GET /dashboard/`: the apps the user can see.
pub async fn apps(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let session = match reader(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match apps_body(&state, &session).await {
        Ok(body) => page(
            StatusCode::OK,
            Page {
                title: "Apps".into(),
                viewer: Some(viewer(&session)),
                app: None,
                notice: None,
                body,
                chart: false,
            },
        ),
        Err(error) => api_error_page(&session, error),
    }
}

async fn apps_body(state: &Shared, session: &Session) -> ApiResult<String> {
    let mut rows = String::new();
    for app in state.store.list_apps().await? {
        if !may_access(state, &session.user, &app).await? {
            continue;
        }
        let structure: Vec<String> = app
            .structure
            .iter()
            .map(|(ptype, count)| format!("{}={count}", escape(ptype)))
            .collect();
        let _ = write!(
            rows,
            r#"<tr><td><a href="{link}">{id}</a></td><td>{owner}</td><td>{structure}</td><td>{updated}</td></tr>"#,
            link = Tab::Processes.path(&app.id),
            id = escape(&app.id),
            owner = escape(&app.owner),
            structure = structure.join(" "),
            updated = timestamp(&app.updated),
        );
    }
    if rows.is_empty() {
        return Ok(
            "<p>No apps yet: <code>drycc create</code> makes one, and apps shared with you appear here too.</p>"
                .into(),
        );
    }
    Ok(format!(
        r#"<div class="scroll"><table id="apps"><thead><tr><th scope="col">App</th><th scope="col">Owner</th><th scope="col">Formation</th><th scope="col">Updated</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    ))
}

/// The sign-in page, with a fresh form token in its cookie.
fn login_page(headers: &HeaderMap, status: StatusCode, message: Option<String>) -> Response {
    let token = crate::service::access::new_token().0;
    let body = format!(
        r#"<form method="post" action="/dashboard/login" class="stack" id="login">{csrf}<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required><button type="submit">Sign in</button></form>"#,
        csrf = html::csrf_field(&token),
    );
    let mut response = page(
        status,
        Page {
            title: "Sign in".into(),
            viewer: None,
            app: None,
            notice: message.map(Notice::Refused),
            body,
            chart: false,
        },
    );
    let (name, value) = session::set_cookie(headers, LOGIN_COOKIE, &token);
    response.headers_mut().append(name, value);
    response
}

pub async fn login_form(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if session::session(&state, &headers).await.is_ok() {
        return Redirect::to("/dashboard/").into_response();
    }
    login_page(&headers, StatusCode::OK, None)
}

/// `POST /dashboard/login`: the API's login (same accounts, same limits,
/// same messages); the token becomes the session cookie.
pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_page(
            &headers,
            StatusCode::BAD_REQUEST,
            Some("Send the sign-in form: username and password.".into()),
        );
    };
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    if expected.is_empty() || !session::same(sent, &expected) {
        return login_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired or did not come from this page: try again.".into()),
        );
    }
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let (username, password) = (field("username"), field("password"));
    if username.is_empty() || password.is_empty() {
        return login_page(
            &headers,
            StatusCode::BAD_REQUEST,
            Some("username and password: both are required.".into()),
        );
    }
    match authenticate(&state, &username, password, peer.ip()).await {
        Ok(Login::Token(token)) => {
            let mut response = Redirect::to("/dashboard/").into_response();
            for (name, value) in [
                session::set_cookie(&headers, SESSION_COOKIE, &token),
                session::set_cookie(&headers, LOGIN_COOKIE, ""),
            ] {
                response.headers_mut().append(name, value);
            }
            response
        }
        Ok(Login::Wait(wait)) => login_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(too_many_message(wait_seconds(wait))),
        ),
        Err(error) => login_page(&headers, error.status, Some(error.detail)),
    }
}

/// An app page: the session, the app (readable by the user) and a body.
pub(super) struct AppPage {
    pub tab: Tab,
    pub status: StatusCode,
    pub notice: Option<Notice>,
}

/// Render one of an app's pages (also after a refused action, with its
/// message and the API's status).
pub(super) async fn app_page(
    state: &Shared,
    session: &Session,
    id: &str,
    what: AppPage,
    reveal: bool,
) -> Response {
    let app = match app_for(state, &session.user, id, Access::Read).await {
        Ok(app) => app,
        Err(error) => return api_error_page(session, error.into()),
    };
    let body = match what.tab {
        Tab::Processes => processes_body(state, session, &app).await,
        Tab::Releases => releases_body(state, session, &app).await,
        Tab::Config => config_body(state, &app, reveal).await,
        Tab::Autoscale => autoscale_body(state, session, &app).await,
        Tab::Logs => logs_body(state, &app).await,
    };
    match body {
        Ok(body) => page(
            what.status,
            Page {
                title: app.id.clone(),
                viewer: Some(viewer(session)),
                app: Some((&app.id, what.tab)),
                notice: what.notice,
                body,
                chart: what.tab == Tab::Autoscale,
            },
        ),
        Err(error) => api_error_page(session, error),
    }
}

async fn show(state: Shared, headers: HeaderMap, id: String, tab: Tab, shown: Shown) -> Response {
    let session = match reader(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let what = AppPage {
        tab,
        status: StatusCode::OK,
        notice: done(&shown),
    };
    let reveal = shown.reveal.as_deref() == Some("1");
    app_page(&state, &session, &id, what, reveal).await
}

/// Query parameters of a page; anything unparsable is ignored.
fn shown(query: Result<Query<Shown>, axum::extract::rejection::QueryRejection>) -> Shown {
    query.map(|Query(shown)| shown).unwrap_or_default()
}

type ShownQuery = Result<Query<Shown>, axum::extract::rejection::QueryRejection>;

/// The GET route of one tab of an app's page.
pub fn tab(tab: Tab) -> MethodRouter<Shared> {
    get(
        move |State(state): State<Shared>,
              Path(id): Path<String>,
              query: ShownQuery,
              headers: HeaderMap| async move {
            show(state, headers, id, tab, shown(query)).await
        },
    )
}

/// The types of the release the app should run, else of its structure.
async fn types_of(state: &Shared, app: &drycc_store::App) -> ApiResult<BTreeSet<String>> {
    let release = state.store.desired_release(&app.id).await?;
    Ok(match release.as_ref().and_then(|r| r.build.as_ref()) {
        Some(build) => build.procfile.keys().cloned().collect(),
        None => app.structure.keys().cloned().collect(),
    })
}

async fn processes_body(
    state: &Shared,
    session: &Session,
    app: &drycc_store::App,
) -> ApiResult<String> {
    let csrf = &session.csrf;
    let base = format!("/dashboard/apps/{}", segment(&app.id));
    let rules = rules(state, &app.id).await?;
    let mut formation = String::new();
    for ptype in types_of(state, app).await? {
        let count = app.structure.get(&ptype).copied().unwrap_or(0);
        let note = rules.get(&ptype).map_or(String::new(), |rule| {
            format!(r#" <small>autoscaled {}–{}</small>"#, rule.min, rule.max)
        });
        let _ = write!(
            formation,
            r#"<tr><th scope="row">{ptype_text}{note}</th><td><form method="post" action="{base}/scale" class="inline scale">{csrf_field}<input type="hidden" name="type" value="{ptype_text}"><label class="sr-only" for="count-{ptype_text}">Processes of {ptype_text}</label><input id="count-{ptype_text}" name="count" type="number" min="0" inputmode="numeric" value="{count}" required><button type="submit">Scale</button></form></td><td>{restart}</td></tr>"#,
            ptype_text = escape(&ptype),
            csrf_field = html::csrf_field(csrf),
            restart = html::button_form_for(
                &format!("{base}/restart"),
                csrf,
                &[("type", &ptype)],
                "Restart type",
                Some(&format!("Restart every {ptype} process")),
            ),
        );
    }
    if formation.is_empty() {
        formation.push_str(
            r#"<tr><td colspan="3">No build yet: <code>git push</code> or <code>drycc pull</code> deploys one.</td></tr>"#,
        );
    }
    let processes = state.engine.processes(&app.id).await?;
    let usage = state
        .usage
        .sample(state.engine.as_ref(), &app.id)
        .await
        .unwrap_or_default();
    Ok(format!(
        r#"<h2>Formation</h2><div class="scroll"><table id="formation"><thead><tr><th scope="col">Type</th><th scope="col">Processes</th><th scope="col">Restart</th></tr></thead><tbody>{formation}</tbody></table></div><p>{restart_all}</p><h2 id="processes-heading">Processes <small class="live-state" aria-live="polite"></small></h2><div class="scroll"><table id="processes" aria-labelledby="processes-heading"><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">State</th><th scope="col">Release</th><th scope="col">Started</th><th scope="col">Restarts</th><th scope="col">CPU</th><th scope="col">Memory</th><th scope="col">Restart</th></tr></thead><tbody data-live="{base}/events">{rows}</tbody></table></div>"#,
        restart_all = button_form(&format!("{base}/restart"), csrf, &[], "Restart all"),
        rows = html::process_rows(&app.id, csrf, &processes, &usage),
    ))
}

async fn releases_body(
    state: &Shared,
    session: &Session,
    app: &drycc_store::App,
) -> ApiResult<String> {
    let releases = state.store.list_releases(&app.id).await?;
    let latest = releases.iter().map(|r| r.version).max().unwrap_or(0);
    let action = format!("/dashboard/apps/{}/rollback", segment(&app.id));
    let mut rows = String::new();
    for release in &releases {
        let version = release.version.to_string();
        let button = if release.version > 1 && release.version != latest && !release.failed {
            button_form(
                &action,
                &session.csrf,
                &[("version", &version)],
                &format!("Roll back to v{version}"),
            )
        } else {
            String::new()
        };
        let state_text = if release.failed {
            format!("failed: {}", escape(&release.exception))
        } else if release.version == latest {
            "latest".into()
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            r#"<tr><td>v{version}</td><td>{summary}</td><td>{owner}</td><td>{created}</td><td>{state_text}</td><td>{button}</td></tr>"#,
            summary = escape(&release.summary),
            owner = escape(&release.owner),
            created = timestamp(&release.created),
        );
    }
    Ok(format!(
        r#"<div class="scroll"><table id="releases"><thead><tr><th scope="col">Version</th><th scope="col">Summary</th><th scope="col">By</th><th scope="col">Created</th><th scope="col">State</th><th scope="col">Roll back</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    ))
}

/// Config values are secrets: each is shown as hidden until the user asks
/// for the values (`?reveal=1`); the registry password never is.
async fn config_body(state: &Shared, app: &drycc_store::App, reveal: bool) -> ApiResult<String> {
    let config = state.store.latest_release(&app.id).await?.config;
    let base = Tab::Config.path(&app.id);
    let mut rows = String::new();
    for (key, value) in &config.values {
        let shown = if reveal {
            format!("<code>{}</code>", escape(value))
        } else {
            r#"<span class="hidden-value">hidden</span>"#.into()
        };
        let _ = write!(
            rows,
            r#"<tr><th scope="row"><code>{}</code></th><td>{shown}</td></tr>"#,
            escape(key)
        );
    }
    let toggle = if config.values.is_empty() {
        "<p>No config values.</p>".to_string()
    } else if reveal {
        format!(r#"<p><a href="{base}" id="hide-values">Hide values</a></p>"#)
    } else {
        format!(r#"<p><a href="{base}?reveal=1" id="show-values">Show values</a></p>"#)
    };
    let mut registry = String::new();
    for (key, value) in &config.registry {
        let shown = if key == "password" {
            "********".to_string()
        } else {
            escape(value)
        };
        let _ = write!(registry, "<li>{}: {shown}</li>", escape(key));
    }
    if !registry.is_empty() {
        registry = format!("<h2>Registry</h2><ul>{registry}</ul>");
    }
    Ok(format!(
        r#"{toggle}<div class="scroll"><table id="config"><thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead><tbody>{rows}</tbody></table></div>{registry}"#
    ))
}

/// The app's autoscale rules.
async fn rules(
    state: &Shared,
    app: &str,
) -> ApiResult<std::collections::BTreeMap<String, drycc_api_types::AutoscaleRule>> {
    let settings = state.store.get_settings(app).await?;
    Ok(settings
        .autoscale
        .iter()
        .filter_map(|(ptype, rule)| {
            Some((ptype.clone(), serde_json::from_value(rule.clone()).ok()?))
        })
        .collect())
}

fn model_rule(rule: &drycc_api_types::AutoscaleRule) -> drycc_model::autoscale::Rule {
    drycc_model::autoscale::Rule {
        min: rule.min,
        max: rule.max,
        cpu_percent: rule.cpu_percent,
    }
}

/// Decisions listed under each chart.
const DECISIONS_SHOWN: usize = 10;

async fn autoscale_body(
    state: &Shared,
    session: &Session,
    app: &drycc_store::App,
) -> ApiResult<String> {
    let csrf = &session.csrf;
    let base = format!("/dashboard/apps/{}", segment(&app.id));
    let config = match state.store.desired_release(&app.id).await? {
        Some(release) => release.config,
        None => state.store.latest_release(&app.id).await?.config,
    };
    let types = types_of(state, app).await?;
    let mut limits = String::new();
    let mut limited: BTreeSet<&String> = types.iter().collect();
    limited.extend(config.cpu.keys());
    limited.extend(config.memory.keys());
    for ptype in limited {
        let _ = write!(
            limits,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
            escape(ptype),
            config.cpu.get(ptype).map_or("none".into(), |v| escape(v)),
            config
                .memory
                .get(ptype)
                .map_or("none".into(), |v| escape(v)),
        );
    }
    let rules = rules(state, &app.id).await?;
    let mut rule_rows = String::new();
    let mut charts = String::new();
    for (ptype, rule) in &rules {
        let status = state.autoscale.status(&app.id, ptype);
        let now = status
            .last
            .as_ref()
            .map_or("no decision yet".into(), |last| {
                escape(&crate::service::autoscale::describe(
                    ptype,
                    &model_rule(rule),
                    &last.decision,
                ))
            });
        let _ = write!(
            rule_rows,
            "<tr><th scope=\"row\">{p}</th><td>{min}</td><td>{max}</td><td>{cpu}%</td><td>{now}</td><td>{unset}</td></tr>",
            p = escape(ptype),
            min = rule.min,
            max = rule.max,
            cpu = rule.cpu_percent,
            unset = html::button_form_for(&format!("{base}/autoscale/unset"), csrf, &[("type", ptype)], "Unset", Some(&format!("Unset the rule of {ptype}"))),
        );
        let mut decisions = String::new();
        for record in state
            .autoscale
            .history(&app.id, ptype)
            .iter()
            .rev()
            .take(DECISIONS_SHOWN)
        {
            let _ = write!(
                decisions,
                "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
                timestamp(&record.time),
                record
                    .decision
                    .utilization
                    .map_or("–".into(), |u| format!("{u}%")),
                record.decision.current,
                record.decision.desired,
                escape(&crate::service::autoscale::describe(
                    ptype,
                    &model_rule(rule),
                    &record.decision
                )),
            );
        }
        let _ = write!(
            charts,
            r#"<section><h2>{p}</h2><figure class="chart" data-history="{base}/autoscale/{seg}/history" data-events="{base}/events"><figcaption>CPU utilisation of {p} against its {cpu}% target, and its processes, at each decision of the autoscaler (larger marks: rescales).</figcaption><div class="plot"></div><p class="reason" aria-live="polite"></p></figure><div class="scroll"><table class="decisions"><caption>Latest decisions</caption><thead><tr><th scope="col">Time</th><th scope="col">CPU</th><th scope="col">Processes</th><th scope="col">Reason</th></tr></thead><tbody>{decisions}</tbody></table></div></section>"#,
            p = escape(ptype),
            seg = segment(ptype),
            cpu = rule.cpu_percent,
        );
    }
    if rule_rows.is_empty() {
        rule_rows.push_str(r#"<tr><td colspan="6">No autoscale rules.</td></tr>"#);
    }
    let options: String = types
        .iter()
        .map(|t| format!(r#"<option value="{0}">{0}</option>"#, escape(t)))
        .collect();
    Ok(format!(
        r#"<h2>Limits</h2><div class="scroll"><table id="limits"><thead><tr><th scope="col">Type</th><th scope="col">CPU</th><th scope="col">Memory</th></tr></thead><tbody>{limits}</tbody></table></div><h2>Autoscale rules</h2><div class="scroll"><table id="rules"><thead><tr><th scope="col">Type</th><th scope="col">Min</th><th scope="col">Max</th><th scope="col">CPU target</th><th scope="col">Now</th><th scope="col">Unset</th></tr></thead><tbody>{rule_rows}</tbody></table></div><form method="post" action="{base}/autoscale" class="stack" id="set-rule"><fieldset><legend>Set a rule</legend>{csrf_field}<label for="rule-type">Type</label><select id="rule-type" name="type">{options}</select><label for="rule-min">Min</label><input id="rule-min" name="min" type="number" min="1" value="1" required><label for="rule-max">Max</label><input id="rule-max" name="max" type="number" min="1" value="4" required><label for="rule-cpu">CPU target (%)</label><input id="rule-cpu" name="cpu_percent" type="number" min="1" value="75" required><button type="submit">Set rule</button></fieldset></form>{charts}"#,
        csrf_field = html::csrf_field(csrf),
    ))
}

/// Lines of log shown when the page opens.
pub(super) const LOG_LINES: usize = 100;

async fn logs_body(state: &Shared, app: &drycc_store::App) -> ApiResult<String> {
    let text = crate::http::api::logs::recent(state, &app.id, LOG_LINES, None).await?;
    Ok(format!(
        r#"<p class="live-state" aria-live="polite"></p><pre id="log" tabindex="0" data-stream="/dashboard/apps/{}/logs/stream">{}</pre>"#,
        segment(&app.id),
        escape(&text)
    ))
}

/// `GET .../autoscale/<type>/history`: the chart's points, oldest first,
/// each with the reason of its decision.
pub async fn history(
    State(state): State<Shared>,
    Path((id, ptype)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let session = match session::session(&state, &headers).await {
        Ok(session) => session,
        Err(_) => return ApiError::unauthorized("Sign in first.").into_response(),
    };
    match history_json(&state, &session, &id, &ptype).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn history_json(
    state: &Shared,
    session: &Session,
    id: &str,
    ptype: &str,
) -> ApiResult<Value> {
    let app = app_for(state, &session.user, id, Access::Read).await?;
    let rule = rules(state, &app.id).await?.remove(ptype).ok_or_else(|| {
        ApiError::not_found(format!("No autoscale rule for process type {ptype}"))
    })?;
    let results: Vec<Value> = state
        .autoscale
        .history(&app.id, ptype)
        .iter()
        .map(|record| {
            // A record of plain fields always serialises to an object.
            let mut value = serde_json::to_value(crate::http::api::settings::record_view(record))
                .unwrap_or_else(|_| json!({}));
            value["t"] = json!(record.time.timestamp_millis() as f64 / 1000.0);
            value["reason"] = json!(crate::service::autoscale::describe(
                ptype,
                &model_rule(&rule),
                &record.decision
            ));
            value
        })
        .collect();
    Ok(json!({
        "target": rule.cpu_percent,
        "min": rule.min,
        "max": rule.max,
        "count": results.len(),
        "results": results,
    }))
}
