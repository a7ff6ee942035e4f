//! The keyring (`helix operator keyring list|rotate`) and log compaction (`helix operator
//! compact`): admins only, audited in the replicated state.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::types::{CompactionView, DataKeyView, KeyringView, SealKeyView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::crypto::SealKeySource;
use crate::state::{Command, SealError, State as Replicated};

pub const KEYRING_PATH: &str = "/api/v1/operator/keyring";
pub const ROTATE_PATH: &str = "/api/v1/operator/keyring/rotate";
pub const COMPACT_PATH: &str = "/api/v1/operator/compact";

/// A rotation prepared while a token changes is refused by `apply`; it is prepared again
/// this many times before the caller is told to retry.
const ROTATION_TRIES: usize = 3;
/// How long `compact` waits to report this node's own compaction.
const LOCAL_COMPACTION_WAIT: Duration = Duration::from_secs(10);

/// This node's seal key as reported (also by `system/config`).
pub fn seal_key_view(ctx: &ApiContext, state: &Replicated) -> SealKeyView {
    let problem = ctx.sealer.check(state).err();
    SealKeyView {
        id: ctx.sealer.seal_key_id(),
        source: match ctx.sealer.seal_key_source() {
            SealKeySource::DataDir => "data-dir".into(),
            SealKeySource::File(_) => "file".into(),
        },
        opens_keyring: problem.is_none(),
        problem: problem.map(|e| e.to_string()),
    }
}

fn keyring_view(ctx: &ApiContext, state: &Replicated) -> Result<KeyringView, ApiError> {
    let keyring = state
        .keyring
        .as_ref()
        .ok_or_else(|| ApiError::from(SealError::NoKeyring))?;
    let now = crate::time::now_ms();
    let counts = state.tokens_per_key();
    Ok(KeyringView {
        seal_key_id: keyring.seal_key_id.clone(),
        current: keyring.current,
        keys: keyring
            .keys
            .iter()
            .map(|(id, key)| DataKeyView {
                id: *id,
                created: crate::time::rfc3339(key.created_ms),
                age_seconds: (now - key.created_ms).max(0) / 1000,
                secrets: counts.get(id).copied().unwrap_or(0),
                current: *id == keyring.current,
            })
            .collect(),
        legacy_secrets: counts.get(&0).copied().unwrap_or(0),
        this_node: seal_key_view(ctx, state),
    })
}

#[utoipa::path(get, path = "/api/v1/operator/keyring", tag = "operator",
    params(ReadMode),
    responses(
        (status = 200, description = "The keyring's data keys (never a key)", body = KeyringView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now, or no keyring yet", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_keyring(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<KeyringView>, ApiError> {
    ctx.reader(&headers, mode).await?.require_admin()?;
    Ok(Json(ctx.replica().read(|s| keyring_view(&ctx, s))?))
}

#[utoipa::path(post, path = "/api/v1/operator/keyring/rotate", tag = "operator",
    responses(
        (status = 200, description = "The keyring with its new current key", body = KeyringView),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "Tokens kept changing during the rotation: retry", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn rotate_keyring(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<Json<KeyringView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let mut tries = 0;
    loop {
        tries += 1;
        // Prepared on a current state, so every token committed before is re-sealed.
        let state = ctx.cluster.read(ReadMode::default().consistency()).await?;
        let command = state.read(|s| ctx.sealer.rotation(s))?;
        match ctx.commit(&caller, command).await {
            Ok(_) => break,
            Err(ApiError::Conflict(_)) if tries < ROTATION_TRIES => continue,
            Err(e) => return Err(e),
        }
    }
    let view = ctx.replica().read(|s| keyring_view(&ctx, s))?;
    tracing::info!(actor = %caller.user.id, key = view.current, "keyring rotated");
    Ok(Json(view))
}

#[utoipa::path(post, path = "/api/v1/operator/compact", tag = "operator",
    responses(
        (status = 202, description = "Every node compacts its Raft log", body = CompactionView),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn compact(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<CompactionView>), ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    // Every write acknowledged before this request is at or below this index.
    let before = ctx
        .cluster
        .read(ReadMode::default().consistency())
        .await?
        .applied_index();
    ctx.commit(&caller, Command::CompactLogs).await?;
    let mut status = ctx.cluster.watch();
    let reached = |purged: Option<u64>| purged.is_some_and(|p| p >= before);
    let _ = tokio::time::timeout(LOCAL_COMPACTION_WAIT, async {
        while !reached(status.current().purged_index) && status.changed().await {}
    })
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(CompactionView {
            purges_through_at_least: before,
            this_node_purged_through: ctx.cluster.purged_index(),
        }),
    ))
}
