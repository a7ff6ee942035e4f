//! What a node does with each peer call: the one trait the peer server dispatches to, so
//! the protocol knows nothing of the cluster behind it.

use std::future::Future;

use super::message::*;
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, SnapshotAnswer, SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::state::Proposal;

/// What a node does with each peer call.
pub trait PeerHandler: Clone + Send + Sync + 'static {
    /// Why the certificate (node id, serial) of a connection must be refused, if it must.
    fn check_peer(&self, node: NodeId, serial: &str) -> Result<(), String>;
    fn append(&self, rpc: AppendRequest) -> impl Future<Output = AppendAnswer> + Send;
    fn vote(&self, rpc: VoteRequest) -> impl Future<Output = VoteAnswer> + Send;
    fn install_snapshot(&self, rpc: SnapshotRequest)
        -> impl Future<Output = SnapshotAnswer> + Send;
    fn pre_vote(&self, request: &PreVoteRequest) -> PreVoteResponse;
    /// On the leader: commit a write another node forwarded.
    fn write(
        &self,
        proposal: Proposal,
    ) -> impl Future<Output = Result<Written, ClusterError>> + Send;
    fn read_index(&self) -> impl Future<Output = Result<Option<u64>, ClusterError>> + Send;
    /// On the leader: admit a node with a join token and sign its certificate.
    fn admit(
        &self,
        request: AdmitRequest,
    ) -> impl Future<Output = Result<JoinReply, ClusterError>> + Send;
    /// An admitted node asks to be added as a learner (forwarded to the leader).
    fn add_learner(
        &self,
        request: AddLearnerRequest,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// The cluster key (hex), for an admitted node.
    fn cluster_key(&self) -> Result<String, ClusterError>;
    /// On the leader: a new certificate for member `node`.
    fn renew(
        &self,
        node: NodeId,
        request: RenewRequest,
    ) -> impl Future<Output = Result<String, ClusterError>> + Send;
    fn remove(&self, node: NodeId) -> impl Future<Output = Result<(), ClusterError>> + Send;
    fn progress(&self) -> Result<Progress, ClusterError>;
    /// The loopback port of replica `slot_id` when it runs on this node and is ready, else
    /// why not.
    fn local_replica_port(&self, slot_id: &str) -> Result<u16, String>;
}
