//! Membership: who joins (as a learner first), who is promoted, who is removed, and what the
//! status pages show about each member.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::forward::no_quorum;
use super::quorum::Action;
use super::{Cluster, ClusterError};
use crate::peer::{AddLearnerRequest, MemberProgress, Progress};
use crate::raft::{MembershipChange, NodeId, RaftError};
use crate::state::{Command, NodeAnnouncement};

/// One member as the status pages show it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub id: NodeId,
    pub peer_addr: String,
    pub voter: bool,
    pub leader: bool,
    /// Answered the leader recently; `None` when no leader could be asked.
    pub reachable: Option<bool>,
    /// Highest log index the leader knows replicated there.
    pub matched_index: Option<u64>,
    /// Since it last answered the leader; `None` when unknown or never.
    pub last_contact: Option<Duration>,
    /// Entries it lacks of what the leader has committed.
    pub lag: Option<u64>,
}

/// Whether the voters a decision needs answer the leader.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuorumView {
    pub voters: usize,
    pub needed: usize,
    pub reachable_voters: Option<usize>,
    pub healthy: bool,
}

/// The membership as this node sees it, with the leader's replication progress when the
/// leader answers (within a second: this is for display, and must work when unhealthy).
#[derive(Debug, Clone)]
pub struct MembershipView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub members: Vec<MemberView>,
    pub quorum: QuorumView,
}

impl Cluster {
    pub async fn membership_view(&self) -> MembershipView {
        let status = self.inner.raft.status();
        let progress = self.progress().await;
        let fresh_ms = self.inner.tuning.reachable_within().as_millis() as u64;
        let members: Vec<MemberView> = status
            .membership
            .members()
            .map(|id| {
                let p = progress.as_ref().and_then(|p| p.members.get(&id));
                MemberView {
                    id,
                    peer_addr: status.membership.peer_addr(id).unwrap_or("").to_string(),
                    voter: status.membership.is_voter(id),
                    leader: status.leader == Some(id),
                    reachable: progress.as_ref().map(|_| {
                        p.and_then(|p| p.since_last_answer_ms)
                            .is_some_and(|ms| ms <= fresh_ms)
                    }),
                    matched_index: p.and_then(|p| p.matched_index),
                    last_contact: p
                        .and_then(|p| p.since_last_answer_ms)
                        .map(Duration::from_millis),
                    lag: p.and_then(|p| p.matched_index).and_then(|matched| {
                        progress
                            .as_ref()
                            .map(|all| all.commit_index.saturating_sub(matched))
                    }),
                }
            })
            .collect();
        let voters = members.iter().filter(|m| m.voter).count();
        let needed = voters / 2 + 1;
        let reachable_voters = progress.as_ref().map(|_| {
            members
                .iter()
                .filter(|m| m.voter && m.reachable == Some(true))
                .count()
        });
        let applied_index = status.applied_index.unwrap_or(0);
        MembershipView {
            leader: status.leader,
            term: status.term,
            commit_index: progress.as_ref().map_or(applied_index, |p| p.commit_index),
            applied_index,
            members,
            quorum: QuorumView {
                voters,
                needed,
                reachable_voters,
                healthy: reachable_voters.is_some_and(|r| r >= needed),
            },
        }
    }

    /// On the leader: how long ago each member last answered it (`None`: never since this
    /// node started); this node itself answers always.
    pub fn member_silence(&self) -> BTreeMap<NodeId, Option<Duration>> {
        self.inner
            .raft
            .status()
            .membership
            .members()
            .map(|id| {
                let silence = if id == self.node_id() {
                    Some(Duration::ZERO)
                } else {
                    self.inner.peers.contact().since_last_answer(id)
                };
                (id, silence)
            })
            .collect()
    }

    /// Remove a member, forwarded to the leader.
    pub async fn remove(&self, node_id: NodeId) -> Result<(), ClusterError> {
        self.on_leader(
            Action::Write,
            |c| async move { c.remove_local(node_id).await },
            |peers, leader, addr, remaining| async move {
                peers.remove(leader, &addr, node_id, remaining).await
            },
        )
        .await
    }

