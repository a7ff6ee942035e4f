//! Who may do what: the one place that decides. Handlers ask it before proposing (to fail
//! fast, and before sealing any token); `apply` asks it again at commit time.
//! `docs/security.md` holds the same rules as a table.

use super::command::{Command, StateError};
use super::model::{Model, OrgRole, State, User};

fn forbidden(what: &str) -> StateError {
    StateError::Forbidden(what.to_string())
}

impl State {
    /// May `actor` run `command`? (Commands without an actor come from the cluster itself.)
    pub fn authorize(&self, actor: &User, command: &Command) -> Result<(), StateError> {
        let allowed = match command {
            Command::Bootstrap { .. }
            | Command::RegisterNode(_)
            | Command::RemoveNode { .. }
            | Command::PublishGpus { .. }
            | Command::Schedule(_)
            | Command::ReportSlot { .. } => {
                return Err(forbidden("only the cluster itself may do this"))
            }
            Command::UpdateSystemSettings { .. }
            | Command::CreateOrg(_)
            | Command::CreateUser { .. }
            | Command::CreateModel(_)
            | Command::UpdateModel { .. }
            | Command::DeleteModel { .. } => actor.admin,
            Command::IssueApiKey { user_id, .. } => self.may_manage_user(actor, user_id),
            Command::RevokeApiKey { key_id } => {
                actor.admin
                    || self
                        .api_keys
                        .values()
                        .any(|k| k.id == *key_id && k.user_id == actor.id)
            }
            Command::UpdateOrgSettings { org_id, .. } => self.may_manage_org(actor, org_id),
            Command::UpdateUserSettings { user_id, .. } => self.may_manage_user(actor, user_id),
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(match command {
                Command::UpdateOrgSettings { .. } => {
                    "only an admin or an owner of this organization may do this"
                }
                Command::IssueApiKey { .. }
                | Command::RevokeApiKey { .. }
                | Command::UpdateUserSettings { .. } => "only an admin or this user may do this",
                _ => "only admins may do this",
            }))
        }
    }

    /// Admins, and the user themself.
    pub fn may_manage_user(&self, actor: &User, user_id: &str) -> bool {
        actor.admin || actor.id == user_id
    }

    /// Admins, and owners of that organization.
    pub fn may_manage_org(&self, actor: &User, org_id: &str) -> bool {
        actor.admin
            || (actor.organization_id.as_deref() == Some(org_id)
                && actor.org_role == Some(OrgRole::Owner))
    }

    /// Admins see every organization; others see their own.
    pub fn may_see_org(&self, actor: &User, org_id: &str) -> bool {
        actor.admin || actor.organization_id.as_deref() == Some(org_id)
    }

    /// Admins, and the model's owner, may see which level its token comes from.
    pub fn may_see_token_source(&self, actor: &User, model: &Model) -> bool {
        actor.admin || model.owner_user_id.as_deref() == Some(actor.id.as_str())
    }

    /// The stored hash of the key with public id `key_id`.
    pub fn key_hash_by_id(&self, key_id: &str) -> Option<String> {
        self.api_keys
            .iter()
            .find(|(_, k)| k.id == key_id)
            .map(|(hash, _)| hash.clone())
    }
}
