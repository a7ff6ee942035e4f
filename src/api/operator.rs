//! `GET /api/v1/operator/snapshot`: a backup of the whole state (admins only), read at a
//! linearizable point. Secrets in it are sealed with the cluster key, as the state holds
//! them. A read, so it is logged rather than audited in the replicated state.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::state::encode_backup;

pub const SNAPSHOT_PATH: &str = "/api/v1/operator/snapshot";

#[utoipa::path(get, path = "/api/v1/operator/snapshot", tag = "operator",
    responses(
        (status = 200, description = "A backup of the whole state (secrets sealed)", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn save_snapshot(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = ctx.reader(&headers, ReadMode::default()).await?;
    caller.require_admin()?;
    // Cloned under the lock, encoded outside it: applies are not held up by a large state.
    let (applied_index, state) = ctx.replica().read_at(|i, s| (i, s.clone()));
    let bytes = tokio::task::spawn_blocking(move || encode_backup(applied_index, &state))
        .await
        .map_err(|e| ApiError::Internal(format!("encoding the snapshot failed: {e}")))?;
    tracing::info!(
        actor = %caller.user.id,
        applied_index,
        bytes = bytes.len(),
        "snapshot saved"
    );
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
