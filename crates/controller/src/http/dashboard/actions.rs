//! The dashboard's actions. Each needs the session and its CSRF token,
//! then calls the very function the API's handler calls, so the rules and
//! the messages are the API's. Success redirects to the page (a reload does
//! not repeat the action); a refusal shows that page with the API's
//! message and status.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use super::html::{Notice, Tab};
use super::pages::{app_page, AppPage};
use super::session::{self, Session, SESSION_COOKIE};
use super::{actor, api_error_page};
use crate::http::error::ApiError;
use crate::http::Shared;
use crate::service::access::{app_for, Access};

type FormResult = Result<Form<HashMap<String, String>>, FormRejection>;

/// The session and the fields of an action's form, or the answer refusing
/// it.
async fn accept(
    state: &Shared,
    headers: &HeaderMap,
    form: FormResult,
) -> Result<(Session, HashMap<String, String>), Response> {
    let (fields, parsed) = match form {
        Ok(Form(fields)) => (fields, true),
        Err(_) => (HashMap::new(), false),
    };
    let session = actor(state, headers, &fields).await?;
    if !parsed {
        return Err(super::error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Send the form as application/x-www-form-urlencoded.",
        ));
    }
    Ok((session, fields))
}

/// A form field as JSON for the API's function: a whole number stays a
/// number, anything else is passed as text, for the API to refuse in its
/// own words.
fn number(text: &str) -> Value {
    match text.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(text),
    }
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> &'a str {
    fields.get(name).map(|v| v.trim()).unwrap_or_default()
}

/// The answer to an action: back to its page, or the page with the
/// refusal.
async fn answer(
    state: &Shared,
    session: &Session,
    id: &str,
    tab: Tab,
    outcome: Result<&'static str, ApiError>,
) -> Response {
    match outcome {
        Ok(done) => Redirect::to(&format!("{}?done={done}", tab.path(id))).into_response(),
        Err(error) => {
            // An app the user may not read gets the plain refusal, not its page.
            if app_for(state, &session.user, id, Access::Read)
                .await
                .is_err()
            {
                return api_error_page(session, error);
            }
            let what = AppPage {
                tab,
                status: error.status,
                notice: Some(Notice::Refused(error.detail)),
            };
            app_page(state, session, id, what, false).await
        }
    }
}

pub async fn scale(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Response {
    let (session, fields) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let ptype = field(&fields, "type");
    let outcome = if ptype.is_empty() {
        Err(ApiError::bad_request(
            "type: name the process type to scale.",
        ))
    } else {
        let request = json!({ ptype: number(field(&fields, "count")) });
        crate::service::scale::scale(&state, &session.user, &id, &request)
            .await
            .map(|()| "scaled")
            .map_err(ApiError::from)
    };
    answer(&state, &session, &id, Tab::Processes, outcome).await
}

/// Restart one process (`type` and `process`), a type (`type`) or the
/// whole app (neither).
pub async fn restart(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Response {
    let (session, fields) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let (ptype, process) = (field(&fields, "type"), field(&fields, "process"));
    let user = &session.user;
    let outcome = match (ptype.is_empty(), process.is_empty()) {
        (false, false) => {
            crate::service::restart::restart_process(&state, user, &id, ptype, process)
                .await
                .map_err(ApiError::from)
        }
        (false, true) => {
            let types = BTreeSet::from([ptype.to_string()]);
            crate::service::restart::restart(&state, user, &id, Some(types))
                .await
                .map_err(ApiError::from)
        }
        (true, true) => crate::service::restart::restart(&state, user, &id, None)
            .await
            .map_err(ApiError::from),
        (true, false) => Err(ApiError::bad_request(
            "type: name the process type of the process to restart.",
        )),
    };
    answer(
        &state,
        &session,
        &id,
        Tab::Processes,
        outcome.map(|_| "restarted"),
    )
    .await
}

pub async fn rollback(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Response {
    let (session, fields) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let version = field(&fields, "version");
    let version = (!version.is_empty()).then(|| json!(version));
    let outcome = crate::service::rollout::rollback(&state, &session.user, &id, version.as_ref())
        .await
        .map(|_| "rolled-back")
        .map_err(ApiError::from);
    answer(&state, &session, &id, Tab::Releases, outcome).await
}

/// Set (or change) the autoscale rule of a type.
pub async fn autoscale_set(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Response {
    let (session, fields) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let rule = json!({
        "min": number(field(&fields, "min")),
        "max": number(field(&fields, "max")),
        "cpu_percent": number(field(&fields, "cpu_percent")),
    });
    let outcome = settings(&state, &session, &id, field(&fields, "type"), Some(rule))
        .await
        .map(|()| "rule-set");
    answer(&state, &session, &id, Tab::Autoscale, outcome).await
}

pub async fn autoscale_unset(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Response {
    let (session, fields) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let outcome = settings(&state, &session, &id, field(&fields, "type"), None)
        .await
        .map(|()| "rule-unset");
    answer(&state, &session, &id, Tab::Autoscale, outcome).await
}

/// The API's settings update with one rule set (`Some`) or removed.
async fn settings(
    state: &Shared,
    session: &Session,
    id: &str,
    ptype: &str,
    rule: Option<Value>,
) -> Result<(), ApiError> {
    if ptype.is_empty() {
        return Err(ApiError::bad_request(
            "type: name the process type of the rule.",
        ));
    }
    let update = drycc_api_types::SettingsUpdate {
        autoscale: Some(BTreeMap::from([(ptype.to_string(), rule)])),
        routable: None,
    };
    crate::service::settings::update(state, &session.user, id, &update)
        .await
        .map(|_| ())
        .map_err(ApiError::from)
}

/// `POST /dashboard/logout`: the session's token is deleted (it is no
/// longer valid anywhere) and the cookie expired.
pub async fn logout(State(state): State<Shared>, headers: HeaderMap, form: FormResult) -> Response {
    let (session, _) = match accept(&state, &headers, form).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let hash = crate::service::access::token_hash(&session.token);
    if let Err(error) = state.store.delete_token(&hash).await {
        return api_error_page(&session, error.into());
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    let (name, value) = session::set_cookie(&headers, SESSION_COOKIE, "");
    response.headers_mut().append(name, value);
    response
}
