//! What this node does with the peer calls other members make on it.

use super::{Cluster, ClusterError};
use crate::peer::{
    AddLearnerRequest, AdmitRequest, JoinReply, PeerHandler, PreVoteRequest, PreVoteResponse,
    Progress, RenewRequest, Written,
};
use crate::raft::{
    AppendAnswer, AppendRequest, NodeId, SnapshotAnswer, SnapshotRequest, VoteAnswer, VoteRequest,
};
use crate::state::{Proposal, SlotState};

impl PeerHandler for Cluster {
    fn check_peer(&self, node: NodeId, serial: &str) -> Result<(), String> {
        Cluster::check_peer(self, node, serial)
    }

    async fn append(&self, rpc: AppendRequest) -> AppendAnswer {
        self.inner
            .raft
            .append(rpc, || self.heard_from_leader())
            .await
    }

    async fn vote(&self, rpc: VoteRequest) -> VoteAnswer {
        self.inner.raft.vote(rpc, || self.heard_from_leader()).await
    }

    async fn install_snapshot(&self, rpc: SnapshotRequest) -> SnapshotAnswer {
        self.inner
            .raft
            .install_snapshot(rpc, || self.heard_from_leader())
            .await
    }

    fn pre_vote(&self, request: &PreVoteRequest) -> PreVoteResponse {
        self.pre_vote_local(request)
    }

    async fn write(&self, proposal: Proposal) -> Result<Written, ClusterError> {
        self.leading()?;
        self.write_local(proposal).await
    }

    async fn read_index(&self) -> Result<Option<u64>, ClusterError> {
        self.leading()?;
        self.read_index_local().await
    }

    async fn admit(&self, request: AdmitRequest) -> Result<JoinReply, ClusterError> {
        self.leading()?;
        self.admit_local(request).await
    }

    async fn add_learner(&self, request: AddLearnerRequest) -> Result<(), ClusterError> {
        self.leading()?;
        self.add_learner_local(request).await
    }

    fn cluster_key(&self) -> Result<String, ClusterError> {
        Ok(self.cluster_key_hex())
    }

    async fn renew(&self, node: NodeId, request: RenewRequest) -> Result<String, ClusterError> {
        self.leading()?;
        self.renew_local(node, request).await
    }

    async fn remove(&self, node: NodeId) -> Result<(), ClusterError> {
        self.leading()?;
        self.remove_local(node).await
    }

    fn progress(&self) -> Result<Progress, ClusterError> {
        self.progress_local()
    }

    fn local_replica_port(&self, slot_id: &str) -> Result<u16, String> {
        let me = self.node_id();
        self.replica().read(|s| {
            let slot = s
                .slots
                .get(slot_id)
                .ok_or_else(|| format!("no slot {slot_id:?}"))?;
            if slot.placement.as_ref().map(|p| p.node_id) != Some(me) {
                return Err(format!("slot {slot_id:?} does not run on node {me}"));
            }
            match (slot.status.state, slot.status.port) {
                (SlotState::Running, Some(port)) => Ok(port),
                (state, _) => Err(format!(
                    "slot {slot_id:?} is {}, not ready",
                    format!("{state:?}").to_lowercase()
                )),
            }
        })
    }
}

impl Cluster {
    /// For the leader-only calls of other nodes: a leader whose storage failed leads no more,
    /// and "not the leader" makes the caller retry with the next one.
    fn leading(&self) -> Result<(), ClusterError> {
        match self.inner.raft.storage_failure() {
            Some(_) => Err(ClusterError::NotLeader { leader_id: None }),
            None => Ok(()),
        }
    }
}