    /// This node leaves the cluster: it is removed through the leader (itself, when it
    /// leads: openraft 0.9 has no leadership transfer, so the leader removes itself from the
    /// voters once another voter is caught up, and steps down when that change commits; the
    /// others elect a new leader). Then [`Cluster::wait_left`] resolves, and the node stops.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        if let Some(reason) = self.removed() {
            return Err(ClusterError::Conflict(format!(
                "this node was already removed from the cluster: {reason}"
            )));
        }
        self.remove(self.node_id()).await?;
        tracing::info!("left the cluster: stopping");
        self.inner.left.notify_one();
        Ok(())
    }

    /// Resolves once this node has left the cluster with [`Cluster::leave`].
    pub async fn wait_left(&self) {
        self.inner.left.notified().await
    }

    pub(super) fn require_leader(&self) -> Result<(), ClusterError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ClusterError::NotLeader {
                leader_id: self.inner.raft.leader(),
            })
        }
    }

    /// On the leader: add an admitted node as a learner and record its addresses. The node
    /// asks the leader itself (its certificate must name the node it adds), trying members
    /// until it finds the leader. A node that asks again (it lost the answer) is done.
    pub(super) async fn add_learner_local(
        &self,
        request: AddLearnerRequest,
    ) -> Result<(), ClusterError> {
        self.require_leader()?;
        let node_id = request.node_id;
        let membership = self.inner.raft.status().membership;
        if let Some(existing) = membership.peer_addr(node_id) {
            if existing == request.peer_addr {
                return Ok(());
            }
            return Err(ClusterError::Conflict(format!(
                "node id {node_id} is already a member at {existing}"
            )));
        }
        self.change_membership(
            MembershipChange::AddLearner {
                id: node_id,
                peer_addr: request.peer_addr.clone(),
            },
            true,
        )
        .await?;
        tracing::info!(joined_node = node_id, peer_addr = %request.peer_addr, "added node as a learner");
        self.propose_system_here(Command::RegisterNode(NodeAnnouncement {
            id: node_id,
            api_addr: request.api_addr,
            peer_addr: request.peer_addr,
            joined_ms: crate::time::now_ms(),
            gpus: Vec::new(),
        }))
        .await?;
        Ok(())
    }

    /// An id for a joining node: the one it asks for if nobody else has it, else the next
    /// nobody ever had (not a member, not a known, certified or removed node, not handed
    /// out by this leader to a node still joining: a new leader starts that list afresh).
    pub(super) fn id_for_joiner(
        &self,
        wanted: Option<NodeId>,
        peer_addr: &str,
    ) -> Result<NodeId, ClusterError> {
        let membership = self.inner.raft.status().membership;
        let (highest_used, taken) = self.replica().read(|s| {
            let taken = wanted.and_then(|id| {
                (s.trust.retired_nodes.contains(&id)
                    || s.trust.certificates.values().any(|c| c.node_id == id))
                .then_some(id)
            });
            (s.highest_node_id_used(), taken)
        });
        if let Some(id) = wanted {
            if let Some(existing) = membership.peer_addr(id) {
                if existing != peer_addr {
                    return Err(ClusterError::Conflict(format!(
                        "node id {id} is already a member at {existing}"
                    )));
                }
            }
            if taken.is_some() && membership.peer_addr(id).is_none() {
                return Err(ClusterError::Conflict(format!(
                    "node id {id} was already given to another node; leave it out to get a \
                     new one"
                )));
            }
            return Ok(id);
        }
        let mut handed_out = self.inner.handed_out_ids.lock().expect("id lock poisoned");
        let id = highest_used
            .max(membership.members().max())
            .max(handed_out.iter().next_back().copied())
            .unwrap_or(0)
            + 1;
        handed_out.insert(id);
        Ok(id)
    }

    /// On the leader: remove a member. A voter is first replaced by a healthy learner.
    pub(super) async fn remove_local(&self, node_id: NodeId) -> Result<(), ClusterError> {
        self.require_leader()?;
        let membership = self.inner.raft.status().membership;
        if !membership.contains(node_id) {
            return Err(ClusterError::NotFound(format!(
                "node {node_id} is not a member"
            )));
        }
        if membership.is_voter(node_id) {
            if membership.voters().len() == 1 {
                return Err(ClusterError::Conflict(
                    "cannot remove the last voter of the cluster".into(),
                ));
            }
            if node_id == self.node_id() {
                self.wait_another_voter_caught_up().await?;
            }
            // Put a healthy learner in its place first, so the voter count holds.
            if let Some(learner) = self.healthy_learners().into_iter().next() {
                self.change_membership(
                    MembershipChange::PromoteToVoters(BTreeSet::from([learner])),
                    true,
                )
                .await?;
                tracing::info!(
                    promoted = learner,
                    "promoted learner to replace a removed voter"
                );
            }
            self.change_membership(
                MembershipChange::RemoveVoters(BTreeSet::from([node_id])),
                false,
            )
            .await?;
        } else {
            self.change_membership(
                MembershipChange::RemoveLearners(BTreeSet::from([node_id])),
                false,
            )
            .await?;
        }
        tracing::info!(removed_node = node_id, "removed member");
        // A leader that removed itself has stepped down: the next one forgets its record
        // (autopilot's sweep), and this one answers at once.
        if node_id != self.node_id() {
            let _ = self
                .propose_system(Command::RemoveNode { id: node_id })
                .await;
        }
        Ok(())
    }

    /// Change the membership, one change at a time, waiting out a change already in flight
    /// (up to the write timeout).
    pub(super) async fn change_membership(
        &self,
        change: MembershipChange,
        retain: bool,
    ) -> Result<(), ClusterError> {
        let _one_at_a_time = self.inner.membership_lock.lock().await;
        let write_timeout = self.inner.tuning.write_timeout;
        let deadline = Instant::now() + write_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = timeout(
                remaining,
                self.inner.raft.change_membership(change.clone(), retain),
            );
            match attempt
                .await
                .map_err(|_| no_quorum(Action::Write, write_timeout))?
            {
                Ok(()) => return Ok(()),
                Err(RaftError::ChangeInProgress) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// On the leader, before it removes itself: waits (up to the write timeout) until a
    /// voter besides itself answered recently and holds its whole log, so that the cluster
    /// keeps a candidate with every committed entry when it steps down.
    async fn wait_another_voter_caught_up(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        while !self.another_voter_caught_up() {
            if Instant::now() >= deadline {
                return Err(ClusterError::Unavailable(
                    "this node leads and no other voter caught up with it in time; try again"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn another_voter_caught_up(&self) -> bool {
        let status = self.inner.raft.status();
        let last_log = status.last_log_index.unwrap_or(0);
        status
            .membership
            .voters()
            .into_iter()
            .filter(|&v| v != self.node_id())
            .any(|v| {
                let matched = status.replication.get(&v).copied().flatten().unwrap_or(0);
                let fresh = self
                    .inner
                    .peers
                    .contact()
                    .since_last_answer(v)
                    .is_some_and(|d| d < self.inner.tuning.reachable_within());
                fresh && matched >= last_log
            })
    }

    /// Learners that answered recently and are close to the leader's log, the first to have
    /// joined (lowest id) first.
    fn healthy_learners(&self) -> Vec<NodeId> {
        let status = self.inner.raft.status();
        let last_log = status.last_log_index.unwrap_or(0);
        let mut learners: Vec<NodeId> = status
            .membership
            .learners()
            .into_iter()
            .filter_map(|id| {
                let matched = status.replication.get(&id).copied().flatten()?;
                let fresh = self
                    .inner
                    .peers
                    .contact()
                    .since_last_answer(id)
                    .is_some_and(|d| d < self.inner.tuning.reachable_within());
                (fresh && last_log.saturating_sub(matched) <= super::autopilot::CAUGHT_UP_WITHIN)
                    .then_some(id)
            })
            .collect();
        learners.sort();
        learners
    }

    /// On the leader: replication progress of every member.
    pub(super) fn progress_local(&self) -> Result<Progress, ClusterError> {
        self.require_leader()?;
        let status = self.inner.raft.status();
        let members = status
            .membership
            .members()
            .map(|id| {
                let progress = if id == self.node_id() {
                    MemberProgress {
                        matched_index: status.last_log_index,
                        since_last_answer_ms: Some(0),
                    }
                } else {
                    MemberProgress {
                        matched_index: status.replication.get(&id).copied().flatten(),
                        since_last_answer_ms: self
                            .inner
                            .peers
                            .contact()
                            .since_last_answer(id)
                            .map(|d| d.as_millis() as u64),
                    }
                };
                (id, progress)
            })
            .collect();
        Ok(Progress {
            leader_id: self.node_id(),
            term: status.term,
            commit_index: status.applied_index.unwrap_or(0),
            members,
        })
    }

    /// The leader's progress report, asked of the leader (short timeout: this is for display).
    async fn progress(&self) -> Option<Progress> {
        let leader = self.inner.raft.leader()?;
        if leader == self.node_id() {
            return self.progress_local().ok();
        }
        let addr = self.inner.raft.peer_addr(leader)?;
        self.inner
            .peers
            .progress(leader, &addr, Duration::from_secs(1))
            .await
            .ok()?
            .ok()
    }
}
