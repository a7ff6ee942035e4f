//! [`Raft`]: this node's consensus, started once and shared by handle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, Fatal};
use openraft::raft::AppendEntriesResponse;
use openraft::{BasicNode, ServerState, SnapshotPolicy};

use super::batch::{Proposed, Proposer};
use super::network::{NetworkFactory, RaftTransport};
use super::status::{MembershipChange, RaftStatus, StatusWatch};
use super::store::{Db, StateView};
use super::types::{
    AppendAnswer, AppendRequest, LogPosition, NodeId, SnapshotAnswer, SnapshotRequest, TypeConfig,
    VoteAnswer, VoteRequest,
};
use crate::config::RaftTuning;
use crate::state::Proposal;

/// A node id no member has: the candidate a leader stepping down votes for
/// ([`Raft::step_down`]). Node ids are handed out from 1 upwards.
const NOBODY: NodeId = NodeId::MAX;

/// Why a Raft operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RaftError {
    /// Only the leader does this; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// This node led when the proposal reached its log, and lost leadership before it was
    /// committed. openraft answers so both when it refuses an entry and when it drops an
    /// entry of its log for the new leader's, and a dropped entry may still be on other
    /// members and be committed by a later leader: whether it is applied is unknown, so it
    /// must not be proposed again blindly.
    #[error("leadership moved while the proposal was in flight (leader now: {leader:?})")]
    LeadershipMoved { leader: Option<NodeId> },
    /// The leader could not confirm with a quorum that it still leads, this time.
    #[error("the leader could not confirm its leadership with a quorum")]
    NotConfirmed,
    /// Another membership change is still under way.
    #[error("another membership change is in progress")]
    ChangeInProgress,
    #[error("membership change refused: {0}")]
    ChangeRefused(String),
    /// Raft's core stopped because this node's storage failed; it stays stopped.
    #[error("storage failed: {0}")]
    StorageFailed(String),
    /// Raft has stopped (shutdown).
    #[error("raft has stopped: {0}")]
    Stopped(String),
}

