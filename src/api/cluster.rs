//! Health, cluster status, membership: what an operator looks at first.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::types::{GpuView, MemberRole, MemberView, RemovedView, StatusView};
use super::{ApiContext, ApiError, ErrorBody, ReadMode};
use crate::cluster::MembershipView;

#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub name: &'static str,
    pub version: &'static str,
}

/// Whether this node is a member that knows its leader (and why not).
#[derive(Serialize, ToSchema)]
pub struct ReadyView {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process answers", body = HealthView)))]
pub async fn healthz() -> impl IntoResponse {
    Json(HealthView { status: "ok" })
}

/// Which helix this node runs. Public, like `/healthz`: it says nothing about the cluster.
#[utoipa::path(get, path = "/api/v1/version", tag = "health", security(()),
    responses((status = 200, description = "The helix version this node runs", body = VersionView)))]
pub async fn version() -> impl IntoResponse {
    Json(VersionView {
        name: "helix",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "A member that knows its leader", body = ReadyView),
        (status = 503, description = "Not ready, and why", body = ReadyView),
    ))]
pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let r = ctx.cluster.readiness();
    let error = match (r.storage_failure, r.member, r.leader) {
        (None, true, Some(leader)) => {
            return (
                StatusCode::OK,
                Json(ReadyView {
                    ready: true,
                    leader_id: Some(leader),
                    error: None,
                }),
            )
        }
        (Some(cause), _, _) => format!("storage failed: {cause}"),
        (None, true, None) => "no leader known".into(),
        (None, false, _) => "not a member yet".into(),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ReadyView {
            ready: false,
            leader_id: None,
            error: Some(error),
        }),
    )
}

/// The members, with what the replicated state says of each (addresses, GPUs, slots).
fn members(ctx: &ApiContext, view: &MembershipView) -> Vec<MemberView> {
    ctx.replica().read(|state| {
        view.members
            .iter()
            .map(|m| {
                let record = state.nodes.get(&m.id);
                MemberView {
                    id: m.id,
                    api_addr: record.map(|r| r.api_addr.clone()),
                    peer_addr: m.peer_addr.clone(),
                    voter: m.voter,
                    role: if m.voter {
                        MemberRole::Voter
                    } else {
                        MemberRole::Learner
                    },
                    leader: m.leader,
                    reachable: m.reachable,
                    applied_index: m.matched_index,
                    gpus: record
                        .map(|r| {
                            r.gpus
                                .iter()
                                .map(|g| GpuView {
                                    index: g.index,
                                    name: g.name.clone(),
                                    memory: g.memory,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    slots: state
                        .slots
                        .values()
                        .filter(|s| s.placement.as_ref().is_some_and(|p| p.node_id == m.id))
                        .map(|s| s.id.clone())
                        .collect(),
                }
            })
            .collect()
    })
}

#[utoipa::path(get, path = "/api/v1/cluster/status", tag = "cluster", params(ReadMode),
    responses(
        (status = 200, description = "Leader, term, indexes, members and quorum as this node sees them", body = StatusView),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
    ))]
pub async fn status(
    State(ctx): State<ApiContext>,
    _mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<StatusView>, ApiError> {
    // Status must work when the cluster is unhealthy, so it never waits on the leader.
    ctx.authenticate(&headers)?;
    let view = ctx.cluster.membership_view().await;
    Ok(Json(StatusView {
        node_id: ctx.cluster.node_id(),
        leader_id: view.leader,
        term: view.term,
        commit_index: view.commit_index,
        applied_index: view.applied_index,
        members: members(&ctx, &view),
        quorum: view.quorum,
    }))
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "cluster", params(ReadMode),
    responses(
        (status = 200, description = "The members, with their GPUs and slots", body = Vec<MemberView>),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
    ))]
pub async fn list_nodes(
    State(ctx): State<ApiContext>,
    _mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    ctx.authenticate(&headers)?;
    let view = ctx.cluster.membership_view().await;
    Ok(Json(members(&ctx, &view)))
}

/// Remove a member (admins only).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "The node id")),
    responses(
        (status = 200, description = "Removed", body = RemovedView),
        (status = 400, description = "The id is not a number, or the removal is refused (e.g. it would lose the quorum)", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such member", body = ErrorBody),
        (status = 409, description = "Conflicts with a membership change in progress", body = ErrorBody),
        (status = 503, description = "No leader or quorum reachable now", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn remove_node(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RemovedView>, ApiError> {
    ctx.writer(&headers).await?.require_admin()?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("node id {id:?} is not a number")))?;
    ctx.cluster.remove(id).await?;
    Ok(Json(RemovedView { removed: id }))
}
