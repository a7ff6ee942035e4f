//! The peer API, server side: Raft RPCs and the leader-only cluster operations that other
//! nodes forward here. Every route demands the cluster credential.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cluster::{
    Cluster, JoinRequest, JOIN_PATH, PROGRESS_PATH, READ_INDEX_PATH, REMOVE_PATH, WRITE_PATH,
};
use super::election::{PreVoteRequest, PRE_VOTE_PATH};
use crate::crypto::credential_matches;
use crate::raft::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};
use crate::raft::{NodeId, TypeConfig};
use crate::state::{codec, Proposal};

/// Snapshot chunks and append batches can be large; this only bounds a runaway peer.
const PEER_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(cluster: Cluster) -> Router {
    let credential = cluster.secret.peer_credential();
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(PRE_VOTE_PATH, post(pre_vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(WRITE_PATH, post(write))
        .route(READ_INDEX_PATH, post(read_index))
        .route(JOIN_PATH, post(join))
        .route(REMOVE_PATH, post(remove))
        .route(PROGRESS_PATH, post(progress))
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
        .layer(middleware::from_fn(move |req, next| {
            require_credential(credential.clone(), req, next)
        }))
        .with_state(cluster)
}

async fn require_credential(expected: String, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if credential_matches(presented, &expected) {
        return next.run(req).await;
    }
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    tracing::warn!(
        from = %from,
        path = %req.uri().path(),
        "rejected peer request without a valid cluster credential"
    );
    (
        StatusCode::UNAUTHORIZED,
        "missing or wrong cluster credential",
    )
        .into_response()
}

fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    codec::decode(body)
        .map_err(|e| Box::new((StatusCode::BAD_REQUEST, e.to_string()).into_response()))
}

fn encode<T: Serialize>(value: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(value),
    )
        .into_response()
}

async fn append(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(rpc) => {
            // A request from the leader we follow is contact, even before our (possibly slow)
            // flush answers it; a stale leader's is not.
            if c.raft.metrics().borrow().vote <= rpc.vote {
                c.leader_contact.heard();
            }
            let answer = c.raft.append_entries(rpc).await;
            // And again once answered, so our own slow flush does not count as silence.
            if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                c.leader_contact.heard();
            }
            encode(&answer)
        }
        Err(r) => *r,
    }
}

async fn vote(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => {
            let answer = c.raft.vote(rpc).await;
            // As in Raft: granting a vote restarts the election timer, so we neither campaign
            // nor grant pre-votes while the candidate we voted for takes over.
            if matches!(&answer, Ok(a) if a.vote_granted) {
                c.leader_contact.heard();
            }
            encode(&answer)
        }
        Err(r) => *r,
    }
}

async fn snapshot(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(rpc) => {
            let leader_vote = rpc.vote;
            let answer = c.raft.install_snapshot(rpc).await;
            if matches!(&answer, Ok(a) if a.vote == leader_vote) {
                c.leader_contact.heard();
            }
            encode(&answer)
        }
        Err(r) => *r,
    }
}

async fn pre_vote(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<PreVoteRequest>(&body) {
        Ok(req) => encode(&c.pre_vote_local(&req)),
        Err(r) => *r,
    }
}

async fn write(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<Proposal>(&body) {
        Ok(p) => encode(&c.write_local(p).await),
        Err(r) => *r,
    }
}

async fn read_index(State(c): State<Cluster>) -> Response {
    encode(&c.read_index_local().await)
}

async fn join(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<JoinRequest>(&body) {
        Ok(req) => encode(&c.join_local(req).await),
        Err(r) => *r,
    }
}

async fn remove(State(c): State<Cluster>, body: Bytes) -> Response {
    match decode::<NodeId>(&body) {
        Ok(id) => encode(&c.remove_local(id).await),
        Err(r) => *r,
    }
}

async fn progress(State(c): State<Cluster>) -> Response {
    encode(&c.progress_local())
}
