//! Health, cluster status, membership: what an operator looks at first.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::request::parse_json;
use super::types::{
    AutopilotEvent, AutopilotStatus, GpuView, LeaveInput, LeftView, MemberRole, MemberView,
    RemovedView, StatusView,
};
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
    /// Whether this node votes or only learns, once it is a member. Both serve the whole API
    /// (a learner forwards writes like a follower does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<MemberRole>,
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

/// `POST /api/v1/node/leave`.
pub const LEAVE_PATH: &str = "/api/v1/node/leave";

/// 200 when this node can serve; else 503 naming why (`Cluster::ready`).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "A member that knows its leader and can serve", body = ReadyView),
        (status = 503, description = "Not ready, and why: storage failed, removed, not a member \
            yet, no leader known, cut off from the quorum, the leader silent for the stall tolerance, too far behind", body = ReadyView),
    ))]
pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let membership = ctx.cluster.readiness();
    let role = membership.member.then_some(if membership.voter {
        MemberRole::Voter
    } else {
        MemberRole::Learner
    });
    match ctx.cluster.ready() {
        Ok(leader) => (
            StatusCode::OK,
            Json(ReadyView {
                ready: true,
                leader_id: Some(leader),
                role,
                error: None,
            }),
        ),
        Err(mut error) => {
            if let Some(slots) = ctx.fenced.slots() {
                error.push_str(&format!(
                    "; its runner fenced its slots ({slots} stopped until it is back in touch)"
                ));
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ReadyView {
                    ready: false,
                    leader_id: None,
                    role,
                    error: Some(error),
                }),
            )
        }
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
#[utoipa::path(post, path = "/api/v1/node/leave", tag = "cluster",
    request_body(content = Option<LeaveInput>, description = "Optionally, this node's id, as a guard"),
    responses(
        (status = 200, description = "This node left the cluster and is stopping", body = LeftView),
        (status = 400, description = "A body that is not a leave request", body = ErrorBody),
        (status = 401, description = "No API key, or one that is unknown, revoked or disabled", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The body names another node than this one", body = ErrorBody),
        (status = 413, description = "The body is over the 1 MiB limit", body = ErrorBody),
        (status = 503, description = "No leader, or no other voter caught up to hand over to", body = ErrorBody),
    ))]
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
