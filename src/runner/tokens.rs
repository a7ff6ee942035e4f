//! The Hugging Face tokens this node knows, decrypted into memory only.
//!
//! A watcher follows the applied state; when the sealed cluster-wide token changes (set or
//! cleared) it opens it with the data key and swaps the in-memory copy. Logs say whether a
//! token is provided, never what it is.

use std::sync::{Arc, RwLock};

use secrecy::SecretString;
use tokio::sync::watch;

use crate::crypto::{DataKey, SealedSecret};
use crate::raft::store::StateView;
use crate::state::{Model, TokenSource, SYSTEM_TOKEN_SCOPE};

/// This node's decrypted view of the tokens. Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<RwLock<Known>>,
    /// The node's own `HF_TOKEN`, read once at start: the lowest level of resolution.
    env: Option<SecretString>,
}

#[derive(Default)]
struct Known {
    system: Option<SecretString>,
}

impl Tokens {
    pub fn system_token_set(&self) -> bool {
        self.inner
            .read()
            .expect("token lock poisoned")
            .system
            .is_some()
    }

    pub fn system_token(&self) -> Option<SecretString> {
        self.inner
            .read()
            .expect("token lock poisoned")
            .system
            .clone()
    }

    pub fn env_token(&self) -> Option<SecretString> {
        self.env.clone()
    }

    /// The token a launch of `model` gets, and the level it came from, highest first:
    /// cluster-wide (system), then this node's `HF_TOKEN`.
    pub fn resolve(&self, _model: &Model) -> (Option<SecretString>, TokenSource) {
        if let Some(token) = self.system_token() {
            return (Some(token), TokenSource::System);
        }
        if let Some(token) = self.env_token() {
            return (Some(token), TokenSource::Environment);
        }
        (None, TokenSource::None)
    }
}

/// Start following the applied state. Returns once the current state has been read, so the
/// first answer of `/api/v1/system/config` is already right.
pub fn watch_tokens(
    node_id: u64,
    view: StateView,
    key: DataKey,
    env: Option<SecretString>,
    mut shutdown: watch::Receiver<bool>,
) -> Tokens {
    let tokens = Tokens {
        inner: Arc::default(),
        env,
    };
    let mut seen: Option<SealedSecret> = None;
    refresh(node_id, &view, &key, &tokens, &mut seen, true);
    let mut changes = view.subscribe();
    let out = tokens.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
            refresh(node_id, &view, &key, &tokens, &mut seen, false);
        }
    });
    out
}

fn refresh(
    node_id: u64,
    view: &StateView,
    key: &DataKey,
    tokens: &Tokens,
    seen: &mut Option<SealedSecret>,
    first: bool,
) {
    let sealed = view.read(|a| a.state.settings.hf_token.clone());
    if !first && sealed == *seen {
        return;
    }
    let opened = match &sealed {
        None => None,
        Some(s) => match key.open(s, SYSTEM_TOKEN_SCOPE) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!(node_id, error = %e, "cannot decrypt the cluster-wide hugging face token");
                None
            }
        },
    };
    let token_provided = opened.is_some();
    tokens.inner.write().expect("token lock poisoned").system = opened;
    *seen = sealed;
    tracing::info!(
        node_id,
        token_provided,
        "updated hugging face token from cluster state"
    );
}
