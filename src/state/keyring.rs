//! The keyring: the data keys that seal Hugging Face tokens, each wrapped by the seal key
//! (never stored here), and where every sealed token lives, so a rotation can re-seal them
//! all and a key can be destroyed once nothing uses it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tokens::TokenSite;
use super::State;
use crate::crypto::{SealedSecret, WrappedKey};

/// The replicated keyring. Made by the first leader; replaced only by `keyring rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    /// The public id of the seal key that wraps every key here. A node whose seal key has
    /// another id cannot open any token, and says so.
    pub seal_key_id: String,
    /// The key new tokens are sealed with: the newest.
    pub current: u32,
    pub keys: BTreeMap<u32, KeyringKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringKey {
    pub wrapped: WrappedKey,
    pub created_ms: i64,
}

/// One token re-sealed by a rotation: `apply` replaces it only if it is still `replaces`,
/// so a token set while the rotation was prepared is never overwritten with an older one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reseal {
    pub site: TokenSite,
    pub replaces: SealedSecret,
    pub sealed: SealedSecret,
}

impl State {
    /// Every stored token and where it lives.
    pub fn stored_tokens(&self) -> Vec<(TokenSite, &SealedSecret)> {
        let system = self
            .settings
            .hf_token
            .iter()
            .map(|t| (TokenSite::System, t));
        let orgs = self.orgs.values().filter_map(|o| {
            let token = o.hf_token.as_ref()?;
            Some((TokenSite::Organization(o.id.clone()), token))
        });
        let users = self.users.values().filter_map(|u| {
            let token = u.hf_token.as_ref()?;
            Some((TokenSite::User(u.id.clone()), token))
        });
        let models = self.models.values().filter_map(|m| {
            let token = m.hf_token.as_ref()?;
            Some((TokenSite::Model(m.id.clone()), token))
        });
        system.chain(orgs).chain(users).chain(models).collect()
    }

    /// How many stored tokens each data key seals (key 0: the key from before keyrings).
    pub fn tokens_per_key(&self) -> BTreeMap<u32, usize> {
        let mut counts = BTreeMap::new();
        for (_, sealed) in self.stored_tokens() {
            *counts.entry(sealed.key_id()).or_default() += 1;
        }
        counts
    }

    pub(super) fn token_at_mut(&mut self, site: &TokenSite) -> Option<&mut Option<SealedSecret>> {
        Some(match site {
            TokenSite::System => &mut self.settings.hf_token,
            TokenSite::Organization(id) => &mut self.orgs.get_mut(id)?.hf_token,
            TokenSite::User(id) => &mut self.users.get_mut(id)?.hf_token,
            TokenSite::Model(id) => &mut self.models.get_mut(id)?.hf_token,
        })
    }
}
