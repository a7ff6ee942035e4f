//! What this node's Raft knows, in helix's terms: leader, term, log positions, membership.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::Fatal;
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState};
use tokio::sync::watch;

use super::types::NodeId;

/// One reading of this node's Raft.
#[derive(Debug, Clone)]
pub struct RaftStatus {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last entry the latest snapshot covers.
    pub snapshot_index: Option<u64>,
    /// Entries up to here are gone from this node's log.
    pub purged_index: Option<u64>,
    pub membership: Membership,
    /// On the leader: the highest log index known replicated on each other member.
    pub replication: BTreeMap<NodeId, Option<u64>>,
    /// The vote this node holds; two readings with equal stamps saw no election between.
    pub vote_stamp: VoteStamp,
    /// Why Raft's core stopped by itself, when its storage failed (the cause as openraft
    /// reports it, e.g. `when Write Logs: IO error: No space left on device`). openraft
    /// never restarts a stopped core.
    pub storage_failure: Option<String>,
}

/// An opaque copy of a Raft vote, for noticing that one changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteStamp(openraft::Vote<NodeId>);

impl RaftStatus {
    pub(super) fn of(m: &RaftMetrics<NodeId, BasicNode>) -> RaftStatus {
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            membership: Membership::of(m.membership_config.membership()),
            replication: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .map(|(id, matched)| (*id, matched.map(|l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
            vote_stamp: VoteStamp(m.vote),
            storage_failure: storage_failure(m),
        }
    }
}

pub(super) fn storage_failure(m: &RaftMetrics<NodeId, BasicNode>) -> Option<String> {
    match &m.running_state {
        Err(Fatal::StorageError(e)) => Some(e.to_string()),
        _ => None,
    }
}

/// The members of the cluster: voters (in one configuration, or two during a change) and
/// learners, each with its peer address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Membership {
    /// One voter set, or two while a change is under way (joint consensus).
    configs: Vec<BTreeSet<NodeId>>,
    peer_addrs: BTreeMap<NodeId, String>,
}

impl Membership {
    pub(super) fn of(m: &openraft::Membership<NodeId, BasicNode>) -> Membership {
        Membership {
            configs: m.get_joint_config().clone(),
            peer_addrs: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
        }
    }

    /// Every voter of every configuration.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.configs.iter().flatten().copied().collect()
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.configs.iter().any(|c| c.contains(&id))
    }

    /// Members that are not voters.
    pub fn learners(&self) -> BTreeSet<NodeId> {
        self.members().filter(|id| !self.is_voter(*id)).collect()
    }

    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peer_addrs.keys().copied()
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.peer_addrs.contains_key(&id)
    }

    pub fn peer_addr(&self, id: NodeId) -> Option<&str> {
        self.peer_addrs.get(&id).map(String::as_str)
    }

    /// The voter sets a decision needs a majority of: one, or two during a change.
    pub fn configs(&self) -> &[BTreeSet<NodeId>] {
        &self.configs
    }

    /// The voters a change left behind by a crash or a leader change was heading for.
    pub fn unfinished_change(&self) -> Option<&BTreeSet<NodeId>> {
        self.configs.last().filter(|_| self.configs.len() > 1)
    }
}

/// A membership change, proposed on the leader one at a time.
#[derive(Debug, Clone)]
pub enum MembershipChange {
    /// A new member that replicates without voting until promoted.
    AddLearner {
        id: NodeId,
        peer_addr: String,
    },
    PromoteToVoters(BTreeSet<NodeId>),
    /// Voters that stop voting (and, see `retain`, may stay as learners or leave).
    RemoveVoters(BTreeSet<NodeId>),
    /// Learners that leave.
    RemoveLearners(BTreeSet<NodeId>),
    /// Finish a change: exactly these voters.
    SetVoters(BTreeSet<NodeId>),
}

impl MembershipChange {
    pub(super) fn into_openraft(self) -> ChangeMembers<NodeId, BasicNode> {
        match self {
            MembershipChange::AddLearner { id, peer_addr } => {
                ChangeMembers::AddNodes(BTreeMap::from([(id, BasicNode { addr: peer_addr })]))
            }
            MembershipChange::PromoteToVoters(ids) => ChangeMembers::AddVoterIds(ids),
            MembershipChange::RemoveVoters(ids) => ChangeMembers::RemoveVoters(ids),
            MembershipChange::RemoveLearners(ids) => ChangeMembers::RemoveNodes(ids),
            MembershipChange::SetVoters(ids) => ChangeMembers::ReplaceAllVoters(ids),
        }
    }
}

/// Wakes whenever this node's Raft status changes.
pub struct StatusWatch(pub(super) watch::Receiver<RaftMetrics<NodeId, BasicNode>>);

impl StatusWatch {
    /// Resolves at the next change; `false` once Raft has stopped.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }

    pub fn current(&self) -> RaftStatus {
        RaftStatus::of(&self.0.borrow())
    }
}
