//! The Hugging Face tokens as this node's runner uses them: which one a launch gets (by the
//! rulebook in `state::tokens`), opened through the keyring only at launch, into memory only.
//!
//! A watcher follows the cluster-wide token so every node says, in its log and in
//! `system/config`, whether it is set and opens here; logs never show a token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::watch;

use crate::crypto::SealedSecret;
use crate::raft::StateView;
use crate::state::{resolve, Model, SealError, Sealer, State, TokenScope, TokenSite, TokenSource};

/// This node's means to open tokens. Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    sealer: Sealer,
    /// The node's own `HF_TOKEN`, read once at start: the lowest level of resolution.
    env: Option<SecretString>,
    /// The cluster-wide token is set and opens with this node's key.
    system_token_opens: Arc<AtomicBool>,
}

/// The token a launch would use: its level and, for levels stored in the state, the sealed
/// value. Two choices are equal exactly when a launch would get the same token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenChoice {
    pub source: TokenSource,
    sealed: Option<(SealedSecret, TokenSite)>,
}

impl Tokens {
    pub fn new(sealer: Sealer, env: Option<SecretString>) -> Tokens {
        Tokens {
            sealer,
            env,
            system_token_opens: Arc::default(),
        }
    }

    pub fn env_token_present(&self) -> bool {
        self.env.is_some()
    }

    pub fn system_token_opens(&self) -> bool {
        self.system_token_opens.load(Ordering::Relaxed)
    }

    /// Which token a launch of `model` here would get, without opening it. Cheap, and
    /// safe to keep: it holds only ciphertext.
    pub fn choose(&self, model: &Model, state: &State) -> TokenChoice {
        let resolution = resolve(state, model, self.env.is_some());
        TokenChoice {
            source: resolution.level.into(),
            sealed: resolution
                .sealed(state, model)
                .map(|(sealed, scope)| (sealed.clone(), scope.site())),
        }
    }

    /// Decrypt the chosen token, at launch, into memory only. A token this node cannot
    /// open (its seal key is not the cluster's) is an error: the slot does not launch.
    pub fn open(
        &self,
        choice: &TokenChoice,
        state: &State,
    ) -> Result<Option<SecretString>, SealError> {
        if choice.source == TokenSource::Environment {
            return Ok(self.env.clone());
        }
        let Some((sealed, site)) = choice.sealed.as_ref() else {
            return Ok(None);
        };
        self.sealer.open(state, sealed, site.scope()).map(Some)
    }

    /// Follow the cluster-wide token in `view` until shutdown. Returns once the current
    /// state has been read, so the first answer of `system/config` is already right.
    pub fn watch(&self, node_id: u64, view: StateView, mut shutdown: watch::Receiver<bool>) {
        let mut seen: Option<Option<SealedSecret>> = None;
        self.refresh(node_id, &view, &mut seen);
        let mut changes = view.subscribe();
        let tokens = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = shutdown.changed() => break,
                }
                tokens.refresh(node_id, &view, &mut seen);
            }
        });
    }

    fn refresh(&self, node_id: u64, view: &StateView, seen: &mut Option<Option<SealedSecret>>) {
        let (sealed, opened) = view.read(|state| {
            let sealed = state.settings.hf_token.clone();
            let opened = sealed
                .as_ref()
                .map(|s| self.sealer.open(state, s, TokenScope::System).map(drop));
            (sealed, opened)
        });
        if seen.as_ref() == Some(&sealed) {
            return;
        }
        let opens = match opened {
            None => false,
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::error!(node_id, error = %e, "cannot decrypt the cluster-wide hugging face token");
                false
            }
        };
        self.system_token_opens.store(opens, Ordering::Relaxed);
        *seen = Some(sealed);
        tracing::info!(
            node_id,
            token_provided = opens,
            "updated hugging face token from cluster state"
        );
    }
}
