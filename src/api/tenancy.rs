//! Organizations, users and API keys. Who may do what is decided in
//! `state::auth`; see docs/security.md. Their token settings are in `token_settings.rs`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use secrecy::ExposeSecret;

use super::request::parse_json;
use super::types::{NewOrg, NewUserView, OrgView, UserInput, UserView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::crypto::{generate_api_key, hash_api_key, random_id};
use crate::state::{
    check_name, invalid, Command, NewUser, Org, OrgRole, Reply, Rule, StateError, User,
};

// ----------------------------------------------------------------------------- organizations

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        OrgView {
            id: o.id.clone(),
            name: o.name.clone(),
            created: crate::time::rfc3339(o.created_ms),
            updated: crate::time::rfc3339(o.updated_ms),
            huggingface_token_set: o.hf_token.is_some(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "tenancy",
    request_body(content = NewOrg, example = json!({"name": "acme"})),
    responses(
        (status = 201, description = "Created", body = OrgView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "An organization with that name exists", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn create_org(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let input: NewOrg = parse_json(body)?;
    check_name("name", &input.name)?;
    let org = Org {
        id: random_id(),
        name: input.name,
        created_ms: 0,
        updated_ms: 0,
        hf_token: None,
    };
    match ctx.commit(&caller, Command::CreateOrg(org)).await? {
        Reply::Org(o) => Ok((StatusCode::CREATED, Json(OrgView::from(&o)))),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "tenancy",
    params(ReadMode),
    responses(
        (status = 200, description = "The organizations the key may see", body = Vec<OrgView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_orgs(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<OrgView>>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    Ok(Json(ctx.replica().read(|s| {
        s.orgs
            .values()
            .filter(|o| s.permits(&caller.user, Rule::AdminOrOrgMember { org_id: &o.id }))
            .map(OrgView::from)
            .collect()
    })))
}

// ------------------------------------------------------------------------------------- users

fn user_view(u: &User, disabled: bool) -> UserView {
    UserView {
        id: u.id.clone(),
        name: u.name.clone(),
        admin: u.admin,
        organization_id: u.organization_id.clone(),
        org_role: u.org_role,
        created: crate::time::rfc3339(u.created_ms),
        huggingface_token_set: u.hf_token.is_some(),
        disabled,
    }
}

#[utoipa::path(post, path = "/api/v1/users", tag = "tenancy",
    request_body(content = UserInput, example = json!({"name": "alice"})),
    responses(
        (status = 201, description = "Created, with its first API key (shown this once)", body = NewUserView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "The organization named does not exist", body = ErrorBody),
        (status = 409, description = "A user with that name exists", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn create_user(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<NewUserView>), ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let input: UserInput = parse_json(body)?;
    check_name("name", &input.name)?;
    if input.org_role.is_some() && input.organization_id.is_none() {
        return Err(invalid("org_role", "needs organization_id").into());
    }
    if let Some(org) = &input.organization_id {
        ctx.cluster
            .check_current(|s| s.check_org_exists(org))
            .await?;
    }
    let key = generate_api_key();
    let key_id = random_id();
    let user = NewUser {
        id: random_id(),
        name: input.name,
        admin: input.admin,
        created_ms: 0,
        org_role: input
            .organization_id
            .as_ref()
            .map(|_| input.org_role.unwrap_or(OrgRole::Member)),
        organization_id: input.organization_id,
        hf_token: None,
    };
    let command = Command::CreateUser {
        user,
        key_id: key_id.clone(),
        key_hash: hash_api_key(key.expose_secret()),
    };
    match ctx.commit(&caller, command).await? {
        Reply::User(u) => Ok((
            StatusCode::CREATED,
            Json(NewUserView {
                user: user_view(&u, false),
                api_key: key,
                api_key_id: key_id,
            }),
        )),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "tenancy",
    params(ReadMode),
    responses(
        (status = 200, description = "The users the key may see", body = Vec<UserView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_users(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    Ok(Json(ctx.replica().read(|s| {
        s.users
            .values()
            .filter(|u| s.permits(&caller.user, Rule::AdminOrSelf { user_id: &u.id }))
            .map(|u| user_view(u, s.disabled_users.contains(&u.id)))
            .collect()
    })))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "tenancy",
    params(("id" = String, Path, description = "A user id, or `me` for the caller"), ReadMode),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "This key may not do that", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_user(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<UserView>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    let id = caller.user_id_of(&raw_id);
    let user = ctx.replica().read(|s| {
        let user = s
            .users
            .get(&id)
            .ok_or_else(|| StateError::NotFound(format!("user {id:?} not found")))?;
        s.check(&caller.user, Rule::AdminOrSelf { user_id: &id })?;
        Ok::<_, StateError>(user_view(user, s.disabled_users.contains(&id)))
    })?;
    Ok(Json(user))
}
