//! Commands: the only way the replicated state changes. A command is built and validated by
//! the node that received the request (which also seals any secret), then proposed through
//! Raft; `apply` is deterministic, so every node ends in the same state.

use serde::{Deserialize, Serialize};

use crate::crypto::WrappedKey;

use super::catalog::{Model, ModelType, ModelV1, Runtime};
use super::keyring::{Keyring, Reseal};
use super::nodes::{Gpu, NodeAnnouncement, Placement, SlotStatus};
use super::tenancy::{NewUser, Org, User};
use super::tokens::TokenUpdate;
use super::trust::{CaRecord, IssuedCertificate};

/// What goes into the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Hash of the API key that asked for this change; `None` for changes the cluster makes
    /// itself (bootstrap, membership and runner bookkeeping). `apply` re-checks the key, so
    /// a key revoked in the meantime fails, and accepts no actor only for the commands
    /// [`super::State::rule_for`] reserves to the cluster.
    pub actor: Option<String>,
    /// Wall-clock time, stamped by the leader that appends the proposal (whatever the
    /// proposer sent), so `apply` never reads a clock; `apply` never lets it go back.
    pub at_ms: i64,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// First write of a new cluster: the first admin user and its key. Ignored once users
    /// exist (a retry), but refused if malformed even then.
    Bootstrap {
        admin: NewUser,
        key_id: String,
        key_hash: String,
    },
    /// Partial update of system settings; `None` leaves the token as it is.
    UpdateSystemSettings {
        hf_token: Option<TokenUpdate>,
    },
    /// Record (or update) a member's addresses; its published GPUs are kept.
    RegisterNode(NodeAnnouncement),
    /// A node's GPU inventory, published when it starts or changes.
    PublishGpus {
        node_id: u64,
        gpus: Vec<Gpu>,
    },
    /// The leader's placement decisions, applied together.
    Schedule(Vec<SlotChange>),
    /// A runner's report on a slot it runs; ignored unless the slot is still placed there
    /// with the same generation.
    ReportSlot {
        slot_id: String,
        node_id: u64,
        generation: u64,
        status: SlotStatus,
    },
    /// Forget a member that was removed from the Raft membership.
    RemoveNode {
        id: u64,
    },
    CreateOrg(Org),
    /// A new user and its first API key (stored as a hash).
    CreateUser {
        user: NewUser,
        key_id: String,
        key_hash: String,
    },
    IssueApiKey {
        user_id: String,
        key_id: String,
        key_hash: String,
    },
    RevokeApiKey {
        key_id: String,
    },
    UpdateOrgSettings {
        org_id: String,
        hf_token: Option<TokenUpdate>,
    },
    UpdateUserSettings {
        user_id: String,
        hf_token: Option<TokenUpdate>,
    },
    /// A model, as proposed before models had `replicas` (see `upgrade.rs`).
    CreateModelV1(ModelV1),
    /// A partial change, as proposed before models had `replicas`.
    UpdateModelV1 {
        id: String,
        patch: ModelPatchV1,
    },
    DeleteModel {
        id: String,
    },
    /// Whether a node has an `HF_TOKEN` of its own (never its value), published when it
    /// starts. New commands go last: a log entry names its command by position.
    PublishEnvToken {
        node_id: u64,
        present: bool,
    },
    /// The cluster CA, made at bootstrap. Ignored once there is one.
    InitCa(CaRecord),
    /// A join token; it expires `ttl_ms` after the leader's stamp.
    CreateJoinToken {
        id: String,
        secret_hash: String,
        ttl_ms: i64,
        max_uses: Option<u32>,
    },
    RevokeJoinToken {
        id: String,
    },
    /// The leader admitted a node with a join token and issued it a certificate: one use of
    /// the token is spent (refused if it no longer admits) and the certificate recorded.
    AdmitNode {
        token_id: String,
        secret_hash: String,
        certificate: IssuedCertificate,
    },
    /// A certificate the leader issued to a member (bootstrap, renewal).
    RecordCertificate(IssuedCertificate),
    /// An API key with an optional name (`IssueApiKey` is the unnamed form of old logs).
    IssueNamedApiKey {
        user_id: String,
        key_id: String,
        key_hash: String,
        name: Option<String>,
    },
    /// A new key for the same user, with the same name, in place of `key_id`, which is
    /// revoked in the same apply.
    RotateApiKey {
        key_id: String,
        new_key_id: String,
        new_key_hash: String,
    },
    /// A disabled user's keys all stop working (also for proposals already in flight).
    SetUserDisabled {
        user_id: String,
        disabled: bool,
    },
    /// Keys (by hash) a node saw in use since its last report: their last use becomes the
    /// leader's stamp. Each node proposes this at most once a minute, so it is coarse.
    TouchApiKeys {
        key_hashes: Vec<String>,
    },
    /// The cluster's first keyring, made by its first leader. Ignored once there is one.
    InstallKeyring(Keyring),
    /// A new data key, and every stored token re-sealed with it; keys that then seal
    /// nothing are destroyed in the same apply.
    RotateKeyring {
        /// The seal key that wrapped `wrapped`; must be the keyring's.
        seal_key_id: String,
        key_id: u32,
        wrapped: WrappedKey,
        resealed: Vec<Reseal>,
    },
    /// Every node compacts its Raft log up to what it has applied, when it applies this.
    CompactLogs,
    CreateModel(Model),
    /// Merge a partial change into a model.
    UpdateModel {
        id: String,
        patch: ModelPatch,
    },
    /// Tokens of several levels at once, all changed or none (the design notes' settings
    /// body with `org_hf_tokens` and `user_hf_tokens` maps).
    UpdateTokenSettings {
        system: Option<TokenUpdate>,
        orgs: Vec<(String, TokenUpdate)>,
        users: Vec<(String, TokenUpdate)>,
    },
    /// Autopilot changed a member's vote (the membership change itself went through Raft's
    /// own membership entries): recorded for the audit log and the status page.
    RecordAutopilot {
        action: AutopilotAction,
        node_id: u64,
    },
}

