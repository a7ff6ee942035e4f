//! System settings (the cluster-wide Hugging Face token) and this node's runner view.
//!
//! The write path of a token starts here: check the caller is an admin, validate, seal the
//! token with the cluster's data key, and commit a command that carries only ciphertext.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::request::parse_json;
use super::token_settings::seal_token_update;
use super::types::{
    GossipStatusView, RunnerConfigView, SettingsTokenSource, SystemSettingsUpdate,
    TokenSettingsView,
};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::state::{Command, SystemSettings, TokenScope, TokenUpdate};

/// The system settings as shown: whether a token is set and where it comes from (the
/// cluster state, else this node's `HF_TOKEN`), never its value.
fn view(ctx: &ApiContext, settings: &SystemSettings) -> TokenSettingsView {
    let in_state = settings.hf_token.is_some();
    let in_env = ctx.tokens.env_token_present();
    TokenSettingsView {
        id: "system".into(),
        created: crate::time::rfc3339(settings.created_ms),
        updated: crate::time::rfc3339(settings.updated_ms),
        huggingface_token_set: in_state || in_env,
        huggingface_token_source: if in_state {
            SettingsTokenSource::Database
        } else if in_env {
            SettingsTokenSource::Environment
        } else {
            SettingsTokenSource::None
        },
    }
}

#[utoipa::path(get, path = "/api/v1/system/settings", operation_id = "get_system_settings", tag = "settings",
    params(ReadMode),
    responses(
        (status = 200, description = "Whether the cluster-wide Hugging Face token is set, and where it comes from", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_settings(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<TokenSettingsView>, ApiError> {
    ctx.reader(&headers, mode).await?.require_admin()?;
    let settings = ctx.replica().read(|s| s.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

#[utoipa::path(put, path = "/api/v1/system/settings", operation_id = "put_system_settings", tag = "settings",
    request_body = SystemSettingsUpdate,
    responses(
        (status = 200, description = "The settings as updated", body = TokenSettingsView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn put_settings(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TokenSettingsView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let update: SystemSettingsUpdate = parse_json(body)?;
    let hf_token = seal_token_update(
        &ctx,
        "huggingface_token",
        &update.huggingface_token,
        TokenScope::System,
    )?;
    let hf_token_updated = hf_token.is_some();
    let command = match (&update.org_hf_tokens, &update.user_hf_tokens) {
        (None, None) => Command::UpdateSystemSettings { hf_token },
        (orgs, users) => Command::UpdateTokenSettings {
            system: hf_token,
            orgs: seal_map(&ctx, "org_hf_tokens", orgs, |id| {
                TokenScope::Organization(id)
            })?,
            users: seal_map(&ctx, "user_hf_tokens", users, |id| TokenScope::User(id))?,
        },
    };
    ctx.commit(&caller, command).await?;
    tracing::info!(
        user_id = %caller.user.id,
        hf_token_updated,
        org_tokens_updated = update.org_hf_tokens.as_ref().map_or(0, |m| m.len()),
        user_tokens_updated = update.user_hf_tokens.as_ref().map_or(0, |m| m.len()),
        "system settings updated by admin"
    );
    let settings = ctx.replica().read(|s| s.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

/// Each token of an id → token map sealed for its holder (`""` clears).
fn seal_map(
    ctx: &ApiContext,
    field: &str,
    map: &Option<BTreeMap<String, SecretString>>,
    scope: fn(&str) -> TokenScope<'_>,
) -> Result<Vec<(String, TokenUpdate)>, ApiError> {
    let Some(map) = map else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(id, token)| {
            let entry = format!("{field}.{id}");
            let update = seal_token_update(ctx, &entry, &Some(token.clone()), scope(id))?;
            Ok((id.clone(), update.expect("a present token is an update")))
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/system/config", tag = "settings",
    responses(
        (status = 200, description = "This node's runner view: token, applied index, seal key, gossip", body = RunnerConfigView),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn get_config(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<Json<RunnerConfigView>, ApiError> {
    // Local by nature: it reports this node, not the cluster.
    ctx.writer(&headers).await?.require_admin()?;
    Ok(Json(RunnerConfigView {
        node_id: ctx.cluster.node_id(),
        huggingface_token_set: ctx.tokens.system_token_opens(),
        applied_index: ctx.replica().applied_index(),
        log_purged_through: ctx.cluster.purged_index(),
        seal_key: ctx
            .replica()
            .read(|s| super::keyring::seal_key_view(&ctx, s)),
        gossip: {
            let view = ctx.gossip.view();
            GossipStatusView {
                running: view.running,
                live_nodes: view.nodes.keys().copied().collect(),
                down_nodes: view.down.iter().copied().collect(),
                dropped_datagrams: ctx.gossip.dropped().total(),
            }
        },
    }))
}
