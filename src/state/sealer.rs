//! A node's means to seal and open Hugging Face tokens against the replicated keyring: its
//! seal key unwraps the keyring's data keys, in memory, when a token is sealed or opened.

use secrecy::SecretString;

use super::command::Command;
use super::keyring::{Keyring, KeyringKey, Reseal};
use super::tokens::TokenScope;
use super::State;
use crate::crypto::{DataKey, SealKey, SealKeySource, SealedSecret};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the cluster has no keyring yet (its first leader makes one); try again shortly")]
    NoKeyring,
    #[error(
        "this node's seal key ({node_key}, {origin}) is not the one the cluster's data keys \
         are wrapped with ({cluster_key}): start the node with --seal-key-file (or \
         HELIX_SEAL_KEY_FILE) naming the cluster's seal key"
    )]
    WrongSealKey {
        node_key: String,
        origin: String,
        cluster_key: String,
    },
    #[error("data key {0} is no longer in the keyring")]
    UnknownKey(u32),
    #[error("a stored token does not open with data key {0}: it was damaged")]
    Damaged(u32),
}

/// Cheap to clone; holds keys, so never logged (`Debug` shows the seal key's id only).
#[derive(Clone)]
pub struct Sealer {
    seal_key: SealKey,
    /// Key 0: tokens sealed before the cluster had a keyring.
    legacy: DataKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({:?})", self.seal_key)
    }
}

impl Sealer {
    pub fn new(seal_key: SealKey, legacy: DataKey) -> Sealer {
        Sealer { seal_key, legacy }
    }

    pub fn seal_key_id(&self) -> String {
        self.seal_key.id()
    }

    pub fn seal_key_source(&self) -> &SealKeySource {
        self.seal_key.source()
    }

    /// The keyring, if this node's seal key is the one that wraps it.
    pub fn check<'a>(&self, state: &'a State) -> Result<&'a Keyring, SealError> {
        let keyring = state.keyring.as_ref().ok_or(SealError::NoKeyring)?;
        let node_key = self.seal_key.id();
        if keyring.seal_key_id != node_key {
            return Err(SealError::WrongSealKey {
                node_key,
                origin: self.seal_key.source().to_string(),
                cluster_key: keyring.seal_key_id.clone(),
            });
        }
        Ok(keyring)
    }

    fn data_key(&self, state: &State, id: u32) -> Result<DataKey, SealError> {
        if id == 0 {
            return Ok(self.legacy.clone());
        }
        let keyring = self.check(state)?;
        let key = keyring.keys.get(&id).ok_or(SealError::UnknownKey(id))?;
        self.seal_key
            .unwrap_key(id, &key.wrapped)
            .map_err(|_| SealError::Damaged(id))
    }

    /// The key that authenticates gossip now, and the id of the data key it comes from.
    pub fn gossip_key(&self, state: &State) -> Result<(u32, [u8; 32]), SealError> {
        let current = self.check(state)?.current;
        Ok((current, self.data_key(state, current)?.gossip_key()))
    }

    /// Seal `token` for `scope` with the keyring's current key.
    pub fn seal(
        &self,
        state: &State,
        token: &SecretString,
        scope: TokenScope,
    ) -> Result<SealedSecret, SealError> {
        let current = self.check(state)?.current;
        Ok(self
            .data_key(state, current)?
            .seal(token, &scope.seal_label()))
    }

    pub fn open(
        &self,
        state: &State,
        sealed: &SealedSecret,
        scope: TokenScope,
    ) -> Result<SecretString, SealError> {
        let id = sealed.key_id();
        self.data_key(state, id)?
            .open(sealed, &scope.seal_label())
            .map_err(|_| SealError::Damaged(id))
    }

    /// The first keyring of a cluster: one data key, wrapped by this node's seal key.
    pub fn first_keyring(&self) -> Keyring {
        let (_, wrapped) = self.seal_key.new_data_key(1);
        Keyring {
            seal_key_id: self.seal_key.id(),
            current: 1,
            keys: [(
                1,
                KeyringKey {
                    wrapped,
                    created_ms: 0,
                },
            )]
            .into(),
        }
    }

    /// A rotation of `state`'s keyring: a new data key, and every stored token opened and
    /// sealed again with it, all in one command.
    pub fn rotation(&self, state: &State) -> Result<Command, SealError> {
        let keyring = self.check(state)?;
        let key_id = keyring.current + 1;
        let (key, wrapped) = self.seal_key.new_data_key(key_id);
        let mut resealed = Vec::new();
        for (site, sealed) in state.stored_tokens() {
            let token = self.open(state, sealed, site.scope())?;
            resealed.push(Reseal {
                sealed: key.seal(&token, &site.scope().seal_label()),
                replaces: sealed.clone(),
                site,
            });
        }
        Ok(Command::RotateKeyring {
            seal_key_id: keyring.seal_key_id.clone(),
            key_id,
            wrapped,
            resealed,
        })
    }
}
