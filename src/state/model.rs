//! The replicated data model: what every node stores, identically, in sled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::SealedSecret;

/// The whole replicated state. `apply` (in `apply.rs`) is the only thing that changes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub settings: SystemSettings,
    pub users: BTreeMap<String, User>,
    /// API keys by the hex SHA-256 of the key: lookups hash the presented key.
    pub api_keys: BTreeMap<String, ApiKey>,
    pub models: BTreeMap<String, Model>,
    pub nodes: BTreeMap<u64, NodeRecord>,
    pub slots: BTreeMap<String, Slot>,
    pub orgs: BTreeMap<String, Org>,
    /// Changes of secrets and permissions, oldest first, the last [`AUDIT_KEEP`] of them.
    pub audit: BTreeMap<u64, AuditEntry>,
}

/// How many audit entries the state keeps (older ones are dropped as new ones arrive).
pub const AUDIT_KEEP: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Sealed with scope `org:<id>`.
    pub hf_token: Option<SealedSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Owner,
    Member,
}

/// Who did what to which secret or permission, and when. Never a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// The user whose key made the change; `None` for the cluster itself.
    pub actor_user_id: Option<String>,
    /// e.g. `hf_token_set`, `hf_token_cleared`, `api_key_issued`, `api_key_revoked`,
    /// `user_created`, `org_created`.
    pub kind: String,
    /// `system`, `organization`, `user`, `model` or `api_key`.
    pub level: String,
    /// The id at that level (org, user, model or key id); `None` for system.
    pub target: Option<String>,
}

/// The AEAD scope of each level's token, so a sealed token only opens where it was set.
pub fn token_scope(level: &str, id: &str) -> String {
    format!("{level}:{id}")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemSettings {
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The cluster-wide Hugging Face token, sealed with scope [`SYSTEM_TOKEN_SCOPE`].
    pub hf_token: Option<SealedSecret>,
}

/// The AEAD scope of the cluster-wide token.
pub const SYSTEM_TOKEN_SCOPE: &str = "system";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub created_ms: i64,
    pub organization_id: Option<String>,
    pub org_role: Option<OrgRole>,
    /// Sealed with scope `user:<id>`.
    pub hf_token: Option<SealedSecret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier, used to revoke the key without knowing it.
    pub id: String,
    pub user_id: String,
    pub created_ms: i64,
}

/// A member's addresses as it announced them when it joined, and its GPUs as it last
/// published them. Voter/learner status lives in the Raft membership, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: u64,
    pub api_addr: String,
    pub peer_addr: String,
    pub joined_ms: i64,
    pub gpus: Vec<Gpu>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Chat,
    Embed,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Vllm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub model_type: ModelType,
    pub runtime: Runtime,
    /// GPU memory the model needs, in bytes.
    pub memory: u64,
    pub context_length: Option<u64>,
    pub description: String,
    pub enabled: bool,
    pub auto_pull: bool,
    pub prewarm: bool,
    pub runtime_args: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub owner_user_id: Option<String>,
    pub organization_id: Option<String>,
    /// Sealed with scope `model:<id>`; write-only through the API.
    pub hf_token: Option<SealedSecret>,
}

/// A partial change to a model: `None` leaves a field as it is. `apply` merges it, so two
/// concurrent updates of different fields both land.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPatch {
    pub name: Option<String>,
    pub model_type: Option<ModelType>,
    pub runtime: Option<Runtime>,
    pub memory: Option<u64>,
    /// `Some(None)` removes the context length.
    pub context_length: Option<Option<u64>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub auto_pull: Option<bool>,
    pub prewarm: Option<bool>,
    pub runtime_args: Option<Vec<String>>,
    pub owner_user_id: Option<Option<String>>,
    pub organization_id: Option<Option<String>>,
    pub hf_token: Option<super::TokenUpdate>,
}

impl Model {
    /// A model with every optional field at its default.
    pub fn new(id: String) -> Model {
        Model {
            name: id.clone(),
            id,
            model_type: ModelType::Chat,
            runtime: Runtime::Vllm,
            memory: 0,
            context_length: None,
            description: String::new(),
            enabled: true,
            auto_pull: false,
            prewarm: false,
            runtime_args: Vec::new(),
            created_ms: 0,
            updated_ms: 0,
            owner_user_id: None,
            organization_id: None,
            hf_token: None,
        }
    }

    pub fn apply_patch(&mut self, patch: &ModelPatch) {
        let p = patch.clone();
        if let Some(v) = p.name {
            self.name = v;
        }
        if let Some(v) = p.model_type {
            self.model_type = v;
        }
        if let Some(v) = p.runtime {
            self.runtime = v;
        }
        if let Some(v) = p.memory {
            self.memory = v;
        }
        if let Some(v) = p.context_length {
            self.context_length = v;
        }
        if let Some(v) = p.description {
            self.description = v;
        }
        if let Some(v) = p.enabled {
            self.enabled = v;
        }
        if let Some(v) = p.auto_pull {
            self.auto_pull = v;
        }
        if let Some(v) = p.prewarm {
            self.prewarm = v;
        }
        if let Some(v) = p.runtime_args {
            self.runtime_args = v;
        }
        if let Some(v) = p.owner_user_id {
            self.owner_user_id = v;
        }
        if let Some(v) = p.organization_id {
            self.organization_id = v;
        }
        super::TokenUpdate::apply(&p.hf_token, &mut self.hf_token);
    }
}

/// Parse a memory size: a number of bytes, or a number with a decimal (KB MB GB TB) or binary
/// (KiB MiB GiB TiB) unit. Fractions are allowed ("1.5GB").
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 39GB, 36GiB or a number of bytes"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("39GB").unwrap(), 39_000_000_000);
        assert_eq!(parse_memory("36GiB").unwrap(), 36 * (1 << 30));
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert_eq!(parse_memory("1.5KB").unwrap(), 1500);
        assert!(parse_memory("12XB").is_err());
        assert!(parse_memory("GB").is_err());
        assert!(parse_memory("").is_err());
    }
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    #[default]
    Pending,
    Starting,
    Running,
    Failed,
    Stopped,
}

/// Which level a slot's Hugging Face token came from (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    Model,
    User,
    Organization,
    System,
    Environment,
    None,
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
