//! The vocabulary of the peer protocol: where each call goes, what it carries, and the
//! errors that come back across it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::raft::{LogPosition, NodeId};
use crate::state::{Outcome, StateError};

pub(super) const APPEND_PATH: &str = "/raft/append";
pub(super) const VOTE_PATH: &str = "/raft/vote";
pub(super) const SNAPSHOT_PATH: &str = "/raft/snapshot";
pub(super) const PRE_VOTE_PATH: &str = "/raft/pre-vote";
pub(super) const WRITE_PATH: &str = "/raft/write";
pub(super) const READ_INDEX_PATH: &str = "/raft/read-index";
pub(super) const REMOVE_PATH: &str = "/raft/remove";
pub(super) const PROGRESS_PATH: &str = "/raft/progress";
pub(super) const ADMIT_PATH: &str = "/raft/admit";
pub(super) const ADD_LEARNER_PATH: &str = "/raft/add-learner";
pub(super) const CLUSTER_KEY_PATH: &str = "/raft/cluster-key";
pub(super) const RENEW_PATH: &str = "/raft/renew";
/// A slot's log, from the node that runs it (`helix slot logs` on another node).
pub(super) const SLOT_LOG_PATH: &str = "/slot-log";
/// A request for a replica on the node called: `/infer/<slot id>` then the vLLM path.
pub(super) const INFER_PREFIX: &str = "/infer";

/// Why a cluster operation did not happen.
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
    /// `apply` (or the check before proposing) refused the command.
    #[error("{0}")]
    Refused(StateError),
    #[error("{0}")]
    Internal(String),
}

/// A committed write: where it sits in the log and what `apply` answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    pub log_index: u64,
    pub outcome: Outcome,
}

/// What a joining node sends to any member's API (`POST /api/v1/cluster/join`): its join
/// token, a certificate request for the key pair it made (the private key never leaves it),
/// and its addresses.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    pub csr_pem: String,
    pub api_addr: String,
    pub peer_addr: String,
    /// The id it asks for; the leader picks one when `None`.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// Extra names for its certificate (`--advertise-name`), besides its API address.
    #[serde(default)]
    pub names: Vec<String>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("token", &"***")
            .field("api_addr", &self.api_addr)
            .field("peer_addr", &self.peer_addr)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// A join as the member that took it forwards it to the leader: the token reduced to its id
/// and the hash of its secret, which is what the state holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmitRequest {
    pub token_id: String,
    pub secret_hash: String,
    pub csr_pem: String,
    pub api_addr: String,
    pub peer_addr: String,
    pub node_id: Option<NodeId>,
    pub names: Vec<String>,
}

/// The admitted node's id and certificate, the CA to trust, and whom to ask next (the
/// cluster key and its place in the membership, over mutual TLS).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinReply {
    pub node_id: NodeId,
    pub cert_pem: String,
    pub ca_pem: String,
    /// Members by id and peer address.
    #[schema(value_type = Vec<(u64, String)>)]
    pub members: Vec<(NodeId, String)>,
}

/// An admitted node, listening now, asks to be added as a learner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddLearnerRequest {
    pub node_id: NodeId,
    pub api_addr: String,
    pub peer_addr: String,
}

/// A member asks for a new certificate for a new key pair before its own expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr_pem: String,
    pub names: Vec<String>,
}

/// The leader's view of replication, for status pages.
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

/// "Would you vote for me if I started an election now?" Changes nothing on the receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    pub last_log: Option<LogPosition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub granted: bool,
    /// The answer comes from a working leader: the candidate stands down whatever the others
    /// say, since a leader it can reach is not dead, only slow to send.
    pub live_leader: bool,
}
