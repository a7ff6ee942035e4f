//! The cluster handle: how this node writes (forwarding to the leader), reads without lying
//! (read index from the leader), and changes membership (on the leader).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::{timeout, Instant};

use super::election::LeaderContact;
use crate::config::RaftTuning;
use crate::crypto::{ClusterSecret, DataKey};
use crate::raft::network::{PeerClient, PeerContact, TransportError};
use crate::raft::store::StateView;
use crate::raft::types::LogId;
use crate::raft::{NodeId, Raft};
use crate::state::{Command, NodeRecord, Outcome, Proposal};

pub const WRITE_PATH: &str = "/raft/write";
pub const READ_INDEX_PATH: &str = "/raft/read-index";
pub const JOIN_PATH: &str = "/raft/join";
pub const REMOVE_PATH: &str = "/raft/remove";
pub const PROGRESS_PATH: &str = "/raft/progress";

/// Why a cluster operation did not happen. Crosses the peer transport, hence serde.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// This node is not the leader; retry on the leader (internal, never shown to users).
    #[error("not the leader (leader: {leader_id:?})")]
    NotLeader { leader_id: Option<NodeId> },
    /// No leader or no quorum within the deadline: the caller should retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// A committed write: where it sits in the log and what `apply` answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    pub log_index: u64,
    pub outcome: Outcome,
}

/// Ask the leader for an id (`add: false`), then, once this node's Raft is listening, to be
/// added as a learner (`add: true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node_id: Option<NodeId>,
    pub api_addr: String,
    pub peer_addr: String,
    pub add: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    pub node_id: NodeId,
}

/// The leader's view of replication, for status pages and the runner's lost-node detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub leader_id: NodeId,
    pub term: u64,
    pub commit_index: u64,
    /// Per member: highest log index known replicated there, and ms since it last answered.
    pub members: BTreeMap<NodeId, MemberProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberProgress {
    pub matched_index: Option<u64>,
    pub since_last_answer_ms: Option<u64>,
}

/// Everything the API, the peer server and the runner need from the consensus layer.
#[derive(Clone)]
pub struct Cluster {
    pub node_id: NodeId,
    pub raft: Raft,
    pub view: StateView,
    pub peers: PeerClient,
    pub contact: PeerContact,
    /// When we last heard from a leader (elections start only after a long enough silence).
    pub leader_contact: LeaderContact,
    pub secret: ClusterSecret,
    pub data_key: DataKey,
    pub tuning: RaftTuning,
    /// Membership changes (join, promotion, removal) run one at a time: openraft refuses a
    /// change while another is in flight, and interleaving them can strand a joint config.
    pub membership_lock: Arc<tokio::sync::Mutex<()>>,
    /// Node ids this leader gave to joining nodes.
    pub handed_out_ids: Arc<std::sync::Mutex<BTreeSet<NodeId>>>,
}

