//! The runners: each member's addresses and GPUs, and the slots placed on them.

use serde::{Deserialize, Serialize};

use super::tokens::TokenSource;

/// A member's addresses as it announced them when it joined, its GPUs as it last published
/// them, and whether it has a Hugging Face token of its own. Voter/learner status lives in
/// the Raft membership, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: u64,
    pub api_addr: String,
    pub peer_addr: String,
    pub joined_ms: i64,
    pub gpus: Vec<Gpu>,
    /// The node was started with `HF_TOKEN` in its environment (never the value): the last
    /// level of token resolution for slots it runs.
    pub hf_token_in_env: bool,
}

/// What a `RegisterNode` command carries: a member's addresses (and, for a node not known
/// yet, its GPUs).
///
/// Its shape is frozen: it is also how node records were stored before they said whether
/// the node has an `HF_TOKEN`, so log entries and records written then still decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAnnouncement {
    pub id: u64,
    pub api_addr: String,
    pub peer_addr: String,
    pub joined_ms: i64,
    pub gpus: Vec<Gpu>,
}

impl NodeAnnouncement {
    pub fn into_record(self) -> NodeRecord {
        NodeRecord {
            id: self.id,
            api_addr: self.api_addr,
            peer_addr: self.peer_addr,
            joined_ms: self.joined_ms,
            gpus: self.gpus,
            hf_token_in_env: false,
        }
    }
}

/// One GPU of a node, as NVML reports it or as declared with `--gpus 80GB,...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The index vLLM sees in `CUDA_VISIBLE_DEVICES`.
    pub index: u32,
    pub name: String,
    /// NVML's UUID; `None` for declared GPUs.
    pub uuid: Option<String>,
    /// Total memory in bytes.
    pub memory: u64,
}

/// One running instance of a model: where the scheduler put it and what the runner there
/// reports. There is one slot per enabled prewarm model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub id: String,
    pub model_id: String,
    /// `None` while no node has room; see `pending_reason`.
    pub placement: Option<Placement>,
    pub pending_reason: Option<String>,
    /// Bumped by every placement change, so a runner notices a move (even back to itself)
    /// and ignores reports about an older placement.
    pub generation: u64,
    pub status: SlotStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub node_id: u64,
    pub gpu_indices: Vec<u32>,
}

/// What the runner on the slot's node last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotStatus {
    pub state: SlotState,
    pub port: Option<u16>,
    pub hf_token_source: Option<TokenSource>,
    pub restarts: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    #[default]
    Pending,
    Starting,
    Running,
    Failed,
    Stopped,
}

/// The slot id of a model: readable, filesystem-safe, and unique (a hash suffix tells apart
/// ids that sanitize alike).
pub fn slot_id_for(model_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let readable: String = model_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .take(64)
        .collect();
    let hash = hex::encode(&Sha256::digest(model_id.as_bytes())[..3]);
    format!("{readable}-{hash}")
}

/// The slot id of replica `replica` of a model: the first replica keeps the model's slot id
/// (so slots made before replicas keep theirs), the others add `_r<N>`.
pub fn replica_slot_id(model_id: &str, replica: u32) -> String {
    match replica {
        0 => slot_id_for(model_id),
        r => format!("{}_r{r}", slot_id_for(model_id)),
    }
}

/// Which replica a slot id names, and the slot id of its model's first replica.
pub fn split_replica(slot_id: &str) -> (&str, u32) {
    match slot_id.rsplit_once("_r") {
        Some((base, n)) if !n.starts_with('0') => match n.parse() {
            Ok(r) => (base, r),
            Err(_) => (slot_id, 0),
        },
        _ => (slot_id, 0),
    }
}
