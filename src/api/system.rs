//! System settings (the cluster-wide Hugging Face token) and this node's runner view.
//!
//! The write path of a token starts here: check the caller is an admin, validate, seal the
//! token with the cluster's data key, and propose a command that carries only ciphertext.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::request::parse_json;
use super::{ApiContext, ApiError, ReadMode};
use crate::state::{Command, Proposal, SystemSettings, TokenUpdate, SYSTEM_TOKEN_SCOPE};

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
    SettingsView {
        id: "system",
        created: crate::time::rfc3339(settings.created_ms),
        updated: crate::time::rfc3339(settings.updated_ms),
        huggingface_token_set: in_state || ctx.tokens.env_token().is_some(),
        huggingface_token_source: if in_state {
            "database"
        } else if ctx.tokens.env_token().is_some() {
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
    let settings = ctx.cluster.view.read(|a| a.state.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

/// Check a token's shape without ever echoing it back.
pub fn validate_hf_token(field: &str, token: &SecretString) -> Result<(), ApiError> {
    let t = token.expose_secret();
    if t.len() > 1024 {
        return Err(ApiError::BadRequest(format!(
            "{field} is too long (at most 1024 characters)"
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
    scope: &str,
) -> Result<Option<TokenUpdate>, ApiError> {
    Ok(match requested {
        None => None,
        Some(t) if t.expose_secret().is_empty() => Some(TokenUpdate::Clear),
        Some(t) => {
            validate_hf_token(field, t)?;
            Some(TokenUpdate::Set(ctx.cluster.data_key.seal(t, scope)))
        }
    })
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
        SYSTEM_TOKEN_SCOPE,
    )?;
    let hf_token_updated = hf_token.is_some();
    let written = ctx
        .cluster
        .write(Proposal {
            actor: Some(caller.key_hash.clone()),
            at_ms: crate::time::now_ms(),
            command: Command::UpdateSystemSettings { hf_token },
        })
        .await?;
    written.outcome?;
    tracing::info!(
        user_id = %caller.user.id,
        hf_token_updated,
        "system settings updated by admin"
    );
    ctx.cluster.wait_applied(written.log_index).await?;
    let settings = ctx.cluster.view.read(|a| a.state.settings.clone());
    Ok(Json(view(&ctx, &settings)))
}

/// This node's runner view: what it has decrypted into memory and how far it has applied.
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
        node_id: ctx.cluster.node_id,
        huggingface_token_set: ctx.tokens.system_token_set(),
        applied_index: ctx
            .cluster
            .view
            .read(|a| a.last_applied.map(|l| l.index).unwrap_or(0)),
    }))
}
