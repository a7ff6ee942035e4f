//! The token rulebook: the levels a Hugging Face token can be set at, where each sealed
//! token is bound, and which one a launch of a model gets.
//!
//! Resolution, highest first: the model's own token, its owner user's, its organization's
//! (the model's, else its owner's), the cluster-wide one, and last the `HF_TOKEN` in the
//! environment of the node that runs the model. The runner uses it to launch, the API to
//! answer `token-source`, so both always agree.

use serde::{Deserialize, Serialize};

use super::catalog::Model;
use super::State;
use crate::crypto::SealedSecret;

/// A level at which a Hugging Face token can be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenLevel {
    Model,
    User,
    Organization,
    System,
    Environment,
}

impl TokenLevel {
    /// The level's name in API answers and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            TokenLevel::Model => "model",
            TokenLevel::User => "user",
            TokenLevel::Organization => "organization",
            TokenLevel::System => "system",
            TokenLevel::Environment => "environment",
        }
    }
}

/// Which level a slot's token came from, as reported and stored: a level, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    Model,
    User,
    Organization,
    System,
    Environment,
    None,
}

impl From<Option<TokenLevel>> for TokenSource {
    fn from(level: Option<TokenLevel>) -> Self {
        match level {
            Some(TokenLevel::Model) => TokenSource::Model,
            Some(TokenLevel::User) => TokenSource::User,
            Some(TokenLevel::Organization) => TokenSource::Organization,
            Some(TokenLevel::System) => TokenSource::System,
            Some(TokenLevel::Environment) => TokenSource::Environment,
            None => TokenSource::None,
        }
    }
}

/// A change to a stored token: set it (sealed), or clear it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenUpdate {
    Set(SealedSecret),
    Clear,
}

impl TokenUpdate {
    /// Set or clear `stored`; `None` (no update) leaves it.
    pub fn apply(update: &Option<TokenUpdate>, stored: &mut Option<SealedSecret>) {
        match update {
            Some(TokenUpdate::Set(sealed)) => *stored = Some(sealed.clone()),
            Some(TokenUpdate::Clear) => *stored = None,
            None => {}
        }
    }
}

/// Where a sealed token belongs. The scope is bound into the ciphertext, so a token sealed
/// for one place does not open at another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope<'a> {
    System,
    Organization(&'a str),
    User(&'a str),
    Model(&'a str),
}

impl TokenScope<'_> {
    /// The owned form, to keep.
    pub fn site(&self) -> TokenSite {
        match self {
            TokenScope::System => TokenSite::System,
            TokenScope::Organization(id) => TokenSite::Organization(id.to_string()),
            TokenScope::User(id) => TokenSite::User(id.to_string()),
            TokenScope::Model(id) => TokenSite::Model(id.to_string()),
        }
    }

    /// The scope string sealed into the ciphertext. Organizations are spelled `org:` here:
    /// that is how tokens were sealed from the start, and changing it would make every
    /// stored organization token unreadable.
    pub fn seal_label(&self) -> String {
        match self {
            TokenScope::System => "system".to_string(),
            TokenScope::Organization(id) => format!("org:{id}"),
            TokenScope::User(id) => format!("user:{id}"),
            TokenScope::Model(id) => format!("model:{id}"),
        }
    }
}

/// Where a stored token lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenSite {
    System,
    Organization(String),
    User(String),
    Model(String),
}

impl TokenSite {
    pub fn scope(&self) -> TokenScope<'_> {
        match self {
            TokenSite::System => TokenScope::System,
            TokenSite::Organization(id) => TokenScope::Organization(id),
            TokenSite::User(id) => TokenScope::User(id),
            TokenSite::Model(id) => TokenScope::Model(id),
        }
    }
}

/// Which level holds the token for a model, and at which user or organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// `None`: no level has a token; the model launches without one.
    pub level: Option<TokenLevel>,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
}

impl Resolution {
    fn at(level: Option<TokenLevel>) -> Resolution {
        Resolution {
            level,
            user_id: None,
            organization_id: None,
        }
    }

