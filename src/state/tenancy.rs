//! Who uses the cluster: system settings, organizations, users, their API keys, and the audit
//! log of changes to secrets and permissions.

use serde::{Deserialize, Serialize};

use crate::crypto::SealedSecret;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemSettings {
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The cluster-wide Hugging Face token, sealed for [`super::TokenScope::System`].
    pub hf_token: Option<SealedSecret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Sealed for [`super::TokenScope::Organization`].
    pub hf_token: Option<SealedSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Owner,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub created_ms: i64,
    /// When the user's settings (their Hugging Face token) last changed.
    pub updated_ms: i64,
    pub organization_id: Option<String>,
    pub org_role: Option<OrgRole>,
    /// Sealed for [`super::TokenScope::User`].
    pub hf_token: Option<SealedSecret>,
}

/// The user a `Bootstrap` or `CreateUser` command asks for; `apply` stamps its times.
///
/// Its shape is frozen: it is also how users were stored before they had `updated_ms`, so
/// log entries and records written then still decode (see `records.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub created_ms: i64,
    pub organization_id: Option<String>,
    pub org_role: Option<OrgRole>,
    pub hf_token: Option<SealedSecret>,
}

impl NewUser {
    /// The user as stored: created and last updated at `at_ms` unless `self` says otherwise.
    pub fn into_user(self, at_ms: i64) -> User {
        User {
            id: self.id,
            name: self.name,
            admin: self.admin,
            created_ms: at_ms,
            updated_ms: at_ms,
            organization_id: self.organization_id,
            org_role: self.org_role,
            hf_token: self.hf_token,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier, used to revoke the key without knowing it.
    pub id: String,
    pub user_id: String,
    pub created_ms: i64,
    /// What the owner calls it; the bootstrap key is named `bootstrap`.
    pub name: Option<String>,
    /// When a node last reported the key in use (coarse: see `TouchApiKeys`).
    pub last_used_ms: Option<i64>,
}

/// An API key as stored before keys had a name and a last use. Frozen: old records and
/// snapshots still decode (see `records.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyV1 {
    pub id: String,
    pub user_id: String,
    pub created_ms: i64,
}

impl ApiKeyV1 {
    pub fn upgrade(self) -> ApiKey {
        ApiKey {
            id: self.id,
            user_id: self.user_id,
            created_ms: self.created_ms,
            name: None,
            last_used_ms: None,
        }
    }
}

/// Who did what to which secret or permission, and when. Never a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// The user whose key made the change; `None` for the cluster itself.
    pub actor_user_id: Option<String>,
    /// e.g. `hf_token_set`, `hf_token_cleared`, `api_key_issued`, `api_key_revoked`,
    /// `user_created`, `org_created`, `node_admitted`, `node_removed`, `autopilot_promoted`,
    /// `autopilot_demoted`.
    pub kind: String,
    /// `system`, `organization`, `user`, `model` or `api_key`.
    pub level: String,
    /// The id at that level (org, user, model or key id); `None` for system.
    pub target: Option<String>,
}