impl Cluster {
    fn leader_addr(&self, leader: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Commit `proposal` through whoever leads, waiting at most the write timeout.
    /// Retries only when the proposal certainly was not accepted (no leader yet, leader
    /// changed, leader unreachable), so a write is never applied twice by us.
    pub async fn write(&self, proposal: Proposal) -> Result<Written, ClusterError> {
        self.leader_call(WRITE_PATH, &proposal, |c| {
            let proposal = proposal.clone();
            async move { c.write_local(proposal).await }
        })
        .await
    }

    /// Run `local` if we lead, else POST `request` to the leader's `path`, retrying while the
    /// leader is unknown or moving, until the write timeout.
    async fn leader_call<Req, Resp, F, Fut>(
        &self,
        path: &str,
        request: &Req,
        local: F,
    ) -> Result<Resp, ClusterError>
    where
        Req: Serialize,
        Resp: serde::de::DeserializeOwned,
        F: Fn(Cluster) -> Fut,
        Fut: std::future::Future<Output = Result<Resp, ClusterError>>,
    {
        let deadline = Instant::now() + self.tuning.write_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = match self.current_leader() {
                Some(leader) if leader == self.node_id => {
                    match timeout(remaining, local(self.clone())).await {
                        Ok(result) => result,
                        Err(_) => return Err(no_quorum(self.tuning.write_timeout)),
                    }
                }
                Some(leader) => match self.leader_addr(leader) {
                    Some(addr) => {
                        let sent = self
                            .peers
                            .call::<Req, Result<Resp, ClusterError>>(
                                &addr, path, request, remaining,
                            )
                            .await;
                        match sent {
                            Ok(answer) => answer,
                            // Never delivered: safe to try again (the leader may be moving).
                            Err(TransportError::Unreachable { .. }) => {
                                Err(ClusterError::NotLeader { leader_id: None })
                            }
                            Err(TransportError::Timeout { .. }) => {
                                return Err(no_quorum(self.tuning.write_timeout))
                            }
                            // Delivered or not, we cannot tell: the caller must check.
                            Err(TransportError::Broken { message, .. }) => {
                                return Err(ClusterError::Unavailable(format!(
                                    "the leader went away before answering ({message}); the \
                                     request may or may not have been carried out"
                                )))
                            }
                            Err(e) => return Err(ClusterError::Internal(e.to_string())),
                        }
                    }
                    None => Err(ClusterError::NotLeader { leader_id: None }),
                },
                None => Err(ClusterError::NotLeader { leader_id: None }),
            };
            match attempt {
                Err(ClusterError::NotLeader { .. }) if Instant::now() < deadline => {
                    // Wait for the metrics to name a (new) leader, or a short while.
                    let mut metrics = self.raft.metrics();
                    let pause = remaining.min(Duration::from_millis(50));
                    let _ = timeout(pause, metrics.changed()).await;
                }
                Err(ClusterError::NotLeader { .. }) => {
                    return Err(ClusterError::Unavailable(format!(
                        "no leader elected within {:?}; is a majority of voters up?",
                        self.tuning.write_timeout
                    )))
                }
                other => return other,
            }
        }
    }

    /// Propose on this node, which must be the leader. Concurrent proposals share a log
    /// entry (group commit, see [`crate::raft::batch`]).
    pub async fn write_local(&self, proposal: Proposal) -> Result<Written, ClusterError> {
        match self.raft.propose(proposal).await {
            Ok(proposed) => Ok(Written {
                log_index: proposed.log_id.index,
                outcome: proposed.outcome,
            }),
            Err(e) => Err(client_write_error(e)),
        }
    }

