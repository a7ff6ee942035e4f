//! The cluster as the rest of a node sees it: one narrow handle to write, read, watch and
//! change the membership, whoever leads and wherever this node is.
//!
//! - writes go to the leader (`write.rs`): the cluster's own bookkeeping with
//!   [`Cluster::propose_system`], a user's with [`Cluster::commit_as`];
//! - reads choose their [`Consistency`] (`read.rs`);
//! - admission: join tokens, certificates, the peer check (`admission.rs`);
//! - membership: joining, removal, learner promotion, the status view (`membership.rs`);
//! - elections with pre-vote (`election/`); being in touch with a quorum, and stepping
//!   down when a leader is not (`quorum.rs`);
//! - the peer calls other nodes make on this one (`service.rs`);
//! - a slot's log from the node that runs it (`slot_log.rs`).

mod admission;
mod autopilot;
mod election;
mod forward;
mod health;
mod key_use;
mod membership;
mod quorum;
mod read;
mod service;
mod slot_log;
mod write;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use admission::{certificate_names, Signing, CA_KEY_SCOPE};
pub use key_use::KeyUse;
pub use membership::{MemberView, MembershipView, QuorumView};
pub use read::Consistency;

use self::election::LeaderContact;
use crate::config::RaftTuning;
use crate::peer::PeerClient;
pub use crate::peer::{AddLearnerRequest, AdmitRequest, ClusterError, JoinReply, JoinRequest};
use crate::raft::{NodeId, Raft, StateView, StatusWatch};

/// How long a compaction waits for its snapshot, and then for the purge.
const COMPACTION_WAIT: Duration = Duration::from_secs(30);

/// This node's handle on the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    raft: Raft,
    /// This node's applied state.
    replica: StateView,
    /// Calls to other members; also records when each last answered a Raft RPC.
    peers: PeerClient,
    /// When we last heard from a leader (elections start only after a long enough silence).
    leader_contact: LeaderContact,
    tuning: RaftTuning,
    /// The cluster key and certificate lifetime: signing certificates when leading.
    signing: Signing,
    /// Membership changes (join, promotion, removal) run one at a time: openraft refuses a
    /// change while another is in flight, and interleaving them can strand a joint config.
    membership_lock: tokio::sync::Mutex<()>,
    /// Node ids this leader gave to joining nodes, so two nodes joining at once differ.
    handed_out_ids: std::sync::Mutex<BTreeSet<NodeId>>,
    /// Stamps the time of every proposal this node appends as leader, and is the time it
    /// checks join tokens against and signs certificates from.
    clock: crate::time::SteadyClock,
    /// Why this node was removed from the cluster, once it learnt so (see `health.rs`).
    removed: std::sync::Mutex<Option<String>>,
    /// This node was listed in the membership once (a node catching up is not yet).
    was_member: std::sync::atomic::AtomicBool,
    /// Rung when this node has left the cluster (`helix node leave`): it stops then.
    left: tokio::sync::Notify,
}

/// Whether this node can serve: a member that knows a leader, with working storage.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub member: bool,
    /// A voter (else, when a member, a learner).
    pub voter: bool,
    pub leader: Option<NodeId>,
    /// Why this node's storage failed; it serves nothing until restarted.
    pub storage_failure: Option<String>,
}

impl Cluster {
    pub fn new(
        node_id: NodeId,
        raft: Raft,
        replica: StateView,
        peers: PeerClient,
        tuning: RaftTuning,
        signing: Signing,
    ) -> Cluster {
        Cluster {
            inner: Arc::new(Inner {
                node_id,
                raft,
                replica,
                peers,
                leader_contact: LeaderContact::default(),
                tuning,
                signing,
                membership_lock: tokio::sync::Mutex::new(()),
                handed_out_ids: std::sync::Mutex::default(),
                clock: crate::time::SteadyClock::default(),
                removed: std::sync::Mutex::default(),
                was_member: std::sync::atomic::AtomicBool::default(),
                left: tokio::sync::Notify::new(),
            }),
        }
    }

