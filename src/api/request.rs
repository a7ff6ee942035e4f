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

/// Extracted from the query string; a bad query is a 400 in our JSON error shape.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ReadMode {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<ReadMode>::from_request_parts(parts, state)
            .await
            .map(|q| q.0)
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
    }
}

impl ApiContext {
    /// Authenticate against the local replica. For reads, call [`ApiContext::read_barrier`]
    /// first so a just-revoked key is not accepted.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key_hash = hash_api_key(bearer(headers)?);
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

    /// Authenticate for a write: locally, and if this replica does not know the key yet (it
    /// may lag behind the write that created it), once more after catching up. `apply`
    /// re-checks the key at commit time anyway.
    pub async fn writer(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match self.authenticate(headers) {
            Ok(caller) => Ok(caller),
            Err(e) => {
                bearer(headers)?;
                if self.read_barrier(ReadMode::default()).await.is_err() {
                    return Err(e);
                }
                self.authenticate(headers)
            }
        }
    }

    /// Barrier, then authenticate: the usual start of a GET.
    pub async fn reader(&self, headers: &HeaderMap, mode: ReadMode) -> Result<Caller, ApiError> {
        // No key at all is refused without bothering the leader; a key is checked once the
        // replica is current, so a just-revoked key fails and a just-created one works.
        bearer(headers)?;
        self.read_barrier(mode).await?;
        self.authenticate(headers)
    }
}

/// The bearer key of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing API key: send the header 'Authorization: Bearer <key>'".into(),
            )
        })
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
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    // serde would fill a struct from an array by position; only objects name their fields.
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid field `{path}`: {inner}"))
        }
    })
}
