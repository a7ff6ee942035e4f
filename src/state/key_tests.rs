//! Keys and disabled users: every key can be revoked but the last one of the last admin,
//! rotation swaps a key in one apply, a disabled user's keys stop at commit time.

use super::tests::{by, new_user, ADMIN_KEY};
use super::*;

const ADMIN2_KEY: &str = "00000000000000000000000000000000000000000000000000000000000000a2";
const NEW_KEY: &str = "00000000000000000000000000000000000000000000000000000000000000c1";

fn ok(s: &mut State, p: Proposal) {
    let (outcome, _) = s.apply(&p);
    outcome.unwrap_or_else(|e| panic!("{:?}: {e}", p.command));
}

fn err(s: &mut State, p: Proposal) -> StateError {
    let before = s.clone();
    let e = s.apply(&p).0.expect_err("accepted");
    assert_eq!(&before, s, "a refusal changed the state");
    e
}

/// A bootstrapped cluster: admin `a1` with the key `k1`.
fn bootstrapped() -> State {
    let mut s = State::default();
    let boot = Command::Bootstrap {
        admin: new_user("a1", true, None),
        key_id: "k1".into(),
        key_hash: ADMIN_KEY.into(),
    };
    ok(&mut s, by(None, 1, boot));
    s
}

fn with_second_admin(s: &mut State) {
    let create = Command::CreateUser {
        user: new_user("a2", true, None),
        key_id: "k2".into(),
        key_hash: ADMIN2_KEY.into(),
    };
    ok(s, by(Some(ADMIN_KEY), 2, create));
}

fn revoke(key_id: &str) -> Command {
    Command::RevokeApiKey {
        key_id: key_id.into(),
    }
}

fn disable(user_id: &str, disabled: bool) -> Command {
    Command::SetUserDisabled {
        user_id: user_id.into(),
        disabled,
    }
}

#[test]
fn the_bootstrap_key_is_named_and_revocable_once_another_admin_exists() {
    let mut s = bootstrapped();
    let keys = s.keys_of("a1");
    assert_eq!(
        (keys[0].id.as_str(), keys[0].name.as_deref()),
        ("k1", Some("bootstrap"))
    );
    match err(&mut s, by(Some(ADMIN_KEY), 2, revoke("k1"))) {
        StateError::Conflict(m) => assert!(m.contains("last key of the last enabled admin"), "{m}"),
        other => panic!("{other:?}"),
    }
    with_second_admin(&mut s);
    ok(&mut s, by(Some(ADMIN2_KEY), 3, revoke("k1")));
    assert!(s.keys_of("a1").is_empty());
    let e = err(&mut s, by(Some(ADMIN_KEY), 4, disable("a2", true)));
    assert_eq!(e, StateError::Unauthenticated);
}

#[test]
fn rotation_swaps_the_key_and_keeps_its_name() {
    let mut s = bootstrapped();
    let rotate = Command::RotateApiKey {
        key_id: "k1".into(),
        new_key_id: "k9".into(),
        new_key_hash: NEW_KEY.into(),
    };
    ok(&mut s, by(Some(ADMIN_KEY), 2, rotate));
    let keys = s.keys_of("a1");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0].id.as_str(),
            keys[0].name.as_deref(),
            keys[0].created_ms
        ),
        ("k9", Some("bootstrap"), 2)
    );
    assert!(s.user_by_key_hash(ADMIN_KEY).is_none());
    assert_eq!(s.audit.values().last().unwrap().kind, "api_key_rotated");
}

#[test]
fn a_disabled_users_keys_stop_until_enabled() {
    let mut s = bootstrapped();
    with_second_admin(&mut s);
    match err(&mut s, by(Some(ADMIN_KEY), 3, disable("a1", true))) {
        StateError::Conflict(m) => assert!(m.contains("cannot disable themselves"), "{m}"),
        other => panic!("{other:?}"),
    }
    ok(&mut s, by(Some(ADMIN_KEY), 3, disable("a2", true)));
    assert!(s.user_by_key_hash(ADMIN2_KEY).is_none());
    // A proposal accepted before the disable fails at commit time.
    let e = err(&mut s, by(Some(ADMIN2_KEY), 4, revoke("k1")));
    assert_eq!(e, StateError::Unauthenticated);
    // a1 is now the last enabled admin: revoking its last key would lock everyone out.
    assert!(matches!(
        err(&mut s, by(Some(ADMIN_KEY), 4, revoke("k1"))),
        StateError::Conflict(_)
    ));
    ok(&mut s, by(Some(ADMIN_KEY), 5, disable("a2", false)));
    assert_eq!(s.user_by_key_hash(ADMIN2_KEY).unwrap().id, "a2");
    let kinds: Vec<&str> = s.audit.values().map(|a| a.kind.as_str()).collect();
    assert!(
        kinds.ends_with(&["user_disabled", "user_enabled"]),
        "{kinds:?}"
    );
}

#[test]
fn a_touch_records_the_stamp_and_never_goes_back() {
    let mut s = bootstrapped();
    let touch = |hashes: &[&str]| Command::TouchApiKeys {
        key_hashes: hashes.iter().map(|h| h.to_string()).collect(),
    };
    ok(&mut s, by(None, 50, touch(&[ADMIN_KEY, NEW_KEY])));
    assert_eq!(s.api_keys[ADMIN_KEY].last_used_ms, Some(50));
    ok(&mut s, by(None, 40, touch(&[ADMIN_KEY])));
    assert_eq!(s.api_keys[ADMIN_KEY].last_used_ms, Some(50));
    let e = err(&mut s, by(Some(ADMIN_KEY), 60, touch(&[ADMIN_KEY])));
    assert!(matches!(e, StateError::Forbidden(_)), "{e:?}");
}
