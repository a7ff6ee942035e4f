//! Health, cluster status, membership: what an operator looks at first.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::request::parse_json;
use super::{ApiContext, ApiError, ReadMode};
use crate::crypto::credential_matches;
use crate::node::cluster::{JoinReply, JoinRequest, Progress};

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let metrics = ctx.cluster.raft.metrics().borrow().clone();
    let member = metrics
        .membership_config
        .membership()
        .get_node(&ctx.cluster.node_id)
        .is_some();
    let leader = metrics.current_leader;
    if member && leader.is_some() {
        (
            StatusCode::OK,
            Json(serde_json::json!({"ready": true, "leader_id": leader})),
        )
    } else {
        let why = if member {
            "no leader known"
        } else {
            "not a member yet"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "error": why})),
        )
    }
}

/// One member as shown by `cluster status` and `node list`.
#[derive(Debug, Serialize)]
pub struct MemberView {
    id: u64,
    api_addr: Option<String>,
    peer_addr: String,
    voter: bool,
    role: &'static str,
    leader: bool,
    /// Answered the leader recently; `null` when no leader could be asked.
    reachable: Option<bool>,
    /// Highest log index the leader knows replicated there.
    applied_index: Option<u64>,
    /// GPUs the node published.
    gpus: Vec<GpuView>,
    /// Slots placed on the node.
    slots: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GpuView {
    index: u32,
    name: String,
    memory: u64,
}

#[derive(Debug, Serialize)]
pub struct QuorumView {
    voters: usize,
    needed: usize,
    reachable_voters: Option<usize>,
    healthy: bool,
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    node_id: u64,
    leader_id: Option<u64>,
    term: u64,
    commit_index: u64,
    applied_index: u64,
    members: Vec<MemberView>,
    quorum: QuorumView,
}

async fn members(ctx: &ApiContext) -> (Vec<MemberView>, Option<Progress>) {
    let metrics = ctx.cluster.raft.metrics().borrow().clone();
    let progress = ctx.cluster.progress().await;
    let fresh_ms = ctx.cluster.tuning.reachable_within().as_millis() as u64;
    let membership = metrics.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let (records, slots) = ctx
        .cluster
        .view
        .read(|a| (a.state.nodes.clone(), a.state.slots.clone()));
    let list = membership
        .nodes()
        .map(|(id, node)| {
            let p = progress.as_ref().and_then(|p| p.members.get(id));
            let voter = voters.contains(id);
            MemberView {
                id: *id,
                api_addr: records.get(id).map(|r| r.api_addr.clone()),
                peer_addr: node.addr.clone(),
                voter,
                role: if voter { "voter" } else { "learner" },
                leader: metrics.current_leader == Some(*id),
                reachable: progress.as_ref().map(|_| {
                    p.and_then(|p| p.since_last_answer_ms)
                        .is_some_and(|ms| ms <= fresh_ms)
                }),
                applied_index: p.and_then(|p| p.matched_index),
                gpus: records
                    .get(id)
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
                slots: slots
                    .values()
                    .filter(|s| s.placement.as_ref().is_some_and(|p| p.node_id == *id))
                    .map(|s| s.id.clone())
                    .collect(),
            }
        })
        .collect();
    (list, progress)
}

pub async fn status(
    State(ctx): State<ApiContext>,
    _mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<StatusView>, ApiError> {
    // Status must work when the cluster is unhealthy, so it never waits on the leader.
    ctx.authenticate(&headers)?;
    let metrics = ctx.cluster.raft.metrics().borrow().clone();
    let (members, progress) = members(&ctx).await;
    let voters = members.iter().filter(|m| m.voter).count();
    let needed = voters / 2 + 1;
    let reachable_voters = progress.as_ref().map(|_| {
        members
            .iter()
            .filter(|m| m.voter && m.reachable == Some(true))
            .count()
    });
    Ok(Json(StatusView {
        node_id: ctx.cluster.node_id,
        leader_id: metrics.current_leader,
        term: metrics.current_term,
        commit_index: progress
            .as_ref()
            .map(|p| p.commit_index)
            .unwrap_or_else(|| metrics.last_applied.map(|l| l.index).unwrap_or(0)),
        applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
        quorum: QuorumView {
            voters,
            needed,
            reachable_voters,
            healthy: reachable_voters.is_some_and(|r| r >= needed),
        },
        members,
    }))
}

pub async fn list_nodes(
    State(ctx): State<ApiContext>,
    _mode: ReadMode,
    headers: HeaderMap,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    ctx.authenticate(&headers)?;
    Ok(Json(members(&ctx).await.0))
}

pub async fn remove_node(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    ctx.writer(&headers).await?.require_admin()?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("node id {id:?} is not a number")))?;
    ctx.cluster.remove(id).await?;
    Ok(Json(serde_json::json!({ "removed": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    node_id: Option<u64>,
    api_addr: String,
    peer_addr: String,
    #[serde(default)]
    add: bool,
}

/// Called by `helix node join`: the bearer is the peer credential derived from the join
/// token, so only holders of the token can join.
pub async fn join(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JoinReply>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !credential_matches(presented, &ctx.cluster.secret.peer_credential()) {
        tracing::warn!("rejected a join request with a wrong join token");
        return Err(ApiError::Unauthorized(
            "join token is not valid for this cluster".into(),
        ));
    }
    let body: JoinBody = parse_json(body)?;
    for (field, addr) in [("api_addr", &body.api_addr), ("peer_addr", &body.peer_addr)] {
        addr.parse::<std::net::SocketAddr>()
            .map_err(|_| ApiError::BadRequest(format!("{field} {addr:?} is not HOST:PORT")))?;
    }
    let reply = ctx
        .cluster
        .join(JoinRequest {
            node_id: body.node_id,
            api_addr: body.api_addr,
            peer_addr: body.peer_addr,
            add: body.add,
        })
        .await?;
    Ok(Json(reply))
}

pub async fn join_token(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The cluster secret: only for a key that is valid as of now, not as of this replica.
    ctx.reader(&headers, ReadMode::default())
        .await?
        .require_admin()?;
    Ok(Json(
        serde_json::json!({ "join_token": ctx.cluster.secret.join_token() }),
    ))
}