/// The one-level settings commands an [`Command::UpdateTokenSettings`] stands for.
pub fn token_settings_parts(
    system: &Option<TokenUpdate>,
    orgs: &[(String, TokenUpdate)],
    users: &[(String, TokenUpdate)],
) -> Vec<Command> {
    let system = system.iter().map(|update| Command::UpdateSystemSettings {
        hf_token: Some(update.clone()),
    });
    let orgs = orgs
        .iter()
        .map(|(org_id, update)| Command::UpdateOrgSettings {
            org_id: org_id.clone(),
            hf_token: Some(update.clone()),
        });
    let users = users
        .iter()
        .map(|(user_id, update)| Command::UpdateUserSettings {
            user_id: user_id.clone(),
            hf_token: Some(update.clone()),
        });
    system.chain(orgs).chain(users).collect()
}

/// What autopilot did to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutopilotAction {
    /// A learner became a voter in place of a voter that stopped answering.
    Promoted,
    /// A voter that stopped answering became a learner.
    Demoted,
}

impl AutopilotAction {
    /// The audit entry's kind.
    pub fn audit_kind(self) -> &'static str {
        match self {
            AutopilotAction::Promoted => "autopilot_promoted",
            AutopilotAction::Demoted => "autopilot_demoted",
        }
    }
}

impl Command {
    /// The command's name, for refusals.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Bootstrap { .. } => "Bootstrap",
            Command::UpdateSystemSettings { .. } => "UpdateSystemSettings",
            Command::RegisterNode(_) => "RegisterNode",
            Command::PublishGpus { .. } => "PublishGpus",
            Command::Schedule(_) => "Schedule",
            Command::ReportSlot { .. } => "ReportSlot",
            Command::RemoveNode { .. } => "RemoveNode",
            Command::CreateOrg(_) => "CreateOrg",
            Command::CreateUser { .. } => "CreateUser",
            Command::IssueApiKey { .. } => "IssueApiKey",
            Command::RevokeApiKey { .. } => "RevokeApiKey",
            Command::UpdateOrgSettings { .. } => "UpdateOrgSettings",
            Command::UpdateUserSettings { .. } => "UpdateUserSettings",
            Command::CreateModel(_) | Command::CreateModelV1(_) => "CreateModel",
            Command::UpdateModel { .. } | Command::UpdateModelV1 { .. } => "UpdateModel",
            Command::DeleteModel { .. } => "DeleteModel",
            Command::PublishEnvToken { .. } => "PublishEnvToken",
            Command::InitCa(_) => "InitCa",
            Command::CreateJoinToken { .. } => "CreateJoinToken",
            Command::RevokeJoinToken { .. } => "RevokeJoinToken",
            Command::AdmitNode { .. } => "AdmitNode",
            Command::RecordCertificate(_) => "RecordCertificate",
            Command::IssueNamedApiKey { .. } => "IssueNamedApiKey",
            Command::RotateApiKey { .. } => "RotateApiKey",
            Command::SetUserDisabled { .. } => "SetUserDisabled",
            Command::TouchApiKeys { .. } => "TouchApiKeys",
            Command::InstallKeyring(_) => "InstallKeyring",
            Command::UpdateTokenSettings { .. } => "UpdateTokenSettings",
            Command::RotateKeyring { .. } => "RotateKeyring",
            Command::CompactLogs => "CompactLogs",
            Command::RecordAutopilot { .. } => "RecordAutopilot",
        }
    }
}

/// One placement decision. `expect_generation` makes a decision taken on an older view (say,
/// by a leader that has since been deposed) a no-op instead of a surprise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SlotChange {
    Place {
        slot_id: String,
        model_id: String,
        expect_generation: u64,
        placement: Placement,
    },
    Pending {
        slot_id: String,
        model_id: String,
        expect_generation: u64,
        reason: String,
    },
    Remove {
        slot_id: String,
    },
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
    pub hf_token: Option<TokenUpdate>,
    pub replicas: Option<u32>,
}

impl ModelPatch {
    /// Changes nothing but the model's token (or nothing at all).
    pub fn only_token(&self) -> bool {
        *self
            == ModelPatch {
                hf_token: self.hf_token.clone(),
                ..ModelPatch::default()
            }
    }
}

/// A model patch as proposed before models had `replicas`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPatchV1 {
    pub name: Option<String>,
    pub model_type: Option<ModelType>,
    pub runtime: Option<Runtime>,
    pub memory: Option<u64>,
    pub context_length: Option<Option<u64>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub auto_pull: Option<bool>,
    pub prewarm: Option<bool>,
    pub runtime_args: Option<Vec<String>>,
    pub owner_user_id: Option<Option<String>>,
    pub organization_id: Option<Option<String>>,
    pub hf_token: Option<TokenUpdate>,
}

impl Model {
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
        if let Some(v) = p.replicas {
            self.replicas = v;
        }
        TokenUpdate::apply(&p.hf_token, &mut self.hf_token);
    }
}

/// What a command answers once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Model(Model),
    Org(Org),
    User(User),
}

/// Why a command was refused at apply time. Deterministic: every node refuses alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum StateError {
    #[error("API key is unknown or revoked")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A malformed command: the message names the field. New variants go last: a refusal
    /// crosses the peer protocol by position.
    #[error("{0}")]
    Invalid(String),
}

/// The application response type carried back through Raft.
pub type Outcome = Result<Reply, StateError>;
