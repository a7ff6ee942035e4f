//! The peer transport, client side: HTTP with pooled keep-alive connections and bincode
//! bodies. Every request carries the cluster credential; a peer without it gets 401.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{NodeId, TypeConfig};
use crate::state::codec;

pub const APPEND_PATH: &str = "/raft/append";
pub const VOTE_PATH: &str = "/raft/vote";
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made: the peer is down or partitioned away. The request was
    /// certainly not delivered.
    #[error("peer {addr} unreachable: {message}")]
    Unreachable { addr: String, message: String },
    /// The connection broke after the request may have been delivered: outcome unknown.
    #[error("connection to peer {addr} failed: {message}")]
    Broken { addr: String, message: String },
    #[error("peer {addr} did not answer in time")]
    Timeout { addr: String },
    #[error("peer {addr} refused our cluster credential")]
    Unauthorized { addr: String },
    #[error("peer {addr} answered {status}: {message}")]
    BadResponse {
        addr: String,
        status: u16,
        message: String,
    },
}

/// A cheap-to-clone client for talking to peers. One connection pool per process.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    /// `Bearer <peer credential>`, derived from the cluster secret.
    authorization: String,
}

impl PeerClient {
    pub fn new(peer_credential: &str) -> PeerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client configuration is static and valid");
        PeerClient {
            http,
            authorization: format!("Bearer {peer_credential}"),
        }
    }

    /// POST `request` to `http://{addr}{path}` and decode the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let result = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(codec::encode(request))
            .send()
            .await;
        let response = result.map_err(|e| classify(addr, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| classify(addr, e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(TransportError::Unauthorized { addr: addr.into() });
        }
        if !status.is_success() {
            return Err(TransportError::BadResponse {
                addr: addr.into(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        codec::decode(&body).map_err(|e| TransportError::BadResponse {
            addr: addr.into(),
            status: status.as_u16(),
            message: e.to_string(),
        })
    }
}

fn classify(addr: &str, e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout { addr: addr.into() }
    } else if e.is_connect() {
        TransportError::Unreachable {
            addr: addr.into(),
            message: e.to_string(),
        }
    } else {
        TransportError::Broken {
            addr: addr.into(),
            message: e.to_string(),
        }
    }
}

/// When each peer last answered a Raft RPC. The leader heartbeats every member, so on the
/// leader this says who is reachable (and, for the runner, who is lost).
#[derive(Clone, Default)]
pub struct PeerContact {
    last_answer: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
}

impl PeerContact {
    fn record(&self, target: NodeId) {
        self.last_answer
            .lock()
            .expect("peer contact lock poisoned")
            .insert(target, Instant::now());
    }

    /// How long ago `target` last answered us, if it ever did.
    pub fn since_last_answer(&self, target: NodeId) -> Option<Duration> {
        self.last_answer
            .lock()
            .expect("peer contact lock poisoned")
            .get(&target)
            .map(|t| t.elapsed())
    }
}

/// Hands openraft one connection object per target; they all share the client's pool.
#[derive(Clone)]
pub struct NetworkFactory {
    pub client: PeerClient,
    pub contact: PeerContact,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            client: self.client.clone(),
            contact: self.contact.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

pub struct PeerConnection {
    client: PeerClient,
    contact: PeerContact,
    target: NodeId,
    addr: String,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .client
            .call(&self.addr, path, request, option.hard_ttl())
            .await
            .map_err(|e| match e {
                TransportError::Unreachable { .. } | TransportError::Broken { .. } => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.contact.record(self.target);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(APPEND_PATH, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(VOTE_PATH, &rpc, &option).await
    }
}
