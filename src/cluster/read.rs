//! Reads: from this node's replica, after making sure it is current when asked to.

use super::quorum::Action;
use super::{Cluster, ClusterError};
use crate::raft::StateView;
use crate::state::State;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began, whichever node took it:
    /// the leader confirms its read index with a quorum and this node applies up to it
    /// (etcd's read index).
    Linearizable,
    /// This node's replica as it is: fast, available without a quorum, possibly behind.
    Stale,
}

impl Cluster {
    /// This node's state, once it is as fresh as `consistency` asks.
    /// A node whose storage failed still answers stale reads, from what it had applied:
    /// that is committed state, only frozen.
    pub async fn read(&self, consistency: Consistency) -> Result<&StateView, ClusterError> {
        if consistency == Consistency::Linearizable {
            if let Some(cause) = self.inner.raft.storage_failure() {
                return Err(ClusterError::Unavailable(format!(
                    "storage failed on this node: {cause}; stale reads (?stale=true) still \
                     answer from what it had applied"
                )));
            }
            self.catch_up().await?;
        }
        Ok(self.replica())
    }

    /// Run `check` on this node's replica. A failure is confirmed on a replica that has
    /// caught up with the leader before it is believed: a node that is merely behind must
    /// not refuse what another node has already acknowledged (a user of an organization
    /// created a moment ago elsewhere, say). When the cluster cannot be asked, the local
    /// answer stands.
    pub async fn check_current<T, E>(
        &self,
        check: impl Fn(&State) -> Result<T, E>,
    ) -> Result<T, E> {
        match self.replica().read(&check) {
            Ok(value) => Ok(value),
            Err(refusal) => match self.catch_up().await {
                Ok(()) => self.replica().read(&check),
                Err(_) => Err(refusal),
            },
        }
    }

    /// Wait until this node has applied everything committed before this call.
    async fn catch_up(&self) -> Result<(), ClusterError> {
        let read_index = self
            .on_leader(
                Action::Read,
                |c| async move { c.read_index_local().await },
                |peers, leader, addr, remaining| async move {
                    peers.read_index(leader, &addr, remaining).await
                },
            )
            .await?;
        let Some(index) = read_index else {
            return Ok(());
        };
        let timeout = self.inner.tuning.write_timeout;
        if self
            .inner
            .raft
            .wait_applied(index, timeout, "linearizable read")
            .await
        {
            Ok(())
        } else {
            Err(ClusterError::Unavailable(
                "this node is too far behind the leader to answer a linearizable read; \
                 retry, or read with ?stale=true"
                    .into(),
            ))
        }
    }

    /// On the leader: the read index, confirmed with a quorum.
    pub(super) async fn read_index_local(&self) -> Result<Option<u64>, ClusterError> {
        Ok(self.inner.raft.read_index().await?)
    }
}
