//! Who may do what: the one place that decides, for reads and writes alike, with one message
//! per rule. Handlers ask before they read or propose (and before sealing any token); `apply`
//! asks again at commit time. `docs/security.md` holds the same rules as a table.

use super::catalog::Model;
use super::command::{Command, StateError};
use super::tenancy::{ApiKey, OrgRole, User};
use super::State;

/// A permission rule.
#[derive(Debug, Clone, Copy)]
pub enum Rule<'a> {
    /// Only the cluster itself (bootstrap, membership and runner bookkeeping).
    Cluster,
    /// Any user with a valid key.
    AnyUser,
    Admin,
    /// Admins, and the user themself.
    AdminOrSelf {
        user_id: &'a str,
    },
    /// Admins, and owners of that organization.
    AdminOrOrgOwner {
        org_id: &'a str,
    },
    /// Admins, and members (owners included) of that organization.
    AdminOrOrgMember {
        org_id: &'a str,
    },
    /// Admins, and the model's owner.
    AdminOrModelOwner {
        model: &'a Model,
    },
    /// Admins, and the user the key belongs to.
    AdminOrKeyOwner {
        key_id: &'a str,
    },
}

impl Rule<'_> {
    /// What a refused caller is told.
    fn refusal(&self) -> &'static str {
        match self {
            Rule::Cluster => "only the cluster itself may do this",
            Rule::AnyUser => "a valid API key is needed",
            Rule::Admin => "only an admin may do this",
            Rule::AdminOrSelf { .. } => "only an admin or this user may do this",
            Rule::AdminOrOrgOwner { .. } => {
                "only an admin or an owner of this organization may do this"
            }
            Rule::AdminOrOrgMember { .. } => {
                "only an admin or a member of this organization may do this"
            }
            Rule::AdminOrModelOwner { .. } => "only an admin or the model's owner may do this",
            Rule::AdminOrKeyOwner { .. } => "only an admin or the key's owner may do this",
        }
    }
}

/// `Ok` for an admin, else the refusal of [`Rule::Admin`].
pub fn admin_only(actor: &User) -> Result<(), StateError> {
    if actor.admin {
        Ok(())
    } else {
        Err(StateError::Forbidden(Rule::Admin.refusal().to_string()))
    }
}

impl State {
    /// Does `rule` let `actor` through?
    pub fn permits(&self, actor: &User, rule: Rule) -> bool {
        match rule {
            Rule::Cluster => false,
            Rule::AnyUser => true,
            _ if actor.admin => true,
            Rule::Admin => false,
            Rule::AdminOrSelf { user_id } => actor.id == user_id,
            Rule::AdminOrOrgOwner { org_id } => {
                actor.organization_id.as_deref() == Some(org_id)
                    && actor.org_role == Some(OrgRole::Owner)
            }
            Rule::AdminOrOrgMember { org_id } => actor.organization_id.as_deref() == Some(org_id),
            Rule::AdminOrModelOwner { model } => {
                model.owner_user_id.as_deref() == Some(actor.id.as_str())
            }
            Rule::AdminOrKeyOwner { key_id } => self
                .api_keys
                .values()
                .any(|k| k.id == key_id && k.user_id == actor.id),
        }
    }

    /// May `actor` send requests to `model`'s replicas (the OpenAI-compatible API)? An admin
    /// any model; a user those they own, those of their organization, and those of no owner.
    pub fn may_use_model(&self, actor: &User, model: &Model) -> bool {
        actor.admin
            || model.owner_user_id.is_none()
            || model.owner_user_id.as_deref() == Some(actor.id.as_str())
            || (model.organization_id.is_some() && model.organization_id == actor.organization_id)
    }

    /// `Ok` when `rule` lets `actor` through, else the rule's refusal.
    pub fn check(&self, actor: &User, rule: Rule) -> Result<(), StateError> {
        if self.permits(actor, rule) {
            Ok(())
        } else {
            Err(StateError::Forbidden(rule.refusal().to_string()))
        }
    }

