//! `/api/v1/helix-models`: the models the cluster knows. The `{id}` may contain `/`, so one
//! route catches a model and its sub-resources (`/settings`, `/token-source`) and the
//! handlers here tell them apart.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::request::{parse_json, Caller};
use super::token_settings::{self, seal_token_update};
use super::types::{Memory, ModelInput, ModelView, TokenSourceView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::state::{
    check_model_id, parse_memory, resolve, Command, Model, ModelPatch, Reply, Rule, StateError,
    TokenScope, TokenSource,
};

/// The route of one model and its sub-resources.
pub const MODEL_ROUTE: &str = "/api/v1/helix-models/{*id}";

impl From<&Model> for ModelView {
    fn from(m: &Model) -> Self {
        ModelView {
            id: m.id.clone(),
            name: m.name.clone(),
            model_type: m.model_type,
            runtime: m.runtime,
            memory: m.memory,
            context_length: m.context_length,
            description: m.description.clone(),
            enabled: m.enabled,
            auto_pull: m.auto_pull,
            prewarm: m.prewarm,
            runtime_args: m.runtime_args.clone(),
            created: crate::time::rfc3339(m.created_ms),
            updated: crate::time::rfc3339(m.updated_ms),
            owner_user_id: m.owner_user_id.clone(),
            organization_id: m.organization_id.clone(),
            huggingface_token_set: m.hf_token.is_some(),
            replicas: m.replicas,
        }
    }
}

impl ModelInput {
    /// The patch this input describes; `model_id` scopes the sealed token.
    fn patch(&self, ctx: &ApiContext, model_id: &str) -> Result<ModelPatch, ApiError> {
        let memory = match &self.memory {
            None => None,
            Some(Memory::Bytes(bytes)) => Some(*bytes),
            Some(Memory::Size(size)) => Some(parse_memory(size).map_err(|e| bad("memory", e))?),
        };
        Ok(ModelPatch {
            name: self.name.clone(),
            model_type: self.model_type,
            runtime: self.runtime,
            memory,
            context_length: self.context_length.map(Some),
            description: self.description.clone(),
            enabled: self.enabled,
            auto_pull: self.auto_pull,
            prewarm: self.prewarm,
            runtime_args: self.runtime_args.clone(),
            owner_user_id: self.owner_user_id.clone().map(Some),
            organization_id: self.organization_id.clone().map(Some),
            hf_token: seal_token_update(
                ctx,
                "huggingface_token",
                &self.huggingface_token,
                TokenScope::Model(model_id),
            )?,
            replicas: self.replicas,
        })
    }
}

/// The owner and organization a model names must exist (on a current view: they may have
/// been created a moment ago through another node).
async fn check_tenancy(ctx: &ApiContext, m: &Model) -> Result<(), ApiError> {
    Ok(ctx.cluster.check_current(|s| s.check_model_refs(m)).await?)
}

fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("invalid field `{field}`: {message}"))
}

fn model_id_from_path(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim_start_matches('/').to_string();
    check_model_id(&id).map_err(|_| ApiError::NotFound(format!("model {id:?} not found")))?;
    Ok(id)
}

