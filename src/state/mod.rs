//! The replicated state: the data model, the commands that change it, the pure `apply`, who
//! may do what, and the token rulebook.

mod apply;
mod audit;
mod auth;
mod backup;
mod catalog;
pub mod codec;
mod command;
mod keyring;
mod nodes;
mod placement_inputs;
mod records;
mod sealer;
mod tenancy;
mod tokens;
mod trust;
mod upgrade;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

pub use audit::{AuditFilter, AuditLog, AUDIT_KEEP, AUDIT_PER_BUCKET};
pub use auth::{admin_only, Rule};
pub use backup::{decode_backup, encode_backup, Backup, BackupError, BACKUP_FORMAT};
pub use catalog::{parse_memory, Model, ModelType, ModelV1, Runtime};
pub use command::{
    AutopilotAction, Command, ModelPatch, Outcome, Proposal, Reply, SlotChange, StateError,
};
pub use keyring::{Keyring, KeyringKey, Reseal};
pub use nodes::{
    replica_slot_id, slot_id_for, split_replica, Gpu, NodeAnnouncement, NodeRecord, Placement,
    Slot, SlotState, SlotStatus,
};
pub use placement_inputs::PlacementInputs;
pub use records::StateKey;
pub use sealer::{SealError, Sealer};
pub use tenancy::{ApiKey, ApiKeyV1, AuditEntry, NewUser, Org, OrgRole, SystemSettings, User};
pub use tokens::{
    resolve, Resolution, TokenLevel, TokenScope, TokenSite, TokenSource, TokenUpdate,
};
pub use trust::{CaRecord, CertRecord, IssuedCertificate, JoinTokenRecord, JoinTokenStatus, Trust};
pub use validate::{
    check_addr, check_model_id, check_name, invalid, HF_TOKEN_MAX, MEMORY_MIN, REPLICAS_MAX,
    TOUCHED_KEYS_MAX,
};

/// The whole replicated state. `apply` (in `apply.rs`) is the only thing that changes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub settings: SystemSettings,
    pub users: BTreeMap<String, User>,
    /// API keys by the hex SHA-256 of the key: lookups hash the presented key.
    pub api_keys: BTreeMap<String, ApiKey>,
    /// Users whose keys all stop working until an admin enables them again.
    pub disabled_users: BTreeSet<String>,
    pub models: BTreeMap<String, Model>,
    pub nodes: BTreeMap<u64, NodeRecord>,
    pub slots: BTreeMap<String, Slot>,
    pub orgs: BTreeMap<String, Org>,
    /// Changes of secrets and permissions, oldest first, kept per actor and kind (see `audit.rs`).
    pub audit: AuditLog,
    /// The cluster CA, join tokens and issued certificates.
    pub trust: Trust,
    /// The latest time an applied proposal was stamped with: `apply` never goes back from
    /// it, even when a new leader's clock is behind the last one's.
    pub clock_ms: i64,
    /// The data keys that seal tokens; `None` until the first leader makes it.
    pub keyring: Option<Keyring>,
    /// How many times an operator asked every node to compact its Raft log now; each node
    /// compacts when it sees this grow.
    pub compactions: u64,
}

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod keyring_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod token_settings_tests;
