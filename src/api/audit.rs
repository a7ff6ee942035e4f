//! `GET /api/v1/audit`: the audit log, filtered by actor, kind and time. Admins only.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::types::AuditView;
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::state::{AuditEntry, AuditFilter};

/// How the cluster's own entries are asked for in `actor=` (user ids are random hex).
const CLUSTER_ACTOR: &str = "cluster";

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        AuditView {
            seq: e.seq,
            at: crate::time::rfc3339(e.at_ms),
            actor_user_id: e.actor_user_id.clone(),
            kind: e.kind.clone(),
            level: e.level.clone(),
            target: e.target.clone(),
        }
    }
}

/// Oldest first; with `limit`, the newest that many of those matching.
#[utoipa::path(get, path = "/api/v1/audit", tag = "operator",
    params(("actor" = Option<String>, Query, min_length = 1, description = "A user id, or `cluster` for the cluster's own entries"), ("kind" = Option<String>, Query, min_length = 1, description = "An entry kind, e.g. `node_removed`"), ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339 time"), ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339 time"), ("limit" = Option<u64>, Query, minimum = 1, description = "The newest this many"), ("stale" = Option<bool>, Query, description = "Read this node's replica as it is, without asking the leader")),
    responses(
        (status = 200, description = "Changes of secrets and permissions, oldest first", body = Vec<AuditView>),
        (status = 400, description = "Bad input, named in `error`", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now (or, for a token, this node cannot seal it yet)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn list_audit(
    State(ctx): State<ApiContext>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let (filter, mode) = parse_query(pairs)?;
    ctx.reader(&headers, mode).await?.require_admin()?;
    Ok(Json(ctx.replica().read(|s| {
        s.audit
            .select(&filter)
            .into_iter()
            .map(AuditView::from)
            .collect()
    })))
}

/// The filter and read mode a query string asks for; a bad parameter is named in the 400.
fn parse_query(pairs: Vec<(String, String)>) -> Result<(AuditFilter, ReadMode), ApiError> {
    let mut filter = AuditFilter::default();
    let mut mode = ReadMode::default();
    for (name, value) in pairs {
        let bad = |why: &str| ApiError::BadRequest(format!("query parameter {name:?}: {why}"));
        match name.as_str() {
            "actor" if value == CLUSTER_ACTOR => filter.actor = Some(None),
            "actor" if !value.is_empty() => filter.actor = Some(Some(value)),
            "kind" if !value.is_empty() => filter.kind = Some(value),
            "actor" | "kind" => return Err(bad("must not be empty")),
            "since" => filter.since_ms = Some(parse_time(&value).ok_or_else(|| bad(RFC3339))?),
            "until" => filter.until_ms = Some(parse_time(&value).ok_or_else(|| bad(RFC3339))?),
            "limit" => {
                let n = value.parse::<usize>().ok().filter(|n| *n > 0);
                filter.limit = Some(n.ok_or_else(|| bad("must be a positive whole number"))?);
            }
            "stale" => {
                mode.stale = value.parse().map_err(|_| bad("must be true or false"))?;
            }
            _ => {
                return Err(bad(
                    "unknown; use actor, kind, since, until, limit or stale",
                ))
            }
        }
    }
    Ok((filter, mode))
}

const RFC3339: &str = "must be an RFC 3339 time, e.g. 2026-12-01T03:00:00Z";

fn parse_time(value: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(value, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<AuditFilter, String> {
        let pairs = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_query(pairs)
            .map(|(f, _)| f)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_parameter_is_read() {
        let f = parse(&[
            ("actor", "cluster"),
            ("kind", "node_removed"),
            ("since", "1970-01-01T00:00:01Z"),
            ("until", "1970-01-01T00:00:02.5+00:00"),
            ("limit", "3"),
        ])
        .unwrap();
        let expected = AuditFilter {
            actor: Some(None),
            kind: Some("node_removed".into()),
            since_ms: Some(1000),
            until_ms: Some(2500),
            limit: Some(3),
        };
        assert_eq!(f, expected);
        assert_eq!(
            parse(&[("actor", "ab12")]).unwrap().actor,
            Some(Some("ab12".into()))
        );
    }

    #[test]
    fn a_bad_parameter_is_named() {
        for (name, value) in [
            ("since", "yesterday"),
            ("until", "2026-13-01T00:00:00Z"),
            ("limit", "0"),
            ("limit", "-1"),
            ("actor", ""),
            ("stale", "maybe"),
            ("colour", "red"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert!(err.contains(&format!("{name:?}")), "{name}={value}: {err}");
        }
    }
}
