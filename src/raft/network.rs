//! openraft's network, over whatever carries the Raft RPCs between nodes: a
//! [`RaftTransport`] (helix's peer client implements it).

// The error types are openraft's, fixed by its `RaftNetwork` trait.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse, VoteResponse};
use openraft::BasicNode;

use super::types::{
    AppendAnswer, AppendRequest, NodeId, SnapshotAnswer, SnapshotRequest, TypeConfig, VoteAnswer,
    VoteRequest,
};

/// Why a Raft RPC got no answer from the peer's Raft.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcFailure {
    /// The peer is down or cut off (openraft backs off before trying it again).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Anything else: a timeout, a refusal, an answer that could not be read.
    #[error("{0}")]
    Failed(String),
}

/// Carries the three Raft RPCs to member `target` at `addr` and brings back its Raft's
/// answer, within `ttl`.
pub trait RaftTransport: Clone + Send + Sync + 'static {
    fn append(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &AppendRequest,
        ttl: Duration,
    ) -> impl Future<Output = Result<AppendAnswer, RpcFailure>> + Send;

    fn vote(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &VoteRequest,
        ttl: Duration,
    ) -> impl Future<Output = Result<VoteAnswer, RpcFailure>> + Send;

    fn install_snapshot(
        &self,
        target: NodeId,
        addr: &str,
        rpc: &SnapshotRequest,
        ttl: Duration,
    ) -> impl Future<Output = Result<SnapshotAnswer, RpcFailure>> + Send;
}

/// Hands openraft one connection object per target; they all share the transport.
pub(super) struct NetworkFactory<T> {
    transport: T,
}

impl<T> NetworkFactory<T> {
    pub(super) fn new(transport: T) -> NetworkFactory<T> {
        NetworkFactory { transport }
    }
}

impl<T: RaftTransport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection<T> {
        Connection {
            transport: self.transport.clone(),
            target,
            addr: node.addr.clone(),
            silent_since: None,
        }
    }
}

pub(super) struct Connection<T> {
    transport: T,
    target: NodeId,
    addr: String,
    /// Since when, and after how many failed RPCs, the target has not answered: its silence
    /// is logged when it starts and when it ends, not at every retry.
    silent_since: Option<(Instant, u64)>,
}

type RpcResult<R, E = openraft::error::Infallible> =
    Result<R, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl<T> Connection<T> {
    fn answer<R, E: std::error::Error>(
        &mut self,
        delivered: Result<Result<R, RaftError<NodeId, E>>, RpcFailure>,
    ) -> RpcResult<R, E> {
        self.note_silence(delivered.as_ref().err());
        match delivered {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e @ RpcFailure::Unreachable(_)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e @ RpcFailure::Failed(_)) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl<T> Connection<T> {
    fn note_silence(&mut self, failure: Option<&RpcFailure>) {
        match (failure, &mut self.silent_since) {
            (Some(failure), None) => {
                // Routine while a member restarts; `cluster status` shows it if it lasts.
                tracing::info!(
                    target = self.target,
                    addr = %self.addr,
                    "member {} does not answer ({failure}); retrying",
                    self.target
                );
                self.silent_since = Some((Instant::now(), 1));
            }
            (Some(_), Some((_, failures))) => *failures += 1,
            (None, Some((since, failures))) => {
                tracing::info!(
                    target = self.target,
                    "member {} answers again after {:.1} s and {failures} failed requests",
                    self.target,
                    since.elapsed().as_secs_f64()
                );
                self.silent_since = None;
            }
            (None, None) => {}
        }
    }
}

impl<T: RaftTransport> RaftNetwork<TypeConfig> for Connection<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendRequest,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let delivered = self
            .transport
            .append(self.target, &self.addr, &rpc, option.hard_ttl())
            .await;
        self.answer(delivered)
    }

    async fn install_snapshot(
        &mut self,
        rpc: SnapshotRequest,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let delivered = self
            .transport
            .install_snapshot(self.target, &self.addr, &rpc, option.hard_ttl())
            .await;
        self.answer(delivered)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let delivered = self
            .transport
            .vote(self.target, &self.addr, &rpc, option.hard_ttl())
            .await;
        self.answer(delivered)
    }
}
