//! Commands: the only way the replicated state changes. A command is built and validated by
//! the node that received the request (which also seals any secret), then proposed through
//! Raft; `apply` is deterministic, so every node ends in the same state.

use serde::{Deserialize, Serialize};

use crate::crypto::SealedSecret;

use super::model::{Model, ModelPatch, NodeRecord, User};

/// What goes into the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Hash of the API key that asked for this change; `None` for changes the cluster makes
    /// itself (bootstrap, membership bookkeeping), which only arrive over the authenticated
    /// peer channel. `apply` re-checks the key, so a key revoked in the meantime fails.
    pub actor: Option<String>,
    /// Wall-clock time chosen by the proposer, so `apply` never reads a clock.
    pub at_ms: i64,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// First write of a new cluster: the first admin user and its key. Ignored once users exist.
    Bootstrap {
        admin: User,
        key_id: String,
        key_hash: String,
    },
    /// Partial update of system settings; `None` leaves the token as it is.
    UpdateSystemSettings {
        hf_token: Option<TokenUpdate>,
    },
    /// Record (or update) a member's addresses.
    RegisterNode(NodeRecord),
    /// Forget a member that was removed from the Raft membership.
    RemoveNode {
        id: u64,
    },
    CreateModel(Model),
    /// Merge a partial change into a model.
    UpdateModel {
        id: String,
        patch: ModelPatch,
    },
    DeleteModel {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenUpdate {
    Set(SealedSecret),
    Clear,
}

/// What a command answers once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Model(Model),
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
}

/// The application response type carried back through Raft.
pub type Outcome = Result<Reply, StateError>;
