//! System settings (the cluster-wide Hugging Face token) and this node's runner view.
//!
//! The write path of a token starts here: check the caller is an admin, validate, seal the
//! token with the cluster's data key, and commit a command that carries only ciphertext.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::request::parse_json;
use super::token_settings::seal_token_update;
use super::{ApiContext, ApiError, ReadMode};
use crate::state::{Command, SystemSettings, TokenScope};

/// Settings as shown to users: whether a token is set and where it comes from, never its value.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    id: &'static str,
    created: String,
    updated: String,
    huggingface_token_set: bool,
    /// `database` (cluster state), else `environment` (this node's HF_TOKEN), else `none`.
    huggingface_token_source: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// Absent: unchanged. `""`: clear. Anything else: the new token.
    huggingface_token: Option<SecretString>,
}

fn view(ctx: &ApiContext, settings: &SystemSettings) -> SettingsView {
    let in_state = settings.hf_token.is_some();
    let in_env = ctx.tokens.env_token_present();
    SettingsView {
        id: "system",
        created: crate::time::rfc3339(settings.created_ms),
        updated: crate::time::rfc3339(settings.updated_ms),
        huggingface_token_set: in_state || in_env,
        huggingface_token_source: if in_state {
            "database"
        } else if in_env {
            "environment"
        } else {
            "none"
        },
    }
}

pub async fn get_settings(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<SettingsView>, ApiError> {
    ctx.reader(&headers, mode).await?.require_admin()?;
    let settings = ctx.replica().read(|s| s.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

pub async fn put_settings(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettingsView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let update: SettingsUpdate = parse_json(body)?;
    let hf_token = seal_token_update(
        &ctx,
        "huggingface_token",
        &update.huggingface_token,
        TokenScope::System,
    )?;
    let hf_token_updated = hf_token.is_some();
    ctx.commit(&caller, Command::UpdateSystemSettings { hf_token })
        .await?;
    tracing::info!(
        user_id = %caller.user.id,
        hf_token_updated,
        "system settings updated by admin"
    );
    let settings = ctx.replica().read(|s| s.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

/// This node's runner view: whether the cluster-wide token opens here, how far it applied.
#[derive(Debug, Serialize)]
pub struct RunnerConfigView {
    node_id: u64,
    huggingface_token_set: bool,
    applied_index: u64,
}

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
    }))
}
