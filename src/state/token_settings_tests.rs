//! Tokens of several levels in one settings request: all set, or none.

use super::refusal_tests::refused;
use super::tests::{by, every_command, sealed, ADMIN_KEY, U2_KEY};
use super::*;

/// Every command's state up to the keyring rotation, so that the test keyring's key still
/// seals for it.
fn built() -> State {
    let mut state = State::default();
    for p in every_command() {
        if matches!(p.command, Command::RotateKeyring { .. }) {
            break;
        }
        state.apply(&p).0.unwrap();
    }
    state
}

fn set(scope: TokenScope) -> TokenUpdate {
    TokenUpdate::Set(sealed(scope))
}

fn update(orgs: Vec<(&str, TokenUpdate)>, users: Vec<(&str, TokenUpdate)>) -> Command {
    let owned = |entries: Vec<(&str, TokenUpdate)>| {
        entries
            .into_iter()
            .map(|(id, update)| (id.to_string(), update))
            .collect()
    };
    Command::UpdateTokenSettings {
        system: Some(set(TokenScope::System)),
        orgs: owned(orgs),
        users: owned(users),
    }
}

#[test]
fn every_level_changes_together() {
    let mut s = built();
    let command = update(
        vec![("o1", TokenUpdate::Clear)],
        vec![("u2", set(TokenScope::User("u2")))],
    );
    s.apply(&by(Some(ADMIN_KEY), 100, command)).0.unwrap();
    assert!(s.settings.hf_token.is_some());
    assert!(s.orgs["o1"].hf_token.is_none());
    assert!(s.users["u2"].hf_token.is_some());
}

#[test]
fn one_unknown_holder_changes_nothing() {
    let s = built();
    let command = update(
        vec![("o1", set(TokenScope::Organization("o1")))],
        vec![("nobody", TokenUpdate::Clear)],
    );
    let error = refused(&s, by(Some(ADMIN_KEY), 100, command));
    assert!(
        error
            .to_string()
            .contains("`user_hf_tokens`: user \"nobody\""),
        "{error}"
    );
    let command = update(vec![("no-org", TokenUpdate::Clear)], vec![]);
    let error = refused(&s, by(Some(ADMIN_KEY), 100, command));
    assert!(error.to_string().contains("`org_hf_tokens`"), "{error}");
}

#[test]
fn only_admins_and_only_each_id_once() {
    let s = built();
    // u2 owns o1, yet the maps are an admin's: one request for many holders.
    let mine = update(vec![("o1", TokenUpdate::Clear)], vec![]);
    assert!(matches!(
        refused(&s, by(Some(U2_KEY), 100, mine)),
        StateError::Forbidden(_)
    ));
    let twice = update(
        vec![],
        vec![("u2", TokenUpdate::Clear), ("u2", TokenUpdate::Clear)],
    );
    let error = refused(&s, by(Some(ADMIN_KEY), 100, twice));
    assert!(error.to_string().contains("names an id twice"), "{error}");
}

/// A model's owner sets its token, and nothing else of it; another model's token is not
/// theirs to set.
#[test]
fn a_model_owner_changes_only_the_token_of_their_own_model() {
    let mut s = built();
    let mut mine = Model::new("u2/own".into());
    mine.memory = 1 << 30;
    mine.owner_user_id = Some("u2".into());
    s.apply(&by(Some(ADMIN_KEY), 100, Command::CreateModel(mine)))
        .0
        .unwrap();
    let token_of = |id: &str| Command::UpdateModel {
        id: id.into(),
        patch: ModelPatch {
            hf_token: Some(set(TokenScope::Model(id))),
            ..ModelPatch::default()
        },
    };
    s.apply(&by(Some(U2_KEY), 101, token_of("u2/own")))
        .0
        .unwrap();
    assert!(s.models["u2/own"].hf_token.is_some());

    let described = Command::UpdateModel {
        id: "u2/own".into(),
        patch: ModelPatch {
            description: Some("mine now".into()),
            hf_token: Some(set(TokenScope::Model("u2/own"))),
            ..ModelPatch::default()
        },
    };
    for command in [described, token_of("org/m")] {
        assert!(matches!(
            refused(&s, by(Some(U2_KEY), 102, command)),
            StateError::Forbidden(_)
        ));
    }
}
