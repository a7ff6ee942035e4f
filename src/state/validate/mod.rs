//! What a command must look like: the one place for the rules the API checks on request
//! bodies (for an early 400) and `apply` checks again (so a command that reached the log by
//! another way than the API is refused alike, on every node). Every refusal names the field.
//!
//! [`Command::validate`] needs nothing but the command; the checks against the state (the
//! owner a model names exists, a key is new) are `State` methods below, which `apply` runs
//! before it changes anything.

mod admission;
mod keyring;
mod nodes;
mod trust;

use std::fmt::Display;
use std::net::SocketAddr;

use super::catalog::Model;
use super::command::{token_settings_parts, Command, StateError};
use super::tenancy::NewUser;
use super::tokens::TokenUpdate;
use super::State;
use crate::crypto::SealedSecret;
use keyring::{check_first_keyring, check_rotation};
use nodes::{check_announcement, check_gpus, check_report, check_slot_change, check_slot_id};
use trust::{check_ca, check_certificate, check_join_token, JOIN_TOKEN_TTL_MAX_MS};

/// Most replicas a model may ask for.
pub const REPLICAS_MAX: u32 = 64;
/// Longest Hugging Face token accepted, in bytes.
pub const HF_TOKEN_MAX: usize = 1024;
/// Longest user or organization name, in bytes.
const NAME_MAX: usize = 128;
/// Longest model id or model name, in bytes.
pub(super) const MODEL_TEXT_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const RUNTIME_ARGS_MAX: usize = 256;
/// A model's memory below this is a number of bytes meant as gigabytes ("39"), not a model.
pub const MEMORY_MIN: u64 = 1 << 20;
/// Arguments helix sets itself (or that would escape the slot's isolation).
const RESERVED_ARGS: &[&str] = &["--host", "--port"];
/// What `/api/v1/helix-models/{id}/...` can name besides the model itself.
const MODEL_SUB_RESOURCES: &[&str] = &["token-source", "settings"];
/// Longest user, organization or API key id.
const ID_MAX: usize = 64;
/// Most keys one `TouchApiKeys` may name.
pub const TOUCHED_KEYS_MAX: usize = 4096;
/// Most organizations (or users) one settings request may set tokens for.
const TOKEN_SETTINGS_MAX: usize = 1024;
/// Most GPUs one node may publish.
pub(super) const GPUS_MAX: usize = 256;
/// Longest text a runner or the scheduler reports (an error, a pending reason).
pub(super) const REPORT_MAX: usize = 8192;

/// A refusal that names `field`, worded as the API words it.
pub fn invalid(field: &str, message: impl Display) -> StateError {
    StateError::Invalid(format!("invalid field `{field}`: {message}"))
}