    /// Wait until this node has applied everything committed before this call: the read
    /// index comes from the leader, confirmed by a quorum (etcd's linearizable read).
    pub async fn linearizable_barrier(&self) -> Result<(), ClusterError> {
        let read_index: Option<LogId> = self
            .leader_call(READ_INDEX_PATH, &(), |c| async move {
                c.read_index_local().await
            })
            .await?;
        let Some(read_index) = read_index else {
            return Ok(());
        };
        self.raft
            .wait(Some(self.tuning.write_timeout))
            .applied_index_at_least(Some(read_index.index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| {
                ClusterError::Unavailable(
                    "this node is too far behind the leader to answer a linearizable read; \
                     retry, or read with ?stale=true"
                        .into(),
                )
            })
    }

    pub async fn read_index_local(&self) -> Result<Option<LogId>, ClusterError> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _applied)) => Ok(read_log_id),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ClusterError::NotLeader {
                    leader_id: f.leader_id,
                })
            }
            // The confirming heartbeat round timed out (a loaded machine, a slow peer): not
            // confirmed as leader this time. Retried like a missing leader, until the timeout.
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ClusterError::NotLeader {
                    leader_id: Some(self.node_id),
                })
            }
            Err(RaftError::Fatal(e)) => Err(ClusterError::Unavailable(e.to_string())),
        }
    }

    /// Wait until this node has applied `index` (after a write, so the answer shows it).
    pub async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        self.raft
            .wait(Some(self.tuning.write_timeout))
            .applied_index_at_least(Some(index), "apply own write")
            .await
            .map(|_| ())
            .map_err(|_| {
                ClusterError::Unavailable(format!(
                    "the write was committed at index {index} but this node has not applied it yet"
                ))
            })
    }

    /// Join, forwarded to the leader.
    pub async fn join(&self, request: JoinRequest) -> Result<JoinReply, ClusterError> {
        self.leader_call(JOIN_PATH, &request, |c| {
            let request = request.clone();
            async move { c.join_local(request).await }
        })
        .await
    }

    /// On the leader: hand out an id, or add the node as a learner and record its addresses.
    pub async fn join_local(&self, request: JoinRequest) -> Result<JoinReply, ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader {
                leader_id: self.current_leader(),
            });
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let members: BTreeMap<NodeId, BasicNode> = membership
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        // A node that lost its reply and asks again gets the same id.
        if let Some((&id, _)) = members.iter().find(|(_, n)| n.addr == request.peer_addr) {
            if request.node_id.is_none_or(|want| want == id) {
                return Ok(JoinReply { node_id: id });
            }
        }
        let node_id = match request.node_id {
            Some(id) => {
                if let Some(existing) = members.get(&id) {
                    if existing.addr != request.peer_addr {
                        return Err(ClusterError::Conflict(format!(
                            "node id {id} is already a member at {}",
                            existing.addr
                        )));
                    }
                }
                id
            }
            None => {
                let highest_known = self.view.read(|a| a.state.nodes.keys().max().copied());
                let highest_member = members.keys().max().copied();
                // Ids handed out but not yet added count too, so two nodes joining at once
                // get different ids (held by this leader only; a new leader starts afresh).
                let mut handed_out = self.handed_out_ids.lock().expect("id lock poisoned");
                let highest_handed = handed_out.iter().next_back().copied();
                let id = highest_known
                    .max(highest_member)
                    .max(highest_handed)
                    .unwrap_or(0)
                    + 1;
                handed_out.insert(id);
                id
            }
        };
        if !request.add {
            return Ok(JoinReply { node_id });
        }
        self.change_membership(
            ChangeMembers::AddNodes(BTreeMap::from([(
                node_id,
                BasicNode {
                    addr: request.peer_addr.clone(),
                },
            )])),
            true,
        )
        .await?;
        tracing::info!(joined_node = node_id, peer_addr = %request.peer_addr, "added node as a learner");
        self.write_local(Proposal {
            actor: None,
            at_ms: crate::time::now_ms(),
            command: Command::RegisterNode(NodeRecord {
                id: node_id,
                api_addr: request.api_addr,
                peer_addr: request.peer_addr,
                joined_ms: crate::time::now_ms(),
                gpus: Vec::new(),
            }),
        })
        .await?
        .outcome
        .map_err(|e| ClusterError::Internal(e.to_string()))?;
        Ok(JoinReply { node_id })
    }

    /// Remove a member, forwarded to the leader.
    pub async fn remove(&self, node_id: NodeId) -> Result<(), ClusterError> {
        self.leader_call(REMOVE_PATH, &node_id, |c| async move {
            c.remove_local(node_id).await
        })
        .await
    }

    pub async fn remove_local(&self, node_id: NodeId) -> Result<(), ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader {
                leader_id: self.current_leader(),
            });
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let m = membership.membership();
        let is_voter = m.voter_ids().any(|id| id == node_id);
        let is_member = m.get_node(&node_id).is_some();
        if !is_member {
            return Err(ClusterError::NotFound(format!(
                "node {node_id} is not a member"
            )));
        }
        if is_voter {
            let voters: BTreeSet<NodeId> = m.voter_ids().collect();
            if voters.len() == 1 {
                return Err(ClusterError::Conflict(
                    "cannot remove the last voter of the cluster".into(),
                ));
            }
            // Put a healthy learner in its place first, so the voter count holds.
            let replacement = self.healthy_learners().into_iter().next();
            if let Some(learner) = replacement {
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([learner])), true)
                    .await?;
                tracing::info!(
                    promoted = learner,
                    "promoted learner to replace a removed voter"
                );
            }
            self.change_membership(
                ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
                false,
            )
            .await?;
        } else {
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
                .await?;
        }
        tracing::info!(removed_node = node_id, "removed member");
        // The leader may have removed itself; the record is cleaned up by whoever leads next.
        let _ = self
            .write(Proposal {
                actor: None,
                at_ms: crate::time::now_ms(),
                command: Command::RemoveNode { id: node_id },
            })
            .await;
        Ok(())
    }

    /// Change the membership, one change at a time, waiting out a change already in flight
    /// (up to the write timeout).
    pub async fn change_membership(
        &self,
        changes: ChangeMembers<NodeId, BasicNode>,
        retain: bool,
    ) -> Result<(), ClusterError> {
        let _one_at_a_time = self.membership_lock.lock().await;
        let deadline = Instant::now() + self.tuning.write_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = timeout(
                remaining,
                self.raft.change_membership(changes.clone(), retain),
            );
            match attempt
                .await
                .map_err(|_| no_quorum(self.tuning.write_timeout))?
            {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(client_write_error(e)),
            }
        }
    }

    /// Learners that answered recently and are close to the leader's log, best first.
    pub fn healthy_learners(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics().borrow().clone();
        let last_log = metrics.last_log_index.unwrap_or(0);
        let replication = metrics.replication.clone().unwrap_or_default();
        let m = metrics.membership_config.membership();
        let mut learners: Vec<(u64, NodeId)> = m
            .learner_ids()
            .filter_map(|id| {
                let matched = replication.get(&id).cloned().flatten().map(|l| l.index)?;
                let fresh = self
                    .contact
                    .since_last_answer(id)
                    .is_some_and(|d| d < self.tuning.reachable_within());
                (fresh && last_log.saturating_sub(matched) <= 100).then_some((matched, id))
            })
            .collect();
        learners.sort_by(|a, b| b.cmp(a));
        learners.into_iter().map(|(_, id)| id).collect()
    }

    /// On the leader: replication progress of every member.
    pub fn progress_local(&self) -> Result<Progress, ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NotLeader {
                leader_id: self.current_leader(),
            });
        }
        let metrics = self.raft.metrics().borrow().clone();
        let replication = metrics.replication.clone().unwrap_or_default();
        let members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| {
                let progress = if *id == self.node_id {
                    MemberProgress {
                        matched_index: metrics.last_log_index,
                        since_last_answer_ms: Some(0),
                    }
                } else {
                    MemberProgress {
                        matched_index: replication.get(id).cloned().flatten().map(|l| l.index),
                        since_last_answer_ms: self
                            .contact
                            .since_last_answer(*id)
                            .map(|d| d.as_millis() as u64),
                    }
                };
                (*id, progress)
            })
            .collect();
        Ok(Progress {
            leader_id: self.node_id,
            term: metrics.current_term,
            commit_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            members,
        })
    }

    /// The leader's progress report, asked of the leader (short timeout: this is for display).
    pub async fn progress(&self) -> Option<Progress> {
        let leader = self.current_leader()?;
        if leader == self.node_id {
            return self.progress_local().ok();
        }
        let addr = self.leader_addr(leader)?;
        self.peers
            .call::<_, Result<Progress, ClusterError>>(
                &addr,
                PROGRESS_PATH,
                &(),
                Duration::from_secs(1),
            )
            .await
            .ok()?
            .ok()
    }
}

fn no_quorum(waited: Duration) -> ClusterError {
    ClusterError::Unavailable(format!(
        "the write was not confirmed by a quorum within {waited:?}; it may still be applied later"
    ))
}

fn client_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ClusterError::NotLeader {
            leader_id: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ClusterError::Conflict(e.to_string())
        }
        RaftError::Fatal(e) => ClusterError::Unavailable(format!("raft is stopping: {e}")),
    }
}
