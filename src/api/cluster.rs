//! Health, cluster status, membership: what an operator looks at first.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::request::parse_json;
use super::types::{
    AutopilotEvent, AutopilotStatus, GpuView, LeaveInput, LeftView, MemberRole, MemberView,
    RemovedView, StatusView,
};
use super::{ApiContext, ApiError, ReadMode};
use crate::cluster::MembershipView;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Which helix this node runs. Public, like `/healthz`: it says nothing about the cluster.
pub async fn version() -> impl IntoResponse {
    Json(serde_json::json!({"name": "helix", "version": env!("CARGO_PKG_VERSION")}))
}

/// `POST /api/v1/node/leave`.
pub const LEAVE_PATH: &str = "/api/v1/node/leave";

/// 200 when this node can serve; else 503 naming why (`Cluster::ready`).
pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    match ctx.cluster.ready() {
        Ok(leader) => (
            StatusCode::OK,
            Json(serde_json::json!({"ready": true, "leader_id": leader})),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "error": error})),
        ),
    }
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
                    last_contact_ms: m.last_contact.map(|d| d.as_millis() as u64),
                    lag: m.lag,
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
    let not_ready = ctx.cluster.ready().err();
    Ok(Json(StatusView {
        node_id: ctx.cluster.node_id(),
        leader_id: view.leader,
        term: view.term,
        commit_index: view.commit_index,
        applied_index: view.applied_index,
        members: members(&ctx, &view),
        quorum: view.quorum,
        ready: not_ready.is_none(),
        not_ready,
        autopilot: autopilot_status(&ctx),
    }))
}

/// Autopilot's setting, and its last change as the audit log records it.
fn autopilot_status(ctx: &ApiContext) -> AutopilotStatus {
    let last_action = ctx.replica().read(|s| {
        s.audit
            .values()
            .rev()
            .find(|e| e.kind.starts_with("autopilot_"))
            .map(|e| AutopilotEvent {
                kind: e.kind.clone(),
                node_id: e.target.as_deref().and_then(|t| t.parse().ok()),
                at: crate::time::rfc3339(e.at_ms),
            })
    });
    AutopilotStatus {
        dead_after_ms: ctx.cluster.autopilot_dead_after().as_millis() as u64,
        last_action,
    }
}

/// This node leaves the cluster (admin), then stops; see `Cluster::leave`.
pub async fn leave(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LeftView>, ApiError> {
    ctx.writer(&headers).await?.require_admin()?;
    let input: LeaveInput = if body.as_ref().is_ok_and(|b| b.is_empty()) {
        LeaveInput::default()
    } else {
        parse_json(body)?
    };
    let me = ctx.cluster.node_id();
    if let Some(wanted) = input.node_id.filter(|&id| id != me) {
        return Err(ApiError::Conflict(format!(
            "this is node {me}, not node {wanted}: send the request to node {wanted}'s own API"
        )));
    }
    ctx.cluster.leave().await?;
    Ok(Json(LeftView { left: me }))
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