    /// The rule for proposing `command`: the one place that decides who may propose each
    /// command. [`Rule::Cluster`] commands come without an actor (the cluster's own
    /// bookkeeping) and are refused from any user; every other command needs one, and
    /// `apply` refuses it without. No `_` arm: a new command must be placed here.
    pub fn rule_for<'a>(&'a self, command: &'a Command) -> Rule<'a> {
        match command {
            // A model's owner keeps its Hugging Face token (the design notes' "model
            // management UI"); every other change to a model is an admin's.
            Command::UpdateModel { id, patch } if patch.only_token() => match self.models.get(id) {
                Some(model) => Rule::AdminOrModelOwner { model },
                None => Rule::Admin,
            },
            Command::Bootstrap { .. }
            | Command::RegisterNode(_)
            | Command::RemoveNode { .. }
            | Command::PublishGpus { .. }
            | Command::PublishEnvToken { .. }
            | Command::Schedule(_)
            | Command::ReportSlot { .. }
            | Command::InitCa(_)
            | Command::AdmitNode { .. }
            | Command::RecordCertificate(_)
            | Command::TouchApiKeys { .. }
            | Command::InstallKeyring(_)
            | Command::RecordAutopilot { .. } => Rule::Cluster,
            Command::UpdateSystemSettings { .. }
            | Command::CreateOrg(_)
            | Command::CreateUser { .. }
            | Command::CreateModel(_)
            | Command::UpdateModel { .. }
            | Command::CreateModelV1(_)
            | Command::UpdateModelV1 { .. }
            | Command::DeleteModel { .. }
            | Command::CreateJoinToken { .. }
            | Command::RevokeJoinToken { .. }
            | Command::SetUserDisabled { .. }
            | Command::RotateKeyring { .. }
            | Command::CompactLogs
            | Command::UpdateTokenSettings { .. } => Rule::Admin,
            Command::IssueApiKey { user_id, .. } | Command::IssueNamedApiKey { user_id, .. } => {
                Rule::AdminOrSelf { user_id }
            }
            Command::RevokeApiKey { key_id } | Command::RotateApiKey { key_id, .. } => {
                Rule::AdminOrKeyOwner { key_id }
            }
            Command::UpdateOrgSettings { org_id, .. } => Rule::AdminOrOrgOwner { org_id },
            Command::UpdateUserSettings { user_id, .. } => Rule::AdminOrSelf { user_id },
        }
    }

    /// May `actor` propose `command`?
    pub fn authorize(&self, actor: &User, command: &Command) -> Result<(), StateError> {
        self.check(actor, self.rule_for(command))
    }

    /// The user behind an API key hash, if the key exists and its user is not disabled.
    pub fn user_by_key_hash(&self, key_hash: &str) -> Option<&User> {
        let key = self.api_keys.get(key_hash)?;
        if self.disabled_users.contains(&key.user_id) {
            return None;
        }
        self.users.get(&key.user_id)
    }

    /// Would an enabled admin still hold a key once `key_hash` is revoked? When not,
    /// nobody could administer the cluster any more.
    pub fn admin_access_remains_without(&self, key_hash: &str) -> bool {
        self.api_keys.iter().any(|(hash, k)| {
            hash != key_hash
                && !self.disabled_users.contains(&k.user_id)
                && self.users.get(&k.user_id).is_some_and(|u| u.admin)
        })
    }

    /// A user's keys, oldest first.
    pub fn keys_of(&self, user_id: &str) -> Vec<&ApiKey> {
        let mut keys: Vec<&ApiKey> = self
            .api_keys
            .values()
            .filter(|k| k.user_id == user_id)
            .collect();
        keys.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        keys
    }

    /// The stored hash of the key with public id `key_id`.
    pub fn key_hash_by_id(&self, key_id: &str) -> Option<String> {
        self.api_keys
            .iter()
            .find(|(_, k)| k.id == key_id)
            .map(|(hash, _)| hash.clone())
    }
}
