//! The JSON the admin API accepts and answers, as types: the handlers build and parse them,
//! the `helix` command line sends and reads them. Field names and shapes are the API that
//! users and scripts rely on: renaming a field here changes it for all of them.
//!
//! Requests refuse unknown fields, so a typo is named in a 400 instead of ignored. Tokens
//! in requests are `SecretString`s: they never show in `Debug` output or logs.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

pub use crate::cluster::QuorumView;
use crate::state::{ModelType, OrgRole, Runtime, TokenSource};

mod cluster;

pub use cluster::*;

// ------------------------------------------------------------------------------------ models

/// A model as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    pub runtime: Runtime,
    /// Bytes.
    pub memory: u64,
    pub context_length: Option<u64>,
    pub description: String,
    pub enabled: bool,
    pub auto_pull: bool,
    pub prewarm: bool,
    pub runtime_args: Vec<String>,
    pub created: String,
    pub updated: String,
    pub owner_user_id: Option<String>,
    pub organization_id: Option<String>,
    /// The token itself is write-only.
    pub huggingface_token_set: bool,
    /// How many slots run it (when prewarm), on distinct GPUs.
    pub replicas: u32,
}

/// The body of model create and update (the seed's model.json). Every field is optional
/// for update; create needs `id`. Absent fields are left out, so an update changes only
/// what it names.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub model_type: Option<ModelType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_pull: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// Write-only: `""` clears it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional"
    )]
    #[schema(value_type = Option<String>, max_length = 1024, pattern = "^\\S*$")]
    pub huggingface_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 64)]
    pub replicas: Option<u32>,
}

/// A model's GPU memory as given: bytes, or a size such as "39GB" or "36GiB" that the
/// server parses (so every client reads units alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged, try_from = "serde_json::Value")]
pub enum Memory {
    Bytes(u64),
    Size(String),
}

impl TryFrom<serde_json::Value> for Memory {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        match value {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Memory::Bytes)
                .ok_or_else(|| "must be a whole number of bytes".into()),
            serde_json::Value::String(s) => Ok(Memory::Size(s)),
            _ => Err("expected a number of bytes or a string such as \"39GB\"".into()),
        }
    }
}

/// Which level a launch of a model takes its token from (never the token), and whose.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenSourceView {
    pub source: TokenSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// The node that runs the model's slot, or would run it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
}

// ------------------------------------------------------------------------- token settings

/// Token settings of the system, an organization, a user or a model: whether a token is
/// set and where it comes from, never its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenSettingsView {
    /// `system`, or the holder's id.
    pub id: String,
    pub created: String,
    pub updated: String,
    pub huggingface_token_set: bool,
    pub huggingface_token_source: SettingsTokenSource,
}

/// Where a settings page's token comes from. `environment` (the answering node's
/// `HF_TOKEN`) only for the system settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SettingsTokenSource {
    Database,
    Environment,
    None,
}

/// The body of a settings update.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSettingsUpdate {
    /// Absent: unchanged. `""`: clear. Anything else: the new token.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional"
    )]
    #[schema(value_type = Option<String>, max_length = 1024, pattern = "^\\S*$")]
    pub huggingface_token: Option<SecretString>,
}

/// The body of a system settings update: the cluster-wide token, and (as the design notes
/// shape it) organizations' and users' tokens by id, all applied together or not at all.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemSettingsUpdate {
    /// Absent: unchanged. `""`: clear. Anything else: the new token.
    #[schema(value_type = Option<String>, max_length = 1024, pattern = "^\\S*$")]
    pub huggingface_token: Option<SecretString>,
    /// Organization id → its token (`""` clears it). Admins only; all entries or none.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub org_hf_tokens: Option<BTreeMap<String, SecretString>>,
    /// User id → their token (`""` clears it). Admins only; all entries or none.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub user_hf_tokens: Option<BTreeMap<String, SecretString>>,
}

/// A node's runner view: whether the cluster-wide token opens here, how far it applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunnerConfigView {
    pub node_id: u64,
    pub huggingface_token_set: bool,
    pub applied_index: u64,
    /// Entries up to here are gone from this node's Raft log (`helix operator compact`).
    pub log_purged_through: Option<u64>,
    pub seal_key: SealKeyView,
    pub gossip: GossipStatusView,
}

/// What this node's gossip says: who is alive, who was declared down, and how many
/// datagrams it refused (forged, stale, replayed or malformed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GossipStatusView {
    /// False until this node holds the keyring's gossip key.
    pub running: bool,
    pub live_nodes: Vec<u64>,
    pub down_nodes: Vec<u64>,
    pub dropped_datagrams: u64,
}

