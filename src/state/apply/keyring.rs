//! `apply` for the keyring: its first install, rotations, and the rule that a new token is
//! sealed with the current key (so no token ends up under a key a rotation destroys).

use std::collections::BTreeMap;

use super::Ctx;
use crate::crypto::{SealedSecret, WrappedKey};
use crate::state::command::token_settings_parts;
use crate::state::{
    Command, Keyring, KeyringKey, Reseal, State, StateError, StateKey, TokenSite, TokenUpdate,
};

impl State {
    pub(super) fn install_keyring(
        &mut self,
        keyring: &Keyring,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) {
        if self.keyring.is_some() {
            return;
        }
        let mut keyring = keyring.clone();
        for key in keyring.keys.values_mut() {
            key.created_ms = ctx.at_ms;
        }
        self.keyring = Some(keyring);
        touched.push(StateKey::Keyring);
        self.audit(ctx, "keyring_created", "system", Some("key 1"), touched);
    }

    pub(super) fn rotate_keyring(
        &mut self,
        seal_key_id: &str,
        key_id: u32,
        wrapped: &WrappedKey,
        resealed: &[Reseal],
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Result<(), StateError> {
        let keyring = self
            .keyring
            .as_ref()
            .ok_or_else(|| StateError::Conflict("the cluster has no keyring yet".into()))?;
        if keyring.seal_key_id != seal_key_id {
            return Err(StateError::Conflict(format!(
                "the new key is wrapped with seal key {seal_key_id}, but the keyring's is {}",
                keyring.seal_key_id
            )));
        }
        if key_id != keyring.current + 1 {
            return Err(StateError::Conflict(format!(
                "the keyring's current key is {}, not {}: it rotated meanwhile; try again",
                keyring.current,
                key_id - 1
            )));
        }
        let stored: BTreeMap<TokenSite, &SealedSecret> = self.stored_tokens().into_iter().collect();
        let replaced: BTreeMap<TokenSite, &SealedSecret> = resealed
            .iter()
            .map(|r| (r.site.clone(), &r.replaces))
            .collect();
        if stored != replaced {
            return Err(StateError::Conflict(
                "a token was set or cleared while the rotation was prepared; try again".into(),
            ));
        }
        for reseal in resealed {
            *self.token_at_mut(&reseal.site).expect("checked: stored") =
                Some(reseal.sealed.clone());
            touched.push(site_record(&reseal.site));
        }
        let keyring = self.keyring.as_mut().expect("checked above");
        keyring.keys.insert(
            key_id,
            KeyringKey {
                wrapped: wrapped.clone(),
                created_ms: ctx.at_ms,
            },
        );
        keyring.current = key_id;
        keyring.keys.retain(|id, _| *id == key_id);
        touched.push(StateKey::Keyring);
        let target = format!("key {key_id}");
        self.audit(ctx, "keyring_rotated", "system", Some(&target), touched);
        Ok(())
    }

    /// A token a command stores must be sealed with the keyring's current key.
    pub(super) fn check_sealed_with_current_key(
        &self,
        command: &Command,
    ) -> Result<(), StateError> {
        if let Command::UpdateTokenSettings {
            system,
            orgs,
            users,
        } = command
        {
            return token_settings_parts(system, orgs, users)
                .iter()
                .try_for_each(|part| self.check_sealed_with_current_key(part));
        }
        let Some(sealed) = new_token(command) else {
            return Ok(());
        };
        match &self.keyring {
            Some(keyring) if sealed.key_id() == keyring.current => Ok(()),
            Some(keyring) => Err(StateError::Conflict(format!(
                "the token was sealed with data key {}, but the keyring's current key is {}: \
                 it rotated meanwhile; try again",
                sealed.key_id(),
                keyring.current
            ))),
            None => Err(StateError::Conflict(
                "the cluster has no keyring yet (its first leader makes one); try again".into(),
            )),
        }
    }
}

/// The token a command sets, if any.
fn new_token(command: &Command) -> Option<&SealedSecret> {
    let update = match command {
        Command::UpdateSystemSettings { hf_token }
        | Command::UpdateOrgSettings { hf_token, .. }
        | Command::UpdateUserSettings { hf_token, .. } => hf_token,
        Command::UpdateModel { patch, .. } => &patch.hf_token,
        Command::CreateModel(model) => return model.hf_token.as_ref(),
        Command::CreateOrg(org) => return org.hf_token.as_ref(),
        Command::CreateUser { user, .. } => return user.hf_token.as_ref(),
        _ => return None,
    };
    match update {
        Some(TokenUpdate::Set(sealed)) => Some(sealed),
        _ => None,
    }
}

fn site_record(site: &TokenSite) -> StateKey {
    match site {
        TokenSite::System => StateKey::Settings,
        TokenSite::Organization(id) => StateKey::Org(id.clone()),
        TokenSite::User(id) => StateKey::User(id.clone()),
        TokenSite::Model(id) => StateKey::Model(id.clone()),
    }
}
