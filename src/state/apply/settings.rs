//! Hugging Face tokens at the system, organization and user levels (a model's token is a
//! field of the model): set or cleared, stamped and audited.

use super::Ctx;
use crate::state::validate::invalid;
use crate::state::{Outcome, Reply, State, StateError, StateKey, TokenLevel, TokenUpdate};

impl State {
    pub(super) fn set_system_token(
        &mut self,
        hf_token: &Option<TokenUpdate>,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        self.audit_token(ctx, hf_token, TokenLevel::System, None, touched);
        TokenUpdate::apply(hf_token, &mut self.settings.hf_token);
        if self.settings.created_ms == 0 {
            self.settings.created_ms = ctx.at_ms;
        }
        self.settings.updated_ms = ctx.at_ms;
        touched.push(StateKey::Settings);
        Ok(Reply::Done)
    }

    pub(super) fn set_org_token(
        &mut self,
        org_id: &str,
        hf_token: &Option<TokenUpdate>,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        let org = self
            .orgs
            .get_mut(org_id)
            .ok_or_else(|| StateError::NotFound(format!("organization {org_id:?} not found")))?;
        TokenUpdate::apply(hf_token, &mut org.hf_token);
        org.updated_ms = ctx.at_ms;
        touched.push(StateKey::Org(org_id.to_string()));
        let level = TokenLevel::Organization;
        self.audit_token(ctx, hf_token, level, Some(org_id), touched);
        Ok(Reply::Done)
    }

    pub(super) fn set_user_token(
        &mut self,
        user_id: &str,
        hf_token: &Option<TokenUpdate>,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        let user = self
            .users
            .get_mut(user_id)
            .ok_or_else(|| StateError::NotFound(format!("user {user_id:?} not found")))?;
        TokenUpdate::apply(hf_token, &mut user.hf_token);
        user.updated_ms = ctx.at_ms;
        touched.push(StateKey::User(user_id.to_string()));
        self.audit_token(ctx, hf_token, TokenLevel::User, Some(user_id), touched);
        Ok(Reply::Done)
    }

    /// Several levels at once: every holder exists before the first token changes, so the
    /// request lands whole or not at all.
    pub(super) fn set_tokens(
        &mut self,
        system: &Option<TokenUpdate>,
        orgs: &[(String, TokenUpdate)],
        users: &[(String, TokenUpdate)],
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        if let Some((org_id, _)) = orgs.iter().find(|(id, _)| !self.orgs.contains_key(id)) {
            let problem = format!("organization {org_id:?} does not exist");
            return Err(invalid("org_hf_tokens", problem));
        }
        if let Some((user_id, _)) = users.iter().find(|(id, _)| !self.users.contains_key(id)) {
            let problem = format!("user {user_id:?} does not exist");
            return Err(invalid("user_hf_tokens", problem));
        }
        if let Some(update) = system {
            self.set_system_token(&Some(update.clone()), ctx, touched)?;
        }
        for (org_id, update) in orgs {
            self.set_org_token(org_id, &Some(update.clone()), ctx, touched)?;
        }
        for (user_id, update) in users {
            self.set_user_token(user_id, &Some(update.clone()), ctx, touched)?;
        }
        Ok(Reply::Done)
    }
}