/// This node's seal key: its public id, where it comes from, and whether it opens the
/// cluster's keyring (when not, the node seals and opens no token, and says why).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SealKeyView {
    pub id: String,
    /// `data-dir` (derived from the cluster key) or `file`.
    pub source: String,
    pub opens_keyring: bool,
    pub problem: Option<String>,
}

/// `helix operator keyring list`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyringView {
    /// The id of the seal key the cluster's data keys are wrapped with.
    pub seal_key_id: String,
    pub current: u32,
    pub keys: Vec<DataKeyView>,
    /// Tokens still sealed with the cluster key from before keyrings (until a rotation).
    pub legacy_secrets: usize,
    pub this_node: SealKeyView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataKeyView {
    pub id: u32,
    pub created: String,
    pub age_seconds: i64,
    /// How many stored tokens it seals.
    pub secrets: usize,
    pub current: bool,
}

/// `helix operator compact`: what was asked of every node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompactionView {
    /// Each node compacts its log up to what it has applied when it applies the request:
    /// through this index at least, which every write acknowledged before it is below.
    pub purges_through_at_least: u64,
    /// This node's log is purged through here (it compacts as the others do).
    pub this_node_purged_through: Option<u64>,
}

// ------------------------------------------------------------------------------- tenancy

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub created: String,
    pub updated: String,
    pub huggingface_token_set: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub organization_id: Option<String>,
    pub org_role: Option<OrgRole>,
    pub created: String,
    pub huggingface_token_set: bool,
    /// A disabled user's keys all get 401 until an admin enables them.
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// `owner` or `member` (the default) of `organization_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_role: Option<OrgRole>,
}

/// A created user and its first API key: the one answer that shows that key (only its
/// hash is stored), because the caller asked for it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewUserView {
    #[serde(flatten)]
    pub user: UserView,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub api_key: SecretString,
    pub api_key_id: String,
}

/// Another API key for a user (or a rotated one), shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyView {
    pub id: String,
    pub user_id: String,
    pub name: Option<String>,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub api_key: SecretString,
}

/// The optional body of `POST /users/{id}/api-keys`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
}

/// One of a user's API keys, never its value. `last_used` is as coarse as
/// `server.key_use_report_ms` (a minute by default); `null` when never seen in use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub created: String,
    pub last_used: Option<String>,
}

/// One change of a secret or a permission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub seq: u64,
    pub at: String,
    pub actor_user_id: Option<String>,
    pub kind: String,
    pub level: String,
    pub target: Option<String>,
}

// ------------------------------------------------------------------------------- secrets

/// A secret goes on the wire only inside the request or answer that carries it;
/// `SecretString` has no `Serialize` of its own so that nothing else can.
fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

fn expose_optional<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => expose(secret, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn memory(value: serde_json::Value) -> Result<Option<Memory>, String> {
        serde_json::from_value::<ModelInput>(json!({ "memory": value }))
            .map(|input| input.memory)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn memory_is_bytes_or_a_size() {
        assert_eq!(memory(json!(1000)), Ok(Some(Memory::Bytes(1000))));
        assert_eq!(memory(json!("39GB")), Ok(Some(Memory::Size("39GB".into()))));
        assert_eq!(memory(json!(null)), Ok(None));
        assert_eq!(
            memory(json!(1.5)),
            Err("must be a whole number of bytes".into())
        );
        assert_eq!(
            memory(json!(true)),
            Err("expected a number of bytes or a string such as \"39GB\"".into())
        );
        assert_eq!(json!(Memory::Bytes(5)), json!(5));
        assert_eq!(json!(Memory::Size("5GB".into())), json!("5GB"));
    }

    #[test]
    fn a_token_is_sent_but_never_debug_printed() {
        let update = TokenSettingsUpdate {
            huggingface_token: Some(SecretString::from("hf_secret")),
        };
        assert_eq!(json!(update), json!({ "huggingface_token": "hf_secret" }));
        assert!(!format!("{update:?}").contains("hf_secret"));
        assert_eq!(json!(TokenSettingsUpdate::default()), json!({}));
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_value::<ModelInput>(json!({ "bogus": 1 })).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn a_new_user_answer_reads_back_as_sent() {
        let sent = json!({
            "id": "u1", "name": "alice", "admin": false, "organization_id": "o1",
            "org_role": "owner", "created": "2025-01-01T00:00:00Z",
            "huggingface_token_set": false, "disabled": false, "api_key": "hx_k",
            "api_key_id": "k1",
        });
        let read: NewUserView = serde_json::from_value(sent.clone()).expect("reads");
        assert_eq!(json!(read), sent);
    }
}
