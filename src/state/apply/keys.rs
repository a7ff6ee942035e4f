//! `apply` for API keys and for disabling users: issue, revoke, rotate, last use.

use super::Ctx;
use crate::state::tenancy::ApiKey;
use crate::state::{Reply, State, StateError, StateKey};

/// What is refused when it would leave no enabled admin with a key.
const LOCKOUT: &str = "no enabled admin would hold an API key any more and nobody could \
                       administer the cluster: issue another admin a key first";

impl State {
    pub(super) fn insert_key(
        &mut self,
        hash: &str,
        key: ApiKey,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) {
        let id = key.id.clone();
        self.api_keys.insert(hash.to_owned(), key);
        touched.push(StateKey::ApiKey(hash.to_owned()));
        self.audit(ctx, "api_key_issued", "api_key", Some(&id), touched);
    }

    pub(super) fn issue_key(
        &mut self,
        user_id: &str,
        key_id: &str,
        key_hash: &str,
        name: Option<String>,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Result<Reply, StateError> {
        if !self.users.contains_key(user_id) {
            return Err(StateError::NotFound(format!("user {user_id:?} not found")));
        }
        self.check_new_key(key_id, key_hash)?;
        let key = new_key(key_id, user_id, name, ctx);
        self.insert_key(key_hash, key, ctx, touched);
        Ok(Reply::Done)
    }

    pub(super) fn revoke_key(
        &mut self,
        key_id: &str,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Result<Reply, StateError> {
        let hash = self.existing_key(key_id)?;
        if !self.admin_access_remains_without(&hash) {
            return Err(StateError::Conflict(format!(
                "API key {key_id:?} is the last key of the last enabled admin: {LOCKOUT}"
            )));
        }
        self.api_keys.remove(&hash);
        touched.push(StateKey::ApiKey(hash));
        self.audit(ctx, "api_key_revoked", "api_key", Some(key_id), touched);
        Ok(Reply::Done)
    }

    /// The new key keeps the old one's user and name; the old one goes in the same apply.
    pub(super) fn rotate_key(
        &mut self,
        key_id: &str,
        new_key_id: &str,
        new_key_hash: &str,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Result<Reply, StateError> {
        let hash = self.existing_key(key_id)?;
        self.check_new_key(new_key_id, new_key_hash)?;
        let old = self.api_keys.remove(&hash).expect("looked up above");
        touched.push(StateKey::ApiKey(hash));
        let key = new_key(new_key_id, &old.user_id, old.name, ctx);
        self.api_keys.insert(new_key_hash.to_owned(), key);
        touched.push(StateKey::ApiKey(new_key_hash.to_owned()));
        self.audit(ctx, "api_key_rotated", "api_key", Some(key_id), touched);
        Ok(Reply::Done)
    }

    pub(super) fn set_user_disabled(
        &mut self,
        user_id: &str,
        disabled: bool,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Result<Reply, StateError> {
        if !self.users.contains_key(user_id) {
            return Err(StateError::NotFound(format!("user {user_id:?} not found")));
        }
        if disabled {
            // The actor is an enabled admin holding a key, so refusing this keeps the last
            // enabled admin too.
            if ctx.actor.as_deref() == Some(user_id) {
                return Err(StateError::Conflict(
                    "an admin cannot disable themselves".into(),
                ));
            }
            self.disabled_users.insert(user_id.to_owned());
        } else {
            self.disabled_users.remove(user_id);
        }
        touched.push(StateKey::DisabledUser(user_id.to_owned()));
        let kind = if disabled {
            "user_disabled"
        } else {
            "user_enabled"
        };
        self.audit(ctx, kind, "user", Some(user_id), touched);
        Ok(Reply::Done)
    }

    /// Keys revoked since the node saw them are skipped; a last use never goes back.
    pub(super) fn touch_keys(
        &mut self,
        key_hashes: &[String],
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Reply {
        for hash in key_hashes {
            if let Some(key) = self.api_keys.get_mut(hash) {
                if key.last_used_ms < Some(ctx.at_ms) {
                    key.last_used_ms = Some(ctx.at_ms);
                    touched.push(StateKey::ApiKey(hash.clone()));
                }
            }
        }
        Reply::Done
    }

    fn existing_key(&self, key_id: &str) -> Result<String, StateError> {
        self.key_hash_by_id(key_id)
            .ok_or_else(|| StateError::NotFound(format!("API key {key_id:?} not found")))
    }
}

pub(super) fn new_key(key_id: &str, user_id: &str, name: Option<String>, ctx: &Ctx) -> ApiKey {
    ApiKey {
        id: key_id.to_owned(),
        user_id: user_id.to_owned(),
        created_ms: ctx.at_ms,
        name,
        last_used_ms: None,
    }
}
