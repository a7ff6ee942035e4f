//! What every request needs before its handler runs: who is calling, how fresh a read must
//! be, and a JSON body parsed strictly (unknown fields and wrong types are named in a 400).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{ApiContext, ApiError, BODY_LIMIT};
use crate::crypto::hash_api_key;
use crate::state::{Command, Proposal, Reply, User};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Carried in proposals so `apply` re-checks the key at commit time.
    pub key_hash: String,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this requires an admin API key".into()))
        }
    }
}

/// `?stale=true` reads this node's replica without asking the leader.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMode {
    #[serde(default)]
    pub stale: bool,
}

impl ApiContext {
    /// Authenticate against the local replica. For reads, call [`ApiContext::read_barrier`]
    /// first so a just-revoked key is not accepted.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing API key: send the header 'Authorization: Bearer <key>'".into(),
                )
            })?;
        let key_hash = hash_api_key(key);
        let user = self
            .cluster
            .view
            .read(|a| a.state.user_by_key_hash(&key_hash).cloned())
            .ok_or_else(|| ApiError::Unauthorized("API key is unknown or revoked".into()))?;
        Ok(Caller { user, key_hash })
    }

    /// Unless the read is stale, wait until this replica reflects every committed write.
    pub async fn read_barrier(&self, mode: ReadMode) -> Result<(), ApiError> {
        if mode.stale {
            return Ok(());
        }
        self.cluster
            .linearizable_barrier()
            .await
            .map_err(Into::into)
    }

    /// Propose `command` as `caller`, then wait until this node has applied it so the
    /// answer reflects the write. Authorization is checked here first (fail fast) and again
    /// by `apply` at commit time.
    pub async fn commit(&self, caller: &Caller, command: Command) -> Result<Reply, ApiError> {
        self.cluster
            .view
            .read(|a| a.state.authorize(&caller.user, &command))?;
        let written = self
            .cluster
            .write(Proposal {
                actor: Some(caller.key_hash.clone()),
                at_ms: crate::time::now_ms(),
                command,
            })
            .await?;
        let reply = written.outcome?;
        self.cluster.wait_applied(written.log_index).await?;
        Ok(reply)
    }

    /// Barrier, then authenticate: the usual start of a GET.
    pub async fn reader(&self, headers: &HeaderMap, mode: ReadMode) -> Result<Caller, ApiError> {
        self.read_barrier(mode).await?;
        self.authenticate(headers)
    }
}

/// Parse a JSON body strictly. `body` is the raw extraction result, so an oversized body
/// becomes our 413 and not the framework's plain-text one.
pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(BODY_LIMIT)
        } else {
            ApiError::BadRequest(format!("cannot read request body: {e}"))
        }
    })?;
    if bytes.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON body: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid field `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    Ok(value)
}
