//! What every request needs before its handler runs: who is calling, how fresh a read must
//! be, and a JSON body parsed strictly (unknown fields and wrong types are named in a 400).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{ApiContext, ApiError, BODY_LIMIT};
use crate::cluster::Consistency;
use crate::crypto::hash_api_key;
use crate::raft::StateView;
use crate::state::{admin_only, Command, Reply, StateError, User};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Carried in proposals so `apply` re-checks the key at commit time.
    pub key_hash: String,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        Ok(admin_only(&self.user)?)
    }

    /// A user id from a path, where `me` names the caller.
    pub fn user_id_of(&self, raw: &str) -> String {
        if raw == "me" {
            self.user.id.clone()
        } else {
            raw.to_string()
        }
    }
}

/// `?stale=true` reads this node's replica without asking the leader.
#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadMode {
    /// Read this node's replica as it is, without asking the leader (faster, may lag).
    #[serde(default)]
    #[param(required = false)]
    pub stale: bool,
}

impl ReadMode {
    pub fn consistency(self) -> Consistency {
        if self.stale {
            Consistency::Stale
        } else {
            Consistency::Linearizable
        }
    }
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
    /// This node's replica, without asking anyone.
    pub fn replica(&self) -> &StateView {
        self.cluster.replica()
    }

    /// Authenticate against the local replica as it is.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key_hash = hash_api_key(bearer(headers)?);
        let user = self
            .replica()
            .read(|s| s.user_by_key_hash(&key_hash).cloned())
            .ok_or(StateError::Unauthenticated)?;
        self.key_use.note(&key_hash);
        Ok(Caller { user, key_hash })
    }

    /// Authenticate for a write: a key this replica does not know yet (it may lag behind
    /// the write that created it) is looked up again once caught up. `apply` re-checks the
    /// key at commit time anyway.
    pub async fn writer(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let key_hash = hash_api_key(bearer(headers)?);
        let user = self
            .cluster
            .check_current(|s| {
                s.user_by_key_hash(&key_hash)
                    .cloned()
                    .ok_or(StateError::Unauthenticated)
            })
            .await?;
        self.key_use.note(&key_hash);
        Ok(Caller { user, key_hash })
    }

    /// Catch up as `mode` asks, then authenticate: the usual start of a GET. A key is
    /// checked on a current replica, so a just-revoked key fails and a just-created one
    /// works.
    pub async fn reader(&self, headers: &HeaderMap, mode: ReadMode) -> Result<Caller, ApiError> {
        // No key at all is refused without bothering the leader.
        bearer(headers)?;
        self.cluster.read(mode.consistency()).await?;
        self.authenticate(headers)
    }

    /// Commit `command` as `caller`; the answer reflects the write on this node.
    pub async fn commit(&self, caller: &Caller, command: Command) -> Result<Reply, ApiError> {
        Ok(self.cluster.commit_as(&caller.key_hash, command).await?)
    }
}

/// The bearer key of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    crate::server::bearer(headers).ok_or_else(|| {
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
