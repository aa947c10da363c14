//! `/v2/certs/`: TLS certificates, and attaching them to domains. A
//! certificate belongs to the user who added it: only they and admins see
//! it (others get 404), and its private key is never shown back. Attaching
//! needs write access to the domain's app, and the certificate must be
//! valid for the domain; the router then serves the domain over TLS (SNI).

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{CertCreateRequest, DomainRequest, List};
use drycc_store::{Cert, User};

use super::{paginate, Page};
use crate::context::timestamp;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{Json, Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, Access};

pub fn cert_view(cert: &Cert) -> drycc_api_types::Cert {
    drycc_api_types::Cert {
        uuid: cert.uuid.clone(),
        name: cert.name.clone(),
        owner: cert.owner.clone(),
        certificate: cert.certificate.clone(),
        domains: cert.domains.clone(),
        created: timestamp(&cert.created),
        updated: timestamp(&cert.updated),
    }
}

fn may_see(user: &User, cert: &Cert) -> bool {
    user.is_superuser || cert.owner == user.username
}

fn cert_not_found() -> ApiError {
    ApiError::not_found("No Certificate matches the given query.")
}

/// The certificate called `name`, if `user` may see it (else 404).
async fn cert_for(state: &Shared, user: &User, name: &str) -> ApiResult<Cert> {
    match state.store.get_cert(name).await? {
        Some(cert) if may_see(user, &cert) => Ok(cert),
        _ => Err(cert_not_found()),
    }
}

/// `^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`, 1..63 characters.
fn validate_name(name: &str) -> ApiResult<()> {
    let bytes = name.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "name: 1 to 63 characters a-z, 0-9 and hyphens (not first or last), e.g. www-example-com (got \"{}\")",
            name.chars().take(80).collect::<String>()
        )))
    }
}

#[utoipa::path(
    operation_id = "certs_list",
    get,
    path = "/certs",
    tag = "certs",
    params(crate::http::api::Page),
    responses((status = 200, description = "The certificates the user may see.", body = drycc_api_types::List<drycc_api_types::Cert>), crate::http::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Query(page): Query<Page>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<List<drycc_api_types::Cert>>> {
    let visible = state
        .store
        .list_certs()
        .await?
        .iter()
        .filter(|cert| may_see(&user, cert))
        .map(cert_view)
        .collect();
    Ok(Json(paginate(visible, &page, uri.path())))
}

#[utoipa::path(
    operation_id = "certs_create",
    post,
    path = "/certs",
    tag = "certs",
    request_body = drycc_api_types::CertCreateRequest,
    responses((status = 201, description = "The new certificate.", body = drycc_api_types::Cert), crate::http::api::openapi::Errors),
)]
pub async fn create(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Json(request): Json<CertCreateRequest>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Cert>)> {
    validate_name(&request.name)?;
    drycc_router::tls::certified_key(&request.certificate, &request.key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let cert = state
        .store
        .create_cert(
            &request.name,
            &user.username,
            &request.certificate,
            &request.key,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(cert_view(&cert))))
}

#[utoipa::path(
    operation_id = "certs_show",
    get,
    path = "/certs/{name}",
    tag = "certs",
    params(("name" = String, Path, description = "The certificate's name.")),
    responses((status = 200, description = "The certificate.", body = drycc_api_types::Cert), crate::http::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Json<drycc_api_types::Cert>> {
    Ok(Json(cert_view(&cert_for(&state, &user, &name).await?)))
}

#[utoipa::path(
    operation_id = "certs_delete",
    delete,
    path = "/certs/{name}",
    tag = "certs",
    params(("name" = String, Path, description = "The certificate's name.")),
    responses((status = 204, description = "Deleted."), crate::http::api::openapi::Errors),
)]
pub async fn delete(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let cert = cert_for(&state, &user, &name).await?;
    state.store.delete_cert(&cert.name).await?;
    state.routes.store_changed();
    state.routes.sync().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    operation_id = "certs_attach",
    post,
    path = "/certs/{name}/domain",
    tag = "certs",
    params(("name" = String, Path, description = "The certificate's name.")),
    request_body = drycc_api_types::DomainRequest,
    responses((status = 201, description = "Attached."), crate::http::api::openapi::Errors),
)]
pub async fn attach(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(name): Path<String>,
    Json(request): Json<DomainRequest>,
) -> ApiResult<StatusCode> {
    let cert = cert_for(&state, &user, &name).await?;
    let domain = request
        .domain
        .strip_suffix('.')
        .unwrap_or(&request.domain)
        .to_ascii_lowercase();
    let record = state.store.get_domain(&domain).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Domain {} is no app's; add it first with `drycc domains:add`.",
            domain.chars().take(253).collect::<String>()
        ))
    })?;
    app_for(&state, &user, &record.app, Access::Write).await?;
    let certified = drycc_router::tls::certified_key(&cert.certificate, &cert.key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !drycc_router::tls::covers(&certified, &domain) {
        return Err(ApiError::bad_request(format!(
            "Certificate {} is not valid for {domain}: none of its subject alternative names matches it.",
            cert.name
        )));
    }
    state.store.attach_cert(&cert.name, &domain).await?;
    state.routes.store_changed();
    state.routes.sync().await;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(
    operation_id = "certs_detach",
    delete,
    path = "/certs/{name}/domain/{domain}",
    tag = "certs",
    params(("name" = String, Path, description = "The certificate's name."), ("domain" = String, Path, description = "The domain.")),
    responses((status = 204, description = "Detached."), crate::http::api::openapi::Errors),
)]
pub async fn detach(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((name, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let cert = cert_for(&state, &user, &name).await?;
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(&domain)
        .to_ascii_lowercase();
    if let Some(record) = state.store.get_domain(&domain).await? {
        app_for(&state, &user, &record.app, Access::Write).await?;
    }
    if !state.store.detach_cert(&cert.name, &domain).await? {
        return Err(ApiError::not_found(format!(
            "Certificate {} is not attached to {}.",
            cert.name,
            domain.chars().take(253).collect::<String>()
        )));
    }
    state.routes.store_changed();
    state.routes.sync().await;
    Ok(StatusCode::NO_CONTENT)
}