impl Command {
    /// Is the command well formed? Only the command is looked at. A new command gets its
    /// rules here.
    pub fn validate(&self) -> Result<(), StateError> {
        match self {
            Command::Bootstrap {
                admin,
                key_id,
                key_hash,
            } => {
                check_new_user(admin)?;
                if !admin.admin {
                    return Err(invalid("admin", "the first user must be an admin"));
                }
                if admin.organization_id.is_some() {
                    return Err(invalid(
                        "organization_id",
                        "no organization exists before the first user",
                    ));
                }
                check_key("key_id", key_id, key_hash)
            }
            Command::UpdateSystemSettings { hf_token } => check_token_update(hf_token),
            Command::RegisterNode(node) => check_announcement(node),
            Command::PublishGpus { gpus, .. } => check_gpus("gpus", gpus),
            Command::Schedule(changes) => changes.iter().try_for_each(check_slot_change),
            Command::ReportSlot {
                slot_id, status, ..
            } => {
                check_slot_id("slot_id", slot_id)?;
                if let Some(error) = &status.last_error {
                    check_report("status.last_error", error)?;
                }
                Ok(())
            }
            Command::RemoveNode { .. } | Command::PublishEnvToken { .. } => Ok(()),
            Command::CreateOrg(org) => {
                check_id("id", &org.id)?;
                check_name("name", &org.name)?;
                if org.hf_token.is_some() {
                    return Err(invalid(
                        "hf_token",
                        "a new organization's token is set through its settings",
                    ));
                }
                Ok(())
            }
            Command::CreateUser {
                user,
                key_id,
                key_hash,
            } => {
                check_new_user(user)?;
                check_key("key_id", key_id, key_hash)
            }
            Command::IssueApiKey {
                user_id,
                key_id,
                key_hash,
            } => {
                check_id("user_id", user_id)?;
                check_key("key_id", key_id, key_hash)
            }
            Command::IssueNamedApiKey {
                user_id,
                key_id,
                key_hash,
                name,
            } => {
                check_id("user_id", user_id)?;
                check_key("key_id", key_id, key_hash)?;
                name.as_deref().map_or(Ok(()), |n| check_name("name", n))
            }
            Command::RotateApiKey {
                key_id,
                new_key_id,
                new_key_hash,
            } => {
                check_id("key_id", key_id)?;
                check_id("new_key_id", new_key_id)?;
                check_key_hash("new_key_hash", new_key_hash)
            }
            Command::SetUserDisabled { user_id, .. } => check_id("user_id", user_id),
            Command::TouchApiKeys { key_hashes } => {
                if key_hashes.len() > TOUCHED_KEYS_MAX {
                    return Err(invalid(
                        "key_hashes",
                        format!("at most {TOUCHED_KEYS_MAX} keys at once"),
                    ));
                }
                key_hashes
                    .iter()
                    .try_for_each(|h| check_key_hash("key_hashes", h))
            }
            Command::RevokeApiKey { key_id } => check_id("key_id", key_id),
            Command::UpdateOrgSettings { org_id, hf_token } => {
                check_id("org_id", org_id)?;
                check_token_update(hf_token)
            }
            Command::UpdateUserSettings { user_id, hf_token } => {
                check_id("user_id", user_id)?;
                check_token_update(hf_token)
            }
            Command::CreateModelV1(_) | Command::UpdateModelV1 { .. } => self.upgraded().validate(),
            Command::CreateModel(model) => model.validate(),
            // The merged model is validated by `apply`, against the committed one.
            Command::UpdateModel { id, patch } => {
                check_model_id(id)?;
                check_token_update(&patch.hf_token)
            }
            Command::DeleteModel { id } => check_model_id(id),
            Command::InitCa(ca) => check_ca(ca),
            Command::CreateJoinToken {
                id,
                secret_hash,
                ttl_ms,
                max_uses,
            } => {
                check_join_token(id, secret_hash)?;
                if !(1..=JOIN_TOKEN_TTL_MAX_MS).contains(ttl_ms) {
                    return Err(invalid(
                        "ttl_ms",
                        "must be more than zero and at most a year",
                    ));
                }
                if *max_uses == Some(0) {
                    return Err(invalid("max_uses", "must be at least 1"));
                }
                Ok(())
            }
            Command::RevokeJoinToken { id } => check_id("id", id),
            Command::AdmitNode {
                token_id,
                secret_hash,
                certificate,
            } => {
                check_join_token(token_id, secret_hash)?;
                check_certificate(certificate)
            }
            Command::RecordCertificate(certificate) => check_certificate(certificate),
            Command::InstallKeyring(keyring) => check_first_keyring(keyring),
            Command::RotateKeyring {
                seal_key_id,
                key_id,
                wrapped,
                resealed,
            } => check_rotation(seal_key_id, *key_id, wrapped, resealed),
            Command::CompactLogs | Command::RecordAutopilot { .. } => Ok(()),
            Command::UpdateTokenSettings {
                system,
                orgs,
                users,
            } => {
                for (field, entries) in [("org_hf_tokens", orgs), ("user_hf_tokens", users)] {
                    if entries.len() > TOKEN_SETTINGS_MAX {
                        return Err(invalid(
                            field,
                            format!("at most {TOKEN_SETTINGS_MAX} entries at once"),
                        ));
                    }
                    let ids: std::collections::BTreeSet<_> = entries.iter().map(|e| &e.0).collect();
                    if ids.len() != entries.len() {
                        return Err(invalid(field, "names an id twice"));
                    }
                }
                token_settings_parts(system, orgs, users)
                    .iter()
                    .try_for_each(Command::validate)
            }
        }
    }
}

impl Model {
    /// Is the model, as it would be stored, acceptable?
    pub fn validate(&self) -> Result<(), StateError> {
        check_model_id(&self.id)?;
        if !(1..=REPLICAS_MAX).contains(&self.replicas) {
            return Err(invalid(
                "replicas",
                format!("must be from 1 to {REPLICAS_MAX}"),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.name.len() > MODEL_TEXT_MAX || self.name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                format!("must be at most {MODEL_TEXT_MAX} printable characters"),
            ));
        }
        if self.description.len() > DESCRIPTION_MAX {
            return Err(invalid(
                "description",
                format!("is longer than {DESCRIPTION_MAX} characters"),
            ));
        }
        if self.prewarm && self.memory == 0 {
            return Err(invalid(
                "memory",
                "a prewarm model needs its GPU memory (e.g. \"39GB\") so it can be placed",
            ));
        }
        if self.context_length == Some(0) {
            return Err(invalid("context_length", "must be at least 1"));
        }
        if self.runtime_args.len() > RUNTIME_ARGS_MAX {
            return Err(invalid(
                "runtime_args",
                format!("has more than {RUNTIME_ARGS_MAX} arguments"),
            ));
        }
        for arg in &self.runtime_args {
            if arg.chars().any(char::is_control) {
                return Err(invalid(
                    "runtime_args",
                    "arguments must not contain control characters",
                ));
            }
            let flag = arg.split('=').next().unwrap_or("");
            if RESERVED_ARGS.contains(&flag) {
                return Err(invalid(
                    "runtime_args",
                    format!("{flag} is set by helix for each slot and must not be given"),
                ));
            }
        }
        if let Some(owner) = &self.owner_user_id {
            check_id("owner_user_id", owner)?;
        }
        if let Some(org) = &self.organization_id {
            check_id("organization_id", org)?;
        }
        if let Some(token) = &self.hf_token {
            check_sealed("hf_token", token)?;
        }
        Ok(())
    }
}

