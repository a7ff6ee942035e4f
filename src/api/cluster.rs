//! Health, cluster status, membership: what an operator looks at first.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::types::{GpuView, MemberRole, MemberView, RemovedView, StatusView};
use super::{ApiContext, ApiError, ReadMode};
use crate::cluster::MembershipView;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Which helix this node runs. Public, like `/healthz`: it says nothing about the cluster.
pub async fn version() -> impl IntoResponse {
    Json(serde_json::json!({"name": "helix", "version": env!("CARGO_PKG_VERSION")}))
}

pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let r = ctx.cluster.readiness();
    let error = match (r.storage_failure, r.member, r.leader) {
        (None, true, Some(leader)) => {
            return (
                StatusCode::OK,
                Json(serde_json::json!({"ready": true, "leader_id": leader})),
            )
        }
        (Some(cause), _, _) => format!("storage failed: {cause}"),
        (None, true, None) => "no leader known".into(),
        (None, false, _) => "not a member yet".into(),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"ready": false, "error": error})),
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

pub async fn list_nodes(
    State(ctx): State<ApiContext>,
    _mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    ctx.authenticate(&headers)?;
    let view = ctx.cluster.membership_view().await;
    Ok(Json(members(&ctx, &view)))
}

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