    /// The sealed token and its scope, for the levels stored in the state.
    pub fn sealed<'a>(
        &self,
        state: &'a State,
        model: &'a Model,
    ) -> Option<(&'a SealedSecret, TokenScope<'a>)> {
        match self.level? {
            TokenLevel::Model => Some((model.hf_token.as_ref()?, TokenScope::Model(&model.id))),
            TokenLevel::User => {
                let user = state.users.get(self.user_id.as_deref()?)?;
                Some((user.hf_token.as_ref()?, TokenScope::User(&user.id)))
            }
            TokenLevel::Organization => {
                let org = state.orgs.get(self.organization_id.as_deref()?)?;
                Some((org.hf_token.as_ref()?, TokenScope::Organization(&org.id)))
            }
            TokenLevel::System => Some((state.settings.hf_token.as_ref()?, TokenScope::System)),
            TokenLevel::Environment => None,
        }
    }
}

/// Which level a launch of `model` takes its token from, on a node that has (`env_token`)
/// or has not an `HF_TOKEN` of its own.
pub fn resolve(state: &State, model: &Model, env_token: bool) -> Resolution {
    if model.hf_token.is_some() {
        return Resolution::at(Some(TokenLevel::Model));
    }
    let owner = model
        .owner_user_id
        .as_ref()
        .and_then(|id| state.users.get(id));
    if let Some(user) = owner.filter(|u| u.hf_token.is_some()) {
        return Resolution {
            user_id: Some(user.id.clone()),
            ..Resolution::at(Some(TokenLevel::User))
        };
    }
    let org_id = model
        .organization_id
        .clone()
        .or_else(|| owner.and_then(|u| u.organization_id.clone()));
    if let Some(org) = org_id.and_then(|id| state.orgs.get(&id)) {
        if org.hf_token.is_some() {
            return Resolution {
                organization_id: Some(org.id.clone()),
                ..Resolution::at(Some(TokenLevel::Organization))
            };
        }
    }
    if state.settings.hf_token.is_some() {
        return Resolution::at(Some(TokenLevel::System));
    }
    Resolution::at(env_token.then_some(TokenLevel::Environment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ClusterSecret;
    use crate::state::{Org, User};
    use secrecy::SecretString;

    fn sealed(scope: TokenScope) -> Option<SealedSecret> {
        let key = ClusterSecret::generate().legacy_data_key();
        Some(key.seal(&SecretString::from("hf_x".to_string()), &scope.seal_label()))
    }

    fn user(id: &str, org: Option<&str>) -> User {
        User {
            id: id.into(),
            name: id.into(),
            admin: false,
            created_ms: 0,
            updated_ms: 0,
            organization_id: org.map(str::to_string),
            org_role: None,
            hf_token: None,
        }
    }

    #[test]
    fn each_level_wins_over_the_ones_below() {
        let mut state = State::default();
        state.orgs.insert(
            "o".into(),
            Org {
                id: "o".into(),
                name: "o".into(),
                created_ms: 0,
                updated_ms: 0,
                hf_token: None,
            },
        );
        state.users.insert("u".into(), user("u", Some("o")));
        let mut model = Model::new("m".into());
        model.owner_user_id = Some("u".into());
        let level = |s: &State, m: &Model, env| resolve(s, m, env).level;

        assert_eq!(level(&state, &model, false), None);
        assert_eq!(level(&state, &model, true), Some(TokenLevel::Environment));
        state.settings.hf_token = sealed(TokenScope::System);
        assert_eq!(level(&state, &model, true), Some(TokenLevel::System));
        // The owner's organization counts when the model names none.
        state.orgs.get_mut("o").unwrap().hf_token = sealed(TokenScope::Organization("o"));
        let r = resolve(&state, &model, true);
        assert_eq!(r.level, Some(TokenLevel::Organization));
        assert_eq!(r.organization_id.as_deref(), Some("o"));
        state.users.get_mut("u").unwrap().hf_token = sealed(TokenScope::User("u"));
        let r = resolve(&state, &model, true);
        assert_eq!(r.level, Some(TokenLevel::User));
        assert_eq!(r.user_id.as_deref(), Some("u"));
        model.hf_token = sealed(TokenScope::Model("m"));
        assert_eq!(level(&state, &model, true), Some(TokenLevel::Model));
        assert!(resolve(&state, &model, true)
            .sealed(&state, &model)
            .is_some_and(|(_, scope)| scope == TokenScope::Model("m")));
    }

    #[test]
    fn the_organization_scope_keeps_its_sealed_spelling() {
        assert_eq!(TokenScope::Organization("7").seal_label(), "org:7");
        assert_eq!(TokenScope::System.seal_label(), "system");
        assert_eq!(TokenLevel::Organization.name(), "organization");
        assert_eq!(TokenSource::from(None), TokenSource::None);
    }
}
