//! `/api/v1/slots`: what runs where.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::types::SlotView;
use super::{ApiContext, ApiError, ReadMode};
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
