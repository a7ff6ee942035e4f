//! `/api/v1/helix-models`: the models the cluster knows. The `{id}` may contain `/`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::request::parse_json;
use super::{ApiContext, ApiError, ReadMode};
use crate::state::{parse_memory, Command, Model, ModelPatch, ModelType, Proposal, Reply, Runtime};

/// A model as the API shows it.
#[derive(Debug, Serialize)]
pub struct ModelView {
    id: String,
    name: String,
    #[serde(rename = "type")]
    model_type: ModelType,
    runtime: Runtime,
    /// Bytes.
    memory: u64,
    context_length: Option<u64>,
    description: String,
    enabled: bool,
    auto_pull: bool,
    prewarm: bool,
    runtime_args: Vec<String>,
    created: String,
    updated: String,
}

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
        }
    }
}

/// The JSON accepted by create and update (the seed's model.json). Every field is optional
/// for update; create needs `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    model_type: Option<ModelType>,
    runtime: Option<Runtime>,
    /// Bytes as a number, or a string such as "39GB" or "36GiB".
    memory: Option<serde_json::Value>,
    context_length: Option<u64>,
    description: Option<String>,
    enabled: Option<bool>,
    auto_pull: Option<bool>,
    prewarm: Option<bool>,
    runtime_args: Option<Vec<String>>,
}

impl ModelInput {
    fn patch(&self) -> Result<ModelPatch, ApiError> {
        let memory = match &self.memory {
            None => None,
            Some(serde_json::Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
                ApiError::BadRequest(
                    "invalid field `memory`: must be a whole number of bytes".into(),
                )
            })?),
            Some(serde_json::Value::String(s)) => Some(
                parse_memory(s)
                    .map_err(|e| ApiError::BadRequest(format!("invalid field `memory`: {e}")))?,
            ),
            Some(_) => return Err(ApiError::BadRequest(
                "invalid field `memory`: expected a number of bytes or a string such as \"39GB\""
                    .into(),
            )),
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
        })
    }
}

fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("invalid field `{field}`: {message}"))
}

/// Model ids become paths on disk and arguments of vLLM: keep them tame.
pub fn validate_model_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(bad("id", "must not be empty"));
    }
    if id.len() > 256 {
        return Err(bad("id", "is longer than 256 characters"));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "id",
            "must not contain whitespace or control characters",
        ));
    }
    if id.split('/').any(|part| part == ".." || part == ".") || id.contains("..") {
        return Err(bad("id", "must not contain '..'"));
    }
    if id.starts_with('/') || id.ends_with('/') || id.contains("//") || id.starts_with('-') {
        return Err(bad("id", "must look like ORG/NAME or NAME"));
    }
    Ok(())
}

/// Arguments helix sets itself (or that would escape the slot's isolation) are refused.
const RESERVED_ARGS: &[&str] = &["--host", "--port"];

pub fn validate_model(m: &Model) -> Result<(), ApiError> {
    validate_model_id(&m.id)?;
    if m.name.trim().is_empty() {
        return Err(bad("name", "must not be empty"));
    }
    if m.name.len() > 256 || m.name.chars().any(char::is_control) {
        return Err(bad("name", "must be at most 256 printable characters"));
    }
    if m.description.len() > 4096 {
        return Err(bad("description", "is longer than 4096 characters"));
    }
    if m.prewarm && m.memory == 0 {
        return Err(bad(
            "memory",
            "a prewarm model needs its GPU memory (e.g. \"39GB\") so it can be placed",
        ));
    }
    if m.context_length == Some(0) {
        return Err(bad("context_length", "must be at least 1"));
    }
    if m.runtime_args.len() > 256 {
        return Err(bad("runtime_args", "has more than 256 arguments"));
    }
    for arg in &m.runtime_args {
        if arg.chars().any(|c| c.is_control()) {
            return Err(bad(
                "runtime_args",
                "arguments must not contain control characters",
            ));
        }
        let flag = arg.split('=').next().unwrap_or("");
        if RESERVED_ARGS.contains(&flag) {
            return Err(bad(
                "runtime_args",
                format!("{flag} is set by helix for each slot and must not be given"),
            ));
        }
    }
    Ok(())
}

fn model_id_from_path(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim_start_matches('/').to_string();
    validate_model_id(&id).map_err(|_| ApiError::NotFound(format!("model {id:?} not found")))?;
    Ok(id)
}

pub async fn list(
    State(ctx): State<ApiContext>,
    Query(mode): Query<ReadMode>,
    headers: HeaderMap,
) -> Result<Json<Vec<ModelView>>, ApiError> {
    ctx.reader(&headers, mode).await?;
    Ok(Json(ctx.cluster.view.read(|a| {
        a.state.models.values().map(ModelView::from).collect()
    })))
}

pub async fn get_one(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(mode): Query<ReadMode>,
    headers: HeaderMap,
) -> Result<Json<ModelView>, ApiError> {
    ctx.reader(&headers, mode).await?;
    let id = model_id_from_path(&id)?;
    ctx.cluster
        .view
        .read(|a| a.state.models.get(&id).map(ModelView::from))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("model {id:?} not found")))
}

/// Propose, then wait until this node has applied it so the answer reflects the write.
async fn commit(ctx: &ApiContext, key_hash: &str, command: Command) -> Result<Reply, ApiError> {
    let written = ctx
        .cluster
        .write(Proposal {
            actor: Some(key_hash.to_string()),
            at_ms: crate::time::now_ms(),
            command,
        })
        .await?;
    let reply = written.outcome?;
    ctx.cluster.wait_applied(written.log_index).await?;
    Ok(reply)
}

pub async fn create(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    let caller = ctx.authenticate(&headers)?;
    caller.require_admin()?;
    let input: ModelInput = parse_json(body)?;
    let id = input.id.clone().ok_or_else(|| bad("id", "is required"))?;
    validate_model_id(&id)?;
    let mut model = Model::new(id);
    model.apply_patch(&input.patch()?);
    validate_model(&model)?;
    match commit(&ctx, &caller.key_hash, Command::CreateModel(model)).await? {
        Reply::Model(m) => Ok((StatusCode::CREATED, Json(ModelView::from(&m)))),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

pub async fn update(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ModelView>, ApiError> {
    let caller = ctx.authenticate(&headers)?;
    caller.require_admin()?;
    let id = model_id_from_path(&id)?;
    let input: ModelInput = parse_json(body)?;
    if let Some(body_id) = &input.id {
        if *body_id != id {
            return Err(bad("id", "does not match the model id in the path"));
        }
    }
    let patch = input.patch()?;
    // Validate the merged result against our copy; `apply` merges into the committed one.
    let mut preview = ctx
        .cluster
        .view
        .read(|a| a.state.models.get(&id).cloned())
        .unwrap_or_else(|| Model::new(id.clone()));
    preview.apply_patch(&patch);
    validate_model(&preview)?;
    match commit(&ctx, &caller.key_hash, Command::UpdateModel { id, patch }).await? {
        Reply::Model(m) => Ok(Json(ModelView::from(&m))),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

pub async fn delete(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = ctx.authenticate(&headers)?;
    caller.require_admin()?;
    let id = model_id_from_path(&id)?;
    commit(&ctx, &caller.key_hash, Command::DeleteModel { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