#[utoipa::path(get, path = "/api/v1/helix-models", operation_id = "list_helix_models", tag = "models",
    params(ReadMode),
    responses(
        (status = 200, description = "Every model", body = Vec<ModelView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<ModelView>>, ApiError> {
    ctx.reader(&headers, mode).await?;
    Ok(Json(ctx.replica().read(|s| {
        s.models.values().map(ModelView::from).collect()
    })))
}

/// `GET` on a model, its `/settings` or its `/token-source`.
pub async fn get_any(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = ctx.reader(&headers, mode).await?;
    if let Some(model_id) = id.strip_suffix("/token-source") {
        let model_id = model_id_from_path(model_id)?;
        return Ok(Json(token_source(&ctx, &caller, &model_id)?).into_response());
    }
    if let Some(model_id) = id.strip_suffix("/settings") {
        let model_id = model_id_from_path(model_id)?;
        let view = token_settings::get_model(&ctx, &caller, &model_id).await?;
        return Ok(Json(view).into_response());
    }
    Ok(Json(get_one(&ctx, &id)?).into_response())
}

#[utoipa::path(get, path = "/api/v1/helix-models/{id}", operation_id = "get_helix_model", tag = "models",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded"), ReadMode),
    responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub fn get_one(ctx: &ApiContext, raw_id: &str) -> Result<ModelView, ApiError> {
    let id = model_id_from_path(raw_id)?;
    ctx.replica()
        .read(|s| s.models.get(&id).map(ModelView::from))
        .ok_or_else(|| ApiError::NotFound(format!("model {id:?} not found")))
}

/// Which level a launch of this model would take its token from (never the token). The
/// last level, `environment`, is judged on the node that runs the model's slot, or would
/// run it now: each node publishes whether it has an `HF_TOKEN`.
#[utoipa::path(get, path = "/api/v1/helix-models/{id}/token-source", operation_id = "get_model_token_source", tag = "models",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded"), ReadMode),
    responses(
        (status = 200, description = "Which level a launch of the model takes its token from (never the token)", body = TokenSourceView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "This key may not do that", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub fn token_source(
    ctx: &ApiContext,
    caller: &Caller,
    model_id: &str,
) -> Result<TokenSourceView, ApiError> {
    ctx.replica().read(|s| {
        let model = s
            .models
            .get(model_id)
            .ok_or_else(|| StateError::NotFound(format!("model {model_id:?} not found")))?;
        s.check(&caller.user, Rule::AdminOrModelOwner { model })?;
        let runner = runner_of(s, model);
        let env_token = runner
            .and_then(|id| s.nodes.get(&id))
            .is_some_and(|n| n.hf_token_in_env);
        let resolution = resolve(s, model, env_token);
        Ok(TokenSourceView {
            source: TokenSource::from(resolution.level),
            user_id: resolution.user_id,
            organization_id: resolution.organization_id,
            node_id: runner,
        })
    })
}

/// The node that runs `model`'s slot, or the one that would run it now.
fn runner_of(state: &crate::state::State, model: &Model) -> Option<u64> {
    state
        .slots
        .get(&crate::state::slot_id_for(&model.id))
        .and_then(|slot| slot.placement.as_ref())
        .map(|p| p.node_id)
        .or_else(|| crate::runner::scheduler::would_place(state, model))
}

#[utoipa::path(post, path = "/api/v1/helix-models", operation_id = "create_helix_model", tag = "models",
    request_body(content = ModelInput, example = json!({"id": "Qwen/Qwen2.5-7B-Instruct", "memory": "20GB", "prewarm": true})),
    responses(
        (status = 201, description = "Created", body = ModelView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "This key may not do that", body = ErrorBody),
        (status = 404, description = "The owner or organization named does not exist", body = ErrorBody),
        (status = 409, description = "A model with that id exists", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn create(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let input: ModelInput = parse_json(body)?;
    let id = input.id.clone().ok_or_else(|| bad("id", "is required"))?;
    check_model_id(&id)?;
    let mut model = Model::new(id.clone());
    // Owner and organization default to the creating key's.
    model.owner_user_id = Some(caller.user.id.clone());
    model.organization_id = caller.user.organization_id.clone();
    model.apply_patch(&input.patch(&ctx, &id)?);
    model.validate()?;
    model.check_admission()?;
    check_tenancy(&ctx, &model).await?;
    match ctx.commit(&caller, Command::CreateModel(model)).await? {
        Reply::Model(m) => Ok((StatusCode::CREATED, Json(ModelView::from(&m)))),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// `PUT` on a model or its `/settings`.
pub async fn put_any(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = ctx.writer(&headers).await?;
    if let Some(model_id) = id.strip_suffix("/settings") {
        let model_id = model_id_from_path(model_id)?;
        let view = token_settings::put_model(&ctx, &caller, &model_id, body).await?;
        return Ok(Json(view).into_response());
    }
    Ok(Json(update(&ctx, &caller, &id, body).await?).into_response())
}

#[utoipa::path(put, path = "/api/v1/helix-models/{id}", operation_id = "update_helix_model", tag = "models",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded")),
    request_body(content = ModelInput, example = json!({"description": "a chat model", "replicas": 1})),
    responses(
        (status = 200, description = "The model as updated", body = ModelView),
        (status = 400, description = "Bad input, named in `error`, or nothing to change", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "This key may not do that", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state (e.g. a name already taken)", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn update(
    ctx: &ApiContext,
    caller: &Caller,
    raw_id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<ModelView, ApiError> {
    caller.require_admin()?;
    let id = model_id_from_path(raw_id)?;
    let input: ModelInput = parse_json(body)?;
    if let Some(body_id) = &input.id {
        if *body_id != id {
            return Err(bad("id", "does not match the model id in the path"));
        }
    }
    let patch = input.patch(ctx, &id)?;
    if patch == ModelPatch::default() {
        return Err(ApiError::BadRequest(
            "nothing to change: the body names no field of the model".into(),
        ));
    }
    // Validate the merged result against our copy; `apply` merges into the committed one.
    let mut preview = ctx
        .replica()
        .read(|s| s.models.get(&id).cloned())
        .unwrap_or_else(|| Model::new(id.clone()));
    preview.apply_patch(&patch);
    preview.validate()?;
    // A model stored before the admission rules may still be enabled, renamed, ...; a change
    // to what the rules look at must leave it within them.
    if patch.memory.is_some() || patch.context_length.is_some() || patch.runtime_args.is_some() {
        preview.check_admission()?;
    }
    check_tenancy(ctx, &preview).await?;
    match ctx
        .commit(caller, Command::UpdateModel { id, patch })
        .await?
    {
        Reply::Model(m) => Ok(ModelView::from(&m)),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

#[utoipa::path(delete, path = "/api/v1/helix-models/{id}", operation_id = "delete_helix_model", tag = "models",
    params(("id" = String, Path, description = "The model id; it may contain `/` (e.g. `org/model`), sent as is or percent-encoded")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "This key may not do that", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn delete(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let id = model_id_from_path(&id)?;
    ctx.commit(&caller, Command::DeleteModel { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
