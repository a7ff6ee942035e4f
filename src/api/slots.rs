//! `/api/v1/slots`: what runs where.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::types::SlotView;
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::state::{Slot, SlotState};

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