impl From<Fatal<NodeId>> for RaftError {
    fn from(e: Fatal<NodeId>) -> Self {
        match e {
            Fatal::StorageError(e) => RaftError::StorageFailed(e.to_string()),
            e => RaftError::Stopped(e.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid raft timing: {0}")]
    Config(String),
    #[error("cannot read the raft log and state: {0}")]
    Storage(String),
    #[error("cannot start raft: {0}")]
    Fatal(String),
}

/// This node's Raft. Cheap to clone; every clone is the same node.
#[derive(Clone)]
pub struct Raft {
    inner: openraft::Raft<TypeConfig>,
    /// Proposals share log entries (see `batch.rs`).
    proposer: Proposer,
    /// For compaction: what a purge leaves in the log's files is erased.
    db: Db,
}

/// Start this node's Raft over `db`, talking to peers through `transport`. Elections are
/// never started by openraft's own timer: the caller starts them ([`Raft::campaign`]).
pub async fn start(
    node_id: NodeId,
    tuning: &RaftTuning,
    transport: impl RaftTransport,
    db: &Db,
) -> Result<(Raft, StateView), StartError> {
    let (log_store, state_machine) = db
        .stores()
        .map_err(|e| StartError::Storage(e.to_string()))?;
    let view = state_machine.view();
    // openraft's election timer is off; of its timing only the heartbeat and the leader
    // lease (its `election_timeout_max`, which it enforces on votes) still matter.
    let heartbeat = tuning.heartbeat.as_millis() as u64;
    let lease = tuning.leader_lease().as_millis() as u64;
    let config = openraft::Config {
        cluster_name: "helix".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: (heartbeat + lease) / 2,
        election_timeout_max: lease,
        install_snapshot_timeout: 5_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
        max_in_snapshot_log_to_keep: tuning.snapshot_every / 10,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Config(e.to_string()))?;
    let inner = openraft::Raft::new(
        node_id,
        Arc::new(config),
        NetworkFactory::new(transport),
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| StartError::Fatal(e.to_string()))?;
    inner.runtime_config().elect(false);
    super::metrics::follow(inner.metrics());
    Ok((
        Raft {
            proposer: Proposer::new(inner.clone()),
            inner,
            db: db.clone(),
        },
        view,
    ))
}

impl Raft {
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.inner.metrics().borrow().state == ServerState::Leader
    }

    /// The peer address of member `id`.
    pub fn peer_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Why Raft's core stopped, when this node's storage failed.
    pub fn storage_failure(&self) -> Option<String> {
        super::status::storage_failure(&self.inner.metrics().borrow())
    }

    pub fn status(&self) -> RaftStatus {
        RaftStatus::of(&self.inner.metrics().borrow())
    }

    pub fn watch(&self) -> StatusWatch {
        StatusWatch(self.inner.metrics())
    }

    /// Where this node's log ends.
    pub fn last_log(&self) -> Option<LogPosition> {
        LogPosition::of(self.inner.data_metrics().borrow().last_log)
    }

    /// Commit `proposal` (this node must lead); concurrent proposals share a log entry.
    pub async fn propose(&self, proposal: Proposal) -> Result<Proposed, RaftError> {
        // Refused before it reaches the log: certainly not written, safe to send elsewhere.
        if !self.is_leader() {
            return Err(RaftError::NotLeader {
                leader: self.leader(),
            });
        }
        let proposed = self.proposer.propose(proposal).await;
        super::metrics::note_proposal(proposed.is_ok());
        proposed.map_err(|e| match client_write_error(e) {
            RaftError::NotLeader { leader } => RaftError::LeadershipMoved { leader },
            other => other,
        })
    }

    /// On the leader: the log index up to which a read may be answered once applied,
    /// confirmed with a quorum (etcd's read index).
    pub async fn read_index(&self) -> Result<Option<u64>, RaftError> {
        match self.inner.get_read_log_id().await {
            Ok((read_log_id, _applied)) => Ok(read_log_id.map(|l| l.index)),
            Err(openraft::error::RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(RaftError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(openraft::error::RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(RaftError::NotConfirmed)
            }
            Err(openraft::error::RaftError::Fatal(e)) => Err(e.into()),
        }
    }

    /// Wait until this node has applied `index`; `false` after `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration, why: &str) -> bool {
        self.inner
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), why)
            .await
            .is_ok()
    }

    /// Snapshot what this node has applied and drop every log entry the snapshot covers, so
    /// no earlier command (a replaced token, say) stays in this node's storage. Returns the
    /// index the log is purged through; openraft may purge later than this returns when
    /// it is still sending those entries to a follower, so `timeout` bounds the wait.
    pub async fn compact(&self, timeout: Duration) -> Result<Option<u64>, RaftError> {
        let Some(applied) = self.status().applied_index else {
            return Ok(None);
        };
        self.inner.trigger().snapshot().await?;
        let snapshot = self
            .inner
            .wait(Some(timeout))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "snapshot for compaction",
            )
            .await;
        let Ok(metrics) = snapshot else {
            return Ok(self.status().purged_index);
        };
        let upto = metrics.snapshot.map_or(applied, |s| s.index);
        self.inner.trigger().purge_log(upto).await?;
        let purged = self
            .inner
            .wait(Some(timeout))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= upto),
                "purge for compaction",
            )
            .await;
        let Ok(metrics) = purged else {
            return Ok(self.status().purged_index);
        };
        self.db
            .erase_purged_log()
            .await
            .map_err(|e| RaftError::StorageFailed(e.to_string()))?;
        Ok(metrics.purged.map(|p| p.index))
    }

    /// On the leader: change the membership. `retain`: voters removed stay as learners.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
        retain: bool,
    ) -> Result<(), RaftError> {
        self.inner
            .change_membership(change.into_openraft(), retain)
            .await
            .map(|_| ())
            .map_err(client_write_error)
    }

    pub async fn is_initialized(&self) -> Result<bool, RaftError> {
        Ok(self.inner.is_initialized().await?)
    }

    /// Make this node the only voter of a new cluster. Done already is fine: a crash right
    /// after initializing must not stop the next start.
    pub async fn initialize_alone(&self, node_id: NodeId, peer_addr: &str) {
        let members = BTreeMap::from([(
            node_id,
            BasicNode {
                addr: peer_addr.to_string(),
            },
        )]);
        if let Err(e) = self.inner.initialize(members).await {
            tracing::debug!(error = %e, "cluster already initialized");
        }
    }

    /// Start an election now.
    pub async fn campaign(&self) -> Result<(), RaftError> {
        Ok(self.inner.trigger().elect().await?)
    }

    /// Stop leading without starting an election: this node votes, in its own term, for a
    /// candidate that does not exist, and openraft's leader turns follower on seeing the
    /// greater vote (its replication stops with it). openraft 0.9 has no step-down call, and
    /// the other ways there bump the term (`trigger().elect()`, or a vote for a later term),
    /// which on heal would depose the leader the majority elected meanwhile and cost one more
    /// election. This vote stays below any vote of a later term, so the majority's leader
    /// takes this node back at once; no real candidate asks for it, since every candidate
    /// asks in a term above the one it knew. `true` when this node no longer leads.
    pub async fn step_down(&self) -> Result<bool, RaftError> {
        let (vote, term) = {
            let metrics = self.inner.metrics();
            let m = metrics.borrow();
            if m.state != ServerState::Leader {
                return Ok(true);
            }
            (m.vote, m.current_term)
        };
        let phantom = openraft::Vote::new(term, NOBODY);
        debug_assert!(
            phantom > vote,
            "a vote for nobody in our term outranks our own"
        );
        // The candidate must not have less log than ours, or the vote is refused: a leader
        // still appending is asked again on its next check.
        let last_log_id = self.inner.data_metrics().borrow().last_log;
        let answer = match self
            .inner
            .vote(VoteRequest::new(phantom, last_log_id))
            .await
        {
            Ok(answer) => answer,
            Err(openraft::error::RaftError::Fatal(e)) => return Err(e.into()),
            Err(openraft::error::RaftError::APIError(never)) => match never {},
        };
        Ok(answer.vote_granted || !self.is_leader())
    }

    /// Does the Raft core answer messages? `false` once it has stopped for good.
    pub async fn probe_core(&self) -> bool {
        self.inner.with_raft_state(|_| ()).await.is_ok()
    }

    pub async fn shutdown(&self) -> Result<(), String> {
        self.inner.shutdown().await.map_err(|e| e.to_string())
    }

    /// Answer a leader's append. `on_leader` runs when the request comes from the leader
    /// this node follows (or a newer one): on arrival, and again once answered, so neither
    /// the network nor our own slow flush counts as leader silence.
    pub async fn append(&self, rpc: AppendRequest, on_leader: impl Fn()) -> AppendAnswer {
        if self.inner.metrics().borrow().vote <= rpc.vote {
            on_leader();
        }
        let answer = self.inner.append_entries(rpc).await;
        if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
            on_leader();
        }
        answer
    }

    /// Answer a candidate. `on_granted` runs when this node grants its vote.
    pub async fn vote(&self, rpc: VoteRequest, on_granted: impl Fn()) -> VoteAnswer {
        let answer = self.inner.vote(rpc).await;
        if matches!(&answer, Ok(a) if a.vote_granted) {
            on_granted();
        }
        answer
    }

    /// Install a chunk of the leader's snapshot. `on_leader` runs when it was accepted.
    pub async fn install_snapshot(
        &self,
        rpc: SnapshotRequest,
        on_leader: impl Fn(),
    ) -> SnapshotAnswer {
        let leader_vote = rpc.vote;
        let answer = self.inner.install_snapshot(rpc).await;
        if matches!(&answer, Ok(a) if a.vote == leader_vote) {
            on_leader();
        }
        answer
    }
}

fn client_write_error(
    e: openraft::error::RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> RaftError {
    match e {
        openraft::error::RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            RaftError::NotLeader {
                leader: f.leader_id,
            }
        }
        openraft::error::RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => RaftError::ChangeInProgress,
        openraft::error::RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            RaftError::ChangeRefused(e.to_string())
        }
        openraft::error::RaftError::Fatal(e) => e.into(),
    }
}