    /// `raft.autopilot_dead_after_ms`, for the status page.
    pub fn autopilot_dead_after(&self) -> Duration {
        self.inner.tuning.autopilot_dead_after
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// This node's applied state as it is, without asking anyone: possibly behind the
    /// leader. For what a node does by itself (its runner, fail-fast checks).
    pub fn replica(&self) -> &StateView {
        &self.inner.replica
    }

    pub fn is_leader(&self) -> bool {
        self.inner.raft.is_leader()
    }

    /// Snapshot this node's applied state and purge its log up to it (`helix operator
    /// compact`); the index purged through.
    pub async fn compact_log(&self) -> Result<Option<u64>, ClusterError> {
        Ok(self.inner.raft.compact(COMPACTION_WAIT).await?)
    }

    /// Entries up to this index are gone from this node's Raft log.
    pub fn purged_index(&self) -> Option<u64> {
        self.inner.raft.status().purged_index
    }

    /// Wakes on every change of this node's Raft status (leader, term, membership).
    pub fn watch(&self) -> StatusWatch {
        self.inner.raft.watch()
    }

    pub fn readiness(&self) -> Readiness {
        let status = self.inner.raft.status();
        Readiness {
            member: status.membership.contains(self.node_id()),
            voter: status.membership.voters().contains(&self.node_id()),
            leader: status.leader,
            storage_failure: status.storage_failure,
        }
    }

    /// Refuses once this node's storage has failed: its Raft has stopped for good and its
    /// replica no longer moves, so it takes no writes and no linearizable reads.
    fn check_storage(&self) -> Result<(), ClusterError> {
        match self.inner.raft.storage_failure() {
            Some(cause) => Err(ClusterError::Unavailable(format!(
                "storage failed on this node: {cause}"
            ))),
            None => Ok(()),
        }
    }

    /// Resolves once this node is a member that knows a leader and has applied the
    /// cluster's bootstrap (so the admin key works here), or when Raft stops.
    pub async fn wait_ready(&self) {
        let mut applied = self.replica().subscribe();
        loop {
            self.wait_member_with_leader().await;
            if !self.replica().read(|s| s.users.is_empty()) {
                return;
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once this node is a member that knows a leader, or when Raft stops.
    pub async fn wait_member_with_leader(&self) {
        let mut watch = self.watch();
        loop {
            let r = self.readiness();
            if r.member && r.leader.is_some() {
                return;
            }
            if !watch.changed().await {
                return;
            }
        }
    }

    pub async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))
    }

    /// Make this node the only voter of a new cluster (idempotent).
    pub async fn initialize_alone(&self, peer_addr: &str) {
        self.inner
            .raft
            .initialize_alone(self.node_id(), peer_addr)
            .await
    }

    /// Start the tasks that keep the cluster healthy: elections, noticing a removal, watching
    /// the wall clock for steps, check-quorum and asking the leader whether it hears us (on
    /// every node), autopilot (acting on the leader).
    pub fn start_upkeep(&self, shutdown: watch::Receiver<bool>) {
        tokio::spawn(election::run(self.clone(), shutdown.clone()));
        tokio::spawn(write::sample_clock(self.clone(), shutdown.clone()));
        tokio::spawn(health::watch_removal(self.clone(), shutdown.clone()));
        tokio::spawn(quorum::check_quorum(self.clone(), shutdown.clone()));
        tokio::spawn(quorum::keep_in_touch(self.clone(), shutdown.clone()));
        tokio::spawn(autopilot::run(
            self.clone(),
            self.inner.tuning.max_voters,
            self.inner.tuning.autopilot_dead_after,
            shutdown,
        ));
    }

    /// Stop Raft (after everything that proposes has stopped).
    pub async fn shutdown(&self) -> Result<(), String> {
        self.inner.raft.shutdown().await
    }
}
