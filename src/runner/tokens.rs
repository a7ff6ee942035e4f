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
use crate::state::{token_scope, Model, State, TokenSource, SYSTEM_TOKEN_SCOPE};

/// This node's decrypted view of the tokens. Cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<RwLock<Known>>,
    /// Opens the per-org, per-user and per-model tokens at launch.
    key: DataKey,
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

    /// Which token a launch of `model` would get, without opening it, highest first: the
    /// model's own, its owner user's, its organization's, the cluster-wide one, this node's
    /// `HF_TOKEN`. Cheap, and safe to keep: it holds only ciphertext.
    pub fn choose(&self, model: &Model, state: &State) -> TokenChoice {
        let level = resolve_level(state, model, self.env.is_some());
        let sealed = match level.source {
            TokenSource::System => state
                .settings
                .hf_token
                .clone()
                .map(|s| (s, SYSTEM_TOKEN_SCOPE.to_string())),
            TokenSource::Environment | TokenSource::None => None,
            _ => level
                .sealed(state, model)
                .map(|(sealed, scope)| (sealed.clone(), scope)),
        };
        TokenChoice {
            source: level.source,
            sealed,
        }
    }

    /// Decrypt the chosen token, at launch, into memory only.
    pub fn open(&self, choice: &TokenChoice) -> Option<SecretString> {
        match (&choice.source, &choice.sealed) {
            (TokenSource::Environment, _) => self.env_token(),
            (_, Some((sealed, scope))) => match self.key.open(sealed, scope) {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::error!(level = ?choice.source, error = %e,
                        "cannot decrypt a hugging face token; launching without it");
                    None
                }
            },
            _ => None,
        }
    }
}

/// The token a launch would use: its level and, for levels stored in the state, the sealed
/// value. Two choices are equal exactly when a launch would get the same token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenChoice {
    pub source: TokenSource,
    sealed: Option<(SealedSecret, String)>,
}

/// Which level holds the token for `model`, from the committed state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLevel {
    pub source: TokenSource,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
}

impl ResolvedLevel {
    /// The sealed token and its scope, for the levels stored in the state.
    fn sealed<'a>(&self, state: &'a State, model: &'a Model) -> Option<(&'a SealedSecret, String)> {
        match self.source {
            TokenSource::Model => Some((model.hf_token.as_ref()?, token_scope("model", &model.id))),
            TokenSource::User => {
                let id = self.user_id.as_deref()?;
                Some((
                    state.users.get(id)?.hf_token.as_ref()?,
                    token_scope("user", id),
                ))
            }
            TokenSource::Organization => {
                let id = self.organization_id.as_deref()?;
                Some((
                    state.orgs.get(id)?.hf_token.as_ref()?,
                    token_scope("org", id),
                ))
            }
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "source": self.source });
        if let Some(u) = &self.user_id {
            v["user_id"] = u.clone().into();
        }
        if let Some(o) = &self.organization_id {
            v["organization_id"] = o.clone().into();
        }
        v
    }
}

/// Model > owner user > organization (the model's, else its owner's) > system > environment.
pub fn resolve_level(state: &State, model: &Model, env_token_present: bool) -> ResolvedLevel {
    let level = |source| ResolvedLevel {
        source,
        user_id: None,
        organization_id: None,
    };
    if model.hf_token.is_some() {
        return level(TokenSource::Model);
    }
    let owner = model
        .owner_user_id
        .as_ref()
        .and_then(|id| state.users.get(id));
    if let Some(user) = owner.filter(|u| u.hf_token.is_some()) {
        return ResolvedLevel {
            user_id: Some(user.id.clone()),
            ..level(TokenSource::User)
        };
    }
    let org_id = model
        .organization_id
        .clone()
        .or_else(|| owner.and_then(|u| u.organization_id.clone()));
    if let Some(org) = org_id.and_then(|id| state.orgs.get(&id)) {
        if org.hf_token.is_some() {
            return ResolvedLevel {
                organization_id: Some(org.id.clone()),
                ..level(TokenSource::Organization)
            };
        }
    }
    if state.settings.hf_token.is_some() {
        return level(TokenSource::System);
    }
    if env_token_present {
        return level(TokenSource::Environment);
    }
    level(TokenSource::None)
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
        key: key.clone(),
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