impl State {
    /// The users and organizations `model` names exist.
    pub fn check_model_refs(&self, model: &Model) -> Result<(), StateError> {
        if let Some(user) = &model.owner_user_id {
            if !self.users.contains_key(user) {
                return Err(invalid(
                    "owner_user_id",
                    format!("user {user:?} does not exist"),
                ));
            }
        }
        if let Some(org) = &model.organization_id {
            self.check_org_exists(org)?;
        }
        Ok(())
    }

    /// The organization a request names exists.
    pub fn check_org_exists(&self, org: &str) -> Result<(), StateError> {
        if self.orgs.contains_key(org) {
            Ok(())
        } else {
            Err(invalid(
                "organization_id",
                format!("organization {org:?} does not exist"),
            ))
        }
    }

    /// A key about to be stored is new: reusing a stored hash would take another user's
    /// key over, reusing an id would make revocation ambiguous.
    pub(super) fn check_new_key(&self, key_id: &str, key_hash: &str) -> Result<(), StateError> {
        if self.api_keys.contains_key(key_hash) {
            return Err(StateError::Conflict("this API key already exists".into()));
        }
        if self.key_hash_by_id(key_id).is_some() {
            return Err(StateError::Conflict(format!(
                "an API key with id {key_id:?} already exists"
            )));
        }
        Ok(())
    }
}

/// Model ids become paths on disk and arguments of vLLM: keep them tame.
pub fn check_model_id(id: &str) -> Result<(), StateError> {
    check_model_id_field("id", id)
}

/// [`check_model_id`] of the model id in `field`.
pub(super) fn check_model_id_field(field: &str, id: &str) -> Result<(), StateError> {
    let problem = if id.is_empty() {
        "must not be empty".to_string()
    } else if id.len() > MODEL_TEXT_MAX {
        format!("is longer than {MODEL_TEXT_MAX} characters")
    } else if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        "must not contain whitespace or control characters".to_string()
    } else if id.contains("..") || id.split('/').any(|part| part == ".") {
        "must not contain '..'".to_string()
    } else if id.starts_with('/') || id.ends_with('/') || id.contains("//") || id.starts_with('-') {
        "must look like ORG/NAME or NAME".to_string()
    } else if let Some(last) = MODEL_SUB_RESOURCES
        .iter()
        .find(|r| id.ends_with(&format!("/{r}")))
    {
        format!("must not end in /{last}: that path names the model's {last}")
    } else {
        return Ok(());
    };
    Err(invalid(field, problem))
}

/// A user or organization name.
pub fn check_name(field: &str, name: &str) -> Result<(), StateError> {
    if name.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if name.len() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be at most {NAME_MAX} printable characters"),
        ));
    }
    Ok(())
}

/// A peer or API address as members announce it.
pub fn check_addr(field: &str, addr: &str) -> Result<(), StateError> {
    addr.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(field, format!("{addr:?} is not HOST:PORT")))
}

/// A user, organization or API key id: what `random_id` makes, or a short plain name.
fn check_id(field: &str, id: &str) -> Result<(), StateError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if id.is_empty() || id.len() > ID_MAX || !id.chars().all(plain) {
        return Err(invalid(
            field,
            format!("{id:?} is not an id (1 to {ID_MAX} letters, digits, '-' or '_')"),
        ));
    }
    Ok(())
}

/// An API key's public id and the hex SHA-256 it is stored under.
fn check_key(id_field: &str, key_id: &str, key_hash: &str) -> Result<(), StateError> {
    check_id(id_field, key_id)?;
    check_key_hash("key_hash", key_hash)
}

fn check_key_hash(field: &str, key_hash: &str) -> Result<(), StateError> {
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if key_hash.len() != 64 || !key_hash.chars().all(lower_hex) {
        return Err(invalid(field, "must be 64 lowercase hex digits"));
    }
    Ok(())
}

fn check_new_user(user: &NewUser) -> Result<(), StateError> {
    check_id("id", &user.id)?;
    check_name("name", &user.name)?;
    match (&user.organization_id, user.org_role) {
        (Some(org), Some(_)) => check_id("organization_id", org)?,
        (None, None) => {}
        (None, Some(_)) => return Err(invalid("org_role", "needs organization_id")),
        (Some(_), None) => return Err(invalid("org_role", "is needed with organization_id")),
    }
    if user.hf_token.is_some() {
        return Err(invalid(
            "hf_token",
            "a new user's token is set through its settings",
        ));
    }
    Ok(())
}

pub(super) fn check_sealed(field: &str, token: &SealedSecret) -> Result<(), StateError> {
    if token.is_well_formed(HF_TOKEN_MAX) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("is not a token sealed by this cluster (at most {HF_TOKEN_MAX} bytes)"),
        ))
    }
}

fn check_token_update(update: &Option<TokenUpdate>) -> Result<(), StateError> {
    match update {
        Some(TokenUpdate::Set(token)) => check_sealed("hf_token", token),
        Some(TokenUpdate::Clear) | None => Ok(()),
    }
}
