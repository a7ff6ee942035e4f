//! `/api/v1/slots`: what runs where, and each slot's log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::types::{SlotLogView, SlotView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::slot_log::LogQuery;
use crate::state::{Model, Slot, SlotState};

impl From<&Slot> for SlotView {
    fn from(s: &Slot) -> Self {
        SlotView {
            id: s.id.clone(),
            model_id: s.model_id.clone(),
            node_id: s.placement.as_ref().map(|p| p.node_id),
            gpu_indices: s
                .placement
                .as_ref()
                .map(|p| p.gpu_indices.clone())
                .unwrap_or_default(),
            state: if s.placement.is_some() {
                s.status.state
            } else {
                SlotState::Pending
            },
            port: s.status.port,
            hf_token_source: s.status.hf_token_source,
            restarts: s.status.restarts,
            last_error: s.status.last_error.clone(),
            pending_reason: s.pending_reason.clone(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/slots", operation_id = "list_slots", tag = "cluster",
    params(ReadMode),
    responses(
        (status = 200, description = "Every slot: what runs where, and why pending", body = Vec<SlotView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<SlotView>>, ApiError> {
    ctx.reader(&headers, mode).await?;
    Ok(Json(
        ctx.replica()
            .read(|s| s.slots.values().map(SlotView::from).collect()),
    ))
}

/// `?tail=N` (the last N lines), `?offset=B` (what was added from byte B on: the previous
/// answer's `end`), `?stale=true`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only the last N lines (without `offset`).
    tail: Option<usize>,
    /// What was added from this byte on: the previous answer's `end`.
    offset: Option<u64>,
    /// Check who may read on this node's replica, without asking the leader.
    #[serde(default)]
    #[param(required = false)]
    stale: bool,
}

/// `GET /api/v1/slots/{id}/logs`: the slot's vLLM log, read on the node that runs it (over
/// the peer protocol when that is another node). Admins and the owner of the slot's model
/// may read it. The runner wrote it redacted; the model's token is redacted again here.
#[utoipa::path(get, path = "/api/v1/slots/{id}/logs", operation_id = "slot_logs", tag = "cluster",
    params(("id" = String, Path, description = "The slot id, as in `GET /api/v1/slots`"), LogParams),
    responses(
        (status = 200, description = "A piece of the slot's vLLM log, redacted, from the node that runs it", body = SlotLogView),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Neither an admin nor the owner of the slot's model", body = ErrorBody),
        (status = 404, description = "No such slot, or one placed on no node (the reason it is pending)", body = ErrorBody),
        (status = 503, description = "The node that runs the slot does not answer, or no leader now", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn logs(
    State(ctx): State<ApiContext>,
    Path(slot_id): Path<String>,
    params: Result<Query<LogParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<SlotLogView>, ApiError> {
    let Query(params) = params
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))?;
    let mode = ReadMode {
        stale: params.stale,
    };
    let caller = ctx.reader(&headers, mode).await?;
    let (slot, model) = ctx.replica().read(|s| {
        let slot = s.slots.get(&slot_id).cloned();
        let model = slot
            .as_ref()
            .and_then(|slot| s.models.get(&slot.model_id).cloned());
        (slot, model)
    });
    let slot = slot.ok_or_else(|| ApiError::NotFound(format!("slot {slot_id:?} not found")))?;
    let owner = model.as_ref().and_then(|m| m.owner_user_id.as_deref());
    if !caller.user.admin && owner != Some(caller.user.id.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "only an admin or the owner of model {:?} may read the logs of its slots",
            slot.model_id
        )));
    }
    let Some(node_id) = slot.placement.as_ref().map(|p| p.node_id) else {
        return Err(ApiError::NotFound(format!(
            "slot {slot_id:?} runs on no node, so it has no log: {}",
            slot.pending_reason.as_deref().unwrap_or("it is pending")
        )));
    };
    let query = LogQuery {
        slot_id: slot_id.clone(),
        offset: params.offset,
        tail: params.tail,
    };
    let chunk = if node_id == ctx.cluster.node_id() {
        let logs = ctx.logs.clone();
        tokio::task::spawn_blocking(move || logs.read(&query))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(format!("cannot read the log: {e}")))?
    } else {
        ctx.cluster.slot_log_from(node_id, &query).await?
    };
    let text = match &model {
        Some(model) => redact_token(&ctx, model, chunk.text),
        None => chunk.text,
    };
    Ok(Json(SlotLogView {
        slot_id,
        node_id,
        text,
        start: chunk.start,
        end: chunk.end,
    }))
}

/// `text` with the model's current token, as a launch here would get it, replaced by `***`:
/// cheap insurance on top of the runner's redaction.
fn redact_token(ctx: &ApiContext, model: &Model, text: String) -> String {
    let token = ctx.replica().read(|s| {
        let choice = ctx.tokens.choose(model, s);
        ctx.tokens.open(&choice, s).ok().flatten()
    });
    match token {
        Some(t) if !t.expose_secret().is_empty() => text.replace(t.expose_secret(), "***"),
        _ => text,
    }
}
