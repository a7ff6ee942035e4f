//! Hugging Face token settings of an organization, a user or a model: one handler for the
//! three, shown masked (whether a token is set, never its value) and changed through Raft
//! with the token sealed here, before it is proposed.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};

use super::request::{parse_json, Caller};
use super::types::{SettingsTokenSource, TokenSettingsUpdate, TokenSettingsView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::state::{Command, ModelPatch, Rule, StateError, TokenScope, TokenUpdate, HF_TOKEN_MAX};

/// Whose token settings a request is about.
#[derive(Debug, Clone, Copy)]
enum Holder<'a> {
    Organization(&'a str),
    User(&'a str),
    Model(&'a str),
}

impl Holder<'_> {
    fn scope(&self) -> TokenScope<'_> {
        match *self {
            Holder::Organization(id) => TokenScope::Organization(id),
            Holder::User(id) => TokenScope::User(id),
            Holder::Model(id) => TokenScope::Model(id),
        }
    }

    /// The command that changes the token (`None`: leaves it as it is).
    fn command(&self, hf_token: Option<TokenUpdate>) -> Command {
        match *self {
            Holder::Organization(id) => Command::UpdateOrgSettings {
                org_id: id.to_string(),
                hf_token,
            },
            Holder::User(id) => Command::UpdateUserSettings {
                user_id: id.to_string(),
                hf_token,
            },
            Holder::Model(id) => Command::UpdateModel {
                id: id.to_string(),
                patch: ModelPatch {
                    hf_token,
                    ..ModelPatch::default()
                },
            },
        }
    }

    /// The settings as shown; `NotFound` when the holder does not exist.
    fn look(&self, state: &crate::state::State) -> Result<TokenSettingsView, StateError> {
        let view = |id: &str, created_ms, updated_ms, set: bool| TokenSettingsView {
            id: id.to_string(),
            created: crate::time::rfc3339(created_ms),
            updated: crate::time::rfc3339(updated_ms),
            huggingface_token_set: set,
            huggingface_token_source: if set {
                SettingsTokenSource::Database
            } else {
                SettingsTokenSource::None
            },
        };
        let missing =
            |what: &str, id: &str| StateError::NotFound(format!("{what} {id:?} not found"));
        match *self {
            Holder::Organization(id) => {
                let o = state
                    .orgs
                    .get(id)
                    .ok_or_else(|| missing("organization", id))?;
                Ok(view(id, o.created_ms, o.updated_ms, o.hf_token.is_some()))
            }
            Holder::User(id) => {
                let u = state.users.get(id).ok_or_else(|| missing("user", id))?;
                Ok(view(id, u.created_ms, u.updated_ms, u.hf_token.is_some()))
            }
            Holder::Model(id) => {
                let m = state.models.get(id).ok_or_else(|| missing("model", id))?;
                Ok(view(id, m.created_ms, m.updated_ms, m.hf_token.is_some()))
            }
        }
    }

    /// Who may read the settings.
    fn read_rule<'s>(&'s self, state: &'s crate::state::State) -> Rule<'s> {
        match self {
            Holder::Organization(org_id) => Rule::AdminOrOrgOwner { org_id },
            Holder::User(user_id) => Rule::AdminOrSelf { user_id },
            Holder::Model(id) => match state.models.get(*id) {
                Some(model) => Rule::AdminOrModelOwner { model },
                None => Rule::Admin,
            },
        }
    }
}

/// The holder's settings if `caller` may read them, on a current view of the state.
async fn read(
    ctx: &ApiContext,
    caller: &Caller,
    holder: Holder<'_>,
) -> Result<TokenSettingsView, ApiError> {
    let view = ctx
        .cluster
        .check_current(|s| {
            let view = holder.look(s)?;
            s.check(&caller.user, holder.read_rule(s))?;
            Ok::<_, StateError>(view)
        })
        .await?;
    Ok(view)
}

async fn write(
    ctx: &ApiContext,
    caller: &Caller,
    holder: Holder<'_>,
    body: Result<Bytes, BytesRejection>,
) -> Result<TokenSettingsView, ApiError> {
    // Exists, and the caller may change it: checked before anything is sealed.
    ctx.cluster
        .check_current(|s| {
            holder.look(s)?;
            s.authorize(&caller.user, &holder.command(None))
        })
        .await?;
    let update: TokenSettingsUpdate = parse_json(body)?;
    let hf_token = seal_token_update(
        ctx,
        "huggingface_token",
        &update.huggingface_token,
        holder.scope(),
    )?;
    let hf_token_updated = hf_token.is_some();
    ctx.commit(caller, holder.command(hf_token)).await?;
    tracing::info!(user_id = %caller.user.id, holder = ?holder, hf_token_updated, "token settings updated");
    Ok(ctx.replica().read(|s| holder.look(s))?)
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/settings", operation_id = "get_org_settings", tag = "settings",
    params(("id" = String, Path, description = "The organization id"), ReadMode),
    responses(
        (status = 200, description = "Whether the organization's token is set", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the organization's owners only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_org(
    State(ctx): State<ApiContext>,
    Path(org_id): Path<String>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<TokenSettingsView>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    read(&ctx, &caller, Holder::Organization(&org_id))
        .await
        .map(Json)
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/settings", operation_id = "put_org_settings", tag = "settings",
    params(("id" = String, Path, description = "The organization id")),
    request_body = TokenSettingsUpdate,
    responses(
        (status = 200, description = "The settings as updated", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the organization's owners only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn put_org(
    State(ctx): State<ApiContext>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenSettingsView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    write(&ctx, &caller, Holder::Organization(&org_id), body)
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/api/v1/users/{id}/settings", operation_id = "get_user_settings", tag = "settings",
    params(("id" = String, Path, description = "A user id, or `me` for the caller"), ReadMode),
    responses(
        (status = 200, description = "Whether the user's token is set", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_user(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<TokenSettingsView>, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    let id = caller.user_id_of(&raw_id);
    read(&ctx, &caller, Holder::User(&id)).await.map(Json)
}

#[utoipa::path(put, path = "/api/v1/users/{id}/settings", operation_id = "put_user_settings", tag = "settings",
    params(("id" = String, Path, description = "A user id, or `me` for the caller")),
    request_body = TokenSettingsUpdate,
    responses(
        (status = 200, description = "The settings as updated", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the user only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn put_user(
    State(ctx): State<ApiContext>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenSettingsView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    let id = caller.user_id_of(&raw_id);
    write(&ctx, &caller, Holder::User(&id), body)
        .await
        .map(Json)
}

/// `GET /api/v1/helix-models/{id}/settings`, routed from the models' wildcard route.
#[utoipa::path(get, path = "/api/v1/helix-models/{id}/settings", operation_id = "get_model_settings", tag = "settings",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded"), ReadMode),
    responses(
        (status = 200, description = "Whether the model's token is set", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the model's owner only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_model(
    ctx: &ApiContext,
    caller: &Caller,
    model_id: &str,
) -> Result<TokenSettingsView, ApiError> {
    read(ctx, caller, Holder::Model(model_id)).await
}

/// `PUT /api/v1/helix-models/{id}/settings`, routed from the models' wildcard route.
#[utoipa::path(put, path = "/api/v1/helix-models/{id}/settings", operation_id = "put_model_settings", tag = "settings",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded")),
    request_body = TokenSettingsUpdate,
    responses(
        (status = 200, description = "The settings as updated", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins and the model's owner only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn put_model(
    ctx: &ApiContext,
    caller: &Caller,
    model_id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<TokenSettingsView, ApiError> {
    write(ctx, caller, Holder::Model(model_id), body).await
}

/// Check a token's shape without ever echoing it back.
fn validate_hf_token(field: &str, token: &SecretString) -> Result<(), ApiError> {
    let t = token.expose_secret();
    if t.len() > HF_TOKEN_MAX {
        return Err(ApiError::BadRequest(format!(
            "{field} is too long (at most {HF_TOKEN_MAX} characters)"
        )));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::BadRequest(format!(
            "{field} must not contain whitespace or control characters"
        )));
    }
    Ok(())
}

/// Turn a requested token into a command's update: absent leaves it, `""` clears it, any
/// other value is validated and sealed for `scope` right here, before it is proposed.
pub fn seal_token_update(
    ctx: &ApiContext,
    field: &str,
    requested: &Option<SecretString>,
    scope: TokenScope,
) -> Result<Option<TokenUpdate>, ApiError> {
    Ok(match requested {
        None => None,
        Some(t) if t.expose_secret().is_empty() => Some(TokenUpdate::Clear),
        Some(t) => {
            validate_hf_token(field, t)?;
            let sealed = ctx
                .cluster
                .replica()
                .read(|state| ctx.sealer.seal(state, t, scope))?;
            Some(TokenUpdate::Set(sealed))
        }
    })
}
