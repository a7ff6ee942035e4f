//! A user's API keys (list, issue, rotate, revoke) and disabling a user. Who may do what is
//! decided in `state::auth`; see docs/security.md.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};

use super::request::parse_json;
use super::types::{ApiKeyView, IssuedKeyView, KeyInput};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::crypto::{generate_api_key, hash_api_key, random_id};
use crate::state::{check_name, ApiKey, Command, Rule, State as Replicated, StateError};

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            user_id: k.user_id.clone(),
            name: k.name.clone(),
            created: crate::time::rfc3339(k.created_ms),
            last_used: k.last_used_ms.map(crate::time::rfc3339),
        }
    }
}

fn user_exists(s: &Replicated, id: &str) -> Result<(), StateError> {
    match s.users.contains_key(id) {
        true => Ok(()),
        false => Err(StateError::NotFound(format!("user {id:?} not found"))),
    }
}

fn key_exists(s: &Replicated, key_id: &str) -> Result<(), StateError> {
    match s.key_hash_by_id(key_id) {
        Some(_) => Ok(()),
        None => Err(StateError::NotFound(format!(
            "API key {key_id:?} not found"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/users/{id}/api-keys", tag = "keys",
    params(("id" = String, Path, description = "A user id, or `me` for the caller"), ReadMode),
    responses(
        (status = 200, description = "The user's keys, never their values", body = Vec<ApiKeyView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_api_keys(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    let id = caller.user_id_of(&raw_id);
    let keys = ctx.replica().read(|s| {
        s.check(&caller.user, Rule::AdminOrSelf { user_id: &id })?;
        user_exists(s, &id)?;
        Ok::<_, StateError>(s.keys_of(&id).into_iter().map(ApiKeyView::from).collect())
    })?;
    Ok(Json(keys))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/api-keys", tag = "keys",
    params(("id" = String, Path, description = "A user id, or `me` for the caller")),
    request_body = inline(Option<KeyInput>),
    responses(
        (status = 201, description = "The new key, shown this once", body = IssuedKeyView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn issue_api_key(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IssuedKeyView>), ApiError> {
    let caller = ctx.writer(&headers).await?;
    let id = caller.user_id_of(&raw_id);
    // The body is optional: no body issues an unnamed key.
    let input: KeyInput = match &body {
        Ok(bytes) if bytes.is_empty() => KeyInput::default(),
        _ => parse_json(body)?,
    };
    if let Some(name) = &input.name {
        check_name("name", name)?;
    }
    ctx.cluster.check_current(|s| user_exists(s, &id)).await?;
    let (key, key_id, key_hash) = new_key();
    let command = Command::IssueNamedApiKey {
        user_id: id.clone(),
        key_id: key_id.clone(),
        key_hash,
        name: input.name.clone(),
    };
    ctx.commit(&caller, command).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKeyView {
            id: key_id,
            user_id: id,
            name: input.name,
            api_key: key,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/api-keys/{key_id}/rotate", tag = "keys",
    params(("key_id" = String, Path, description = "The API key id (never the key)")),
    responses(
        (status = 200, description = "The replacement key, shown this once; the old one stops working", body = IssuedKeyView),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the key's user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn rotate_api_key(
    State(ctx): State<ApiContext>,
    Path(old_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<IssuedKeyView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    ctx.cluster
        .check_current(|s| key_exists(s, &old_id))
        .await?;
    let (key, key_id, key_hash) = new_key();
    let command = Command::RotateApiKey {
        key_id: old_id,
        new_key_id: key_id.clone(),
        new_key_hash: key_hash.clone(),
    };
    ctx.commit(&caller, command).await?;
    let rotated = ctx
        .replica()
        .read(|s| s.api_keys.get(&key_hash).cloned())
        .ok_or_else(|| ApiError::Internal("the rotated key is not in the state".into()))?;
    Ok(Json(IssuedKeyView {
        id: key_id,
        user_id: rotated.user_id,
        name: rotated.name,
        api_key: key,
    }))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path, description = "The API key id (never the key)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the key's user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn revoke_api_key(
    State(ctx): State<ApiContext>,
    Path(key_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = ctx.writer(&headers).await?;
    ctx.cluster
        .check_current(|s| key_exists(s, &key_id))
        .await?;
    ctx.commit(&caller, Command::RevokeApiKey { key_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "keys",
    params(("id" = String, Path, description = "A user id, or `me` for the caller")),
    responses(
        (status = 204, description = "Disabled: every key of the user gets 401"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "An admin cannot disable themselves", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn disable_user(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_disabled(ctx, raw_id, headers, true).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "keys",
    params(("id" = String, Path, description = "A user id, or `me` for the caller")),
    responses(
        (status = 204, description = "Enabled"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn enable_user(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    set_disabled(ctx, raw_id, headers, false).await
}

async fn set_disabled(
    ctx: ApiContext,
    raw_id: String,
    headers: HeaderMap,
    disabled: bool,
) -> Result<StatusCode, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let user_id = caller.user_id_of(&raw_id);
    ctx.cluster
        .check_current(|s| user_exists(s, &user_id))
        .await?;
    ctx.commit(&caller, Command::SetUserDisabled { user_id, disabled })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new key: its value (shown once), public id and stored hash.
fn new_key() -> (SecretString, String, String) {
    let key = generate_api_key();
    let hash = hash_api_key(key.expose_secret());
    (key, random_id(), hash)
}
