//! The cluster as the API shows it: status, members, leaving, join tokens, slots and their
//! logs.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::expose;
use crate::cluster::QuorumView;
use crate::state::{SlotState, TokenSource};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub members: Vec<MemberView>,
    pub quorum: QuorumView,
    /// Whether this node is ready (`/readyz`), and why not.
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub not_ready: Option<String>,
    #[serde(default)]
    pub autopilot: AutopilotStatus,
}

/// Autopilot's setting and the last member it replaced (from the audit log).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AutopilotStatus {
    /// `raft.autopilot_dead_after_ms`.
    pub dead_after_ms: u64,
    pub last_action: Option<AutopilotEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutopilotEvent {
    /// `autopilot_promoted` or `autopilot_demoted`, as in the audit log.
    pub kind: String,
    pub node_id: Option<u64>,
    /// RFC 3339, the leader's clock.
    pub at: String,
}

/// One member as shown by `cluster status` and `node list`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: u64,
    pub api_addr: Option<String>,
    pub peer_addr: String,
    pub voter: bool,
    pub role: MemberRole,
    pub leader: bool,
    /// Answered the leader recently; `null` when no leader could be asked.
    pub reachable: Option<bool>,
    /// Highest log index the leader knows replicated there.
    pub applied_index: Option<u64>,
    /// Milliseconds since it last answered the leader; `null` when unknown or never.
    #[serde(default)]
    pub last_contact_ms: Option<u64>,
    /// Entries it lacks of what the leader has committed.
    #[serde(default)]
    pub lag: Option<u64>,
    /// GPUs the node published.
    pub gpus: Vec<GpuView>,
    /// Slots placed on the node.
    pub slots: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Voter,
    Learner,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GpuView {
    pub index: u32,
    pub name: String,
    /// Bytes.
    pub memory: u64,
}

/// `POST /api/v1/node/leave`: the node that answers leaves; `node_id`, when given, must be
/// its id (a guard against a URL that reaches another node).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveInput {
    pub node_id: Option<u64>,
}

/// The answer to `POST /api/v1/node/leave`: this node left and is stopping.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeftView {
    pub left: u64,
}

/// The answer to removing a member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemovedView {
    pub removed: u64,
}

/// `POST /api/v1/cluster/join-tokens`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenInput {
    /// How long it admits nodes: `90s`, `30m`, `1h`, `7d` [default: 1h].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// How many nodes may join with it [default: any number until it expires].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub uses: Option<u32>,
}

/// A join token: whoever holds it may add one node (or `max_uses`) until it expires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinTokenView {
    pub id: String,
    pub created: String,
    pub expires: String,
    pub uses: u32,
    pub max_uses: Option<u32>,
    /// `active`, `expired`, `used up` or `revoked`.
    pub status: String,
    pub created_by: Option<String>,
}

/// A new join token, shown this once (only a hash of its secret is stored).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewJoinTokenView {
    #[serde(flatten)]
    pub view: JoinTokenView,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// A model instance: what runs where.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotView {
    pub id: String,
    pub model_id: String,
    pub node_id: Option<u64>,
    pub gpu_indices: Vec<u32>,
    pub state: SlotState,
    pub port: Option<u16>,
    /// Which level the token came from, never the token.
    pub hf_token_source: Option<TokenSource>,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// Why no node runs it, while pending.
    pub pending_reason: Option<String>,
}

/// A piece of a slot's log (`GET /api/v1/slots/{id}/logs`), redacted; ask again with
/// `offset=<end>` for the lines added since.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotLogView {
    pub slot_id: String,
    /// The node that runs the slot and keeps its log.
    pub node_id: u64,
    pub text: String,
    /// The byte offsets of the text in the log.
    pub start: u64,
    pub end: u64,
}
