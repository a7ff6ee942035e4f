//! Joining and join tokens: the one unauthenticated write (a join, which brings its token),
//! the CA certificate anyone may fetch, and the tokens admins create, list and revoke.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;

use super::request::parse_json;
use super::types::{JoinTokenInput, JoinTokenView, NewJoinTokenView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::cluster::{AdmitRequest, JoinReply, JoinRequest};
use crate::crypto::JoinToken;
use crate::state::{Command, JoinTokenRecord};

/// Default lifetime of a join token made with `helix cluster join-token create`.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Longest lifetime a join token may have: a token that never expires is a standing key.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The cluster CA's certificate (public): what a joining node on plain loopback HTTP checks
/// against its token's fingerprint, and what an operator gives the CLI as `--ca-cert`.
#[utoipa::path(get, path = "/api/v1/cluster/ca", tag = "cluster", security(()),
    responses(
        (status = 200, description = "The cluster CA's certificate (PEM)", body = String, content_type = "application/x-pem-file"),
        (status = 503, description = "The cluster CA is not known here yet", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn ca(State(ctx): State<ApiContext>) -> Result<impl IntoResponse, ApiError> {
    let pem = ctx
        .replica()
        .read(|s| s.trust.ca.as_ref().map(|ca| ca.cert_pem.clone()))
        .ok_or_else(|| ApiError::Unavailable("the cluster CA is not known here yet".into()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem))
}

/// `helix node join`: admit a node that shows a valid join token; the leader signs the
/// certificate it asks for.
#[utoipa::path(post, path = "/api/v1/cluster/join", tag = "cluster", security(()),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "Admitted: the node's id and certificate, the CA, the members", body = JoinReply),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 403, description = "The join token is for another cluster, expired, used up, revoked or unknown", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state (e.g. a name already taken)", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn join(
    State(ctx): State<ApiContext>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JoinReply>, ApiError> {
    let request: JoinRequest = parse_json(body)?;
    let token =
        JoinToken::parse(&request.token).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ours = ctx
        .replica()
        .read(|s| s.trust.ca.as_ref().map(|ca| ca.fingerprint.clone()));
    if ours.is_some_and(|ours| ours != token.ca_fingerprint) {
        tracing::warn!(token = %token.id, "refused a join with a token for another cluster");
        return Err(ApiError::Forbidden(
            "join token is for another cluster (its CA fingerprint is not this cluster's)".into(),
        ));
    }
    let admit = AdmitRequest {
        token_id: token.id.clone(),
        secret_hash: token.secret_hash(),
        csr_pem: request.csr_pem,
        api_addr: request.api_addr,
        peer_addr: request.peer_addr,
        node_id: request.node_id,
        names: request.names,
    };
    match ctx.cluster.admit(admit).await {
        Ok(reply) => Ok(Json(reply)),
        Err(e) => {
            tracing::warn!(token = %token.id, error = %e, "refused a join");
            Err(e.into())
        }
    }
}

#[utoipa::path(post, path = "/api/v1/cluster/join-tokens", tag = "cluster",
    request_body(content = inline(Option<JoinTokenInput>), example = json!({"ttl": "1h", "uses": 1})),
    responses(
        (status = 200, description = "The new join token, shown this once", body = NewJoinTokenView),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn create_join_token(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NewJoinTokenView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    let input: JoinTokenInput = if body.as_ref().is_ok_and(|b| b.is_empty()) {
        JoinTokenInput::default()
    } else {
        parse_json(body)?
    };
    let ttl = match input.ttl.as_deref() {
        Some(text) => parse_ttl(text).map_err(ApiError::BadRequest)?,
        None => DEFAULT_TTL,
    };
    if input.uses == Some(0) {
        return Err(ApiError::BadRequest("uses must be at least 1".into()));
    }
    let fingerprint = ctx
        .replica()
        .read(|s| s.trust.ca.as_ref().map(|ca| ca.fingerprint.clone()))
        .ok_or_else(|| ApiError::Unavailable("the cluster CA is not known here yet".into()))?;
    let token = JoinToken::generate(&fingerprint);
    ctx.commit(
        &caller,
        Command::CreateJoinToken {
            id: token.id.clone(),
            secret_hash: token.secret_hash(),
            ttl_ms: ttl.as_millis() as i64,
            max_uses: input.uses,
        },
    )
    .await?;
    let record = ctx
        .replica()
        .read(|s| s.trust.join_tokens.get(&token.id).cloned())
        .ok_or_else(|| ApiError::Internal("the new join token is not in the state".into()))?;
    Ok(Json(NewJoinTokenView {
        view: view(&record),
        token: token.reveal(),
    }))
}

#[utoipa::path(get, path = "/api/v1/cluster/join-tokens", tag = "cluster",
    params(ReadMode),
    responses(
        (status = 200, description = "Every join token, never its secret", body = Vec<JoinTokenView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_join_tokens(
    State(ctx): State<ApiContext>,
    mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<JoinTokenView>>, ApiError> {
    ctx.reader(&headers, mode).await?.require_admin()?;
    Ok(Json(ctx.replica().read(|s| {
        let mut tokens: Vec<&JoinTokenRecord> = s.trust.join_tokens.values().collect();
        tokens.sort_by_key(|t| t.created_ms);
        tokens.into_iter().map(view).collect()
    })))
}

#[utoipa::path(delete, path = "/api/v1/cluster/join-tokens/{id}", tag = "cluster",
    params(("id" = String, Path, description = "The join token id")),
    responses(
        (status = 200, description = "The token as revoked", body = JoinTokenView),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn revoke_join_token(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<JoinTokenView>, ApiError> {
    let caller = ctx.writer(&headers).await?;
    caller.require_admin()?;
    ctx.commit(&caller, Command::RevokeJoinToken { id: id.clone() })
        .await?;
    let record = ctx
        .replica()
        .read(|s| s.trust.join_tokens.get(&id).cloned())
        .ok_or_else(|| ApiError::NotFound(format!("join token {id:?} not found")))?;
    Ok(Json(view(&record)))
}

fn view(token: &JoinTokenRecord) -> JoinTokenView {
    JoinTokenView {
        id: token.id.clone(),
        created: crate::time::rfc3339(token.created_ms),
        expires: crate::time::rfc3339(token.expires_ms),
        uses: token.uses,
        max_uses: token.max_uses,
        status: token.status(crate::time::now_ms()).name().to_string(),
        created_by: token.created_by.clone(),
    }
}

/// `90s`, `30m`, `1h`, `7d`: a positive whole number and a unit, at most a year.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("ttl {text:?} is not a duration like 90s, 30m, 1h or 7d");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let ttl = Duration::from_secs(number.checked_mul(unit_secs).ok_or_else(bad)?);
    if ttl.is_zero() {
        return Err(format!("ttl {text:?} must be more than zero"));
    }
    if ttl > MAX_TTL {
        return Err(format!(
            "ttl {text:?} is longer than the longest allowed, 365d"
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_takes_a_number_and_a_unit() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1", "1w", "0s", "400d", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
