//! The keyring in `apply` and in a node's [`Sealer`]: rotation, its races, other seal keys,
//! and tokens from before keyrings.

use secrecy::{ExposeSecret, SecretString};

use super::tests::{by, every_command_applied, test_sealer, with_test_keyring, ADMIN_KEY};
use super::*;
use crate::crypto::{ClusterSecret, SealKey, SealKeySource};

fn token(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

fn set_system_token(s: &State, text: &str) -> Proposal {
    let sealed = test_sealer()
        .seal(s, &token(text), TokenScope::System)
        .unwrap();
    by(
        Some(ADMIN_KEY),
        40,
        Command::UpdateSystemSettings {
            hf_token: Some(TokenUpdate::Set(sealed)),
        },
    )
}

fn opened(s: &State) -> Vec<(TokenSite, String)> {
    s.stored_tokens()
        .into_iter()
        .map(|(site, sealed)| {
            let text = test_sealer().open(s, sealed, site.scope()).unwrap();
            (site, text.expose_secret().to_string())
        })
        .collect()
}

#[test]
fn a_rotation_reseals_every_token_and_destroys_the_old_key() {
    let mut s = every_command_applied();
    let before = opened(&s);
    assert_eq!(before.len(), 4, "system, org, user and model tokens");
    let old_key = s.keyring.as_ref().unwrap().current;
    let rotation = test_sealer().rotation(&s).unwrap();
    s.apply(&by(Some(ADMIN_KEY), 40, rotation)).0.unwrap();

    let keyring = s.keyring.as_ref().unwrap();
    assert_eq!(keyring.current, old_key + 1);
    assert_eq!(
        keyring.keys.keys().copied().collect::<Vec<_>>(),
        [old_key + 1]
    );
    assert_eq!(s.tokens_per_key(), [(old_key + 1, 4)].into());
    assert_eq!(opened(&s), before, "every token opens to what it was");
    let audit = s.audit.values().next_back().unwrap();
    assert_eq!(audit.kind, "keyring_rotated");
}

#[test]
fn a_token_set_while_a_rotation_is_prepared_is_kept() {
    let mut s = every_command_applied();
    let rotation = test_sealer().rotation(&s).unwrap();
    s.apply(&set_system_token(&s, "hf_newer")).0.unwrap();
    let error = s.apply(&by(Some(ADMIN_KEY), 41, rotation)).0.unwrap_err();
    assert!(
        matches!(&error, StateError::Conflict(m) if m.contains("try again")),
        "{error}"
    );
    let system = s.settings.hf_token.as_ref().unwrap();
    let text = test_sealer().open(&s, system, TokenScope::System).unwrap();
    assert_eq!(text.expose_secret(), "hf_newer");
}

#[test]
fn a_token_sealed_before_a_rotation_is_refused_after_it() {
    let mut s = every_command_applied();
    let stale = set_system_token(&s, "hf_stale");
    let rotation = test_sealer().rotation(&s).unwrap();
    s.apply(&by(Some(ADMIN_KEY), 40, rotation)).0.unwrap();
    let error = s.apply(&stale).0.unwrap_err();
    assert!(
        matches!(&error, StateError::Conflict(m) if m.contains("rotated meanwhile")),
        "{error}"
    );
}

#[test]
fn a_node_with_another_seal_key_seals_and_opens_nothing() {
    let s = every_command_applied();
    let cluster_key = ClusterSecret::generate();
    let other = Sealer::new(
        SealKey::new([1; 32], SealKeySource::File("/run/seal.key".into())),
        cluster_key.legacy_data_key(),
    );
    let problem = other.check(&s).unwrap_err();
    assert!(matches!(problem, SealError::WrongSealKey { .. }));
    assert!(problem.to_string().contains("--seal-key-file"), "{problem}");
    let (site, sealed) = s.stored_tokens().remove(0);
    assert_eq!(other.open(&s, sealed, site.scope()).unwrap_err(), problem);
    assert!(other.seal(&s, &token("hf_x"), TokenScope::System).is_err());
    assert!(other.rotation(&s).is_err());
}

#[test]
fn tokens_from_before_keyrings_open_until_a_rotation_reseals_them() {
    let legacy = ClusterSecret::from_hex(&"07".repeat(32))
        .unwrap()
        .legacy_data_key();
    let mut s = with_test_keyring();
    s.settings.hf_token = Some(legacy.seal(&token("hf_old"), "system"));
    assert_eq!(s.tokens_per_key(), [(0, 1)].into());
    assert_eq!(opened(&s), [(TokenSite::System, "hf_old".to_string())]);

    let Command::RotateKeyring { resealed, .. } = test_sealer().rotation(&s).unwrap() else {
        panic!("a rotation");
    };
    assert_eq!(resealed.len(), 1);
    assert_eq!(resealed[0].sealed.key_id(), 2);
}

#[test]
fn a_forged_keyring_command_is_refused() {
    let s = every_command_applied();
    let mut keyring = s.keyring.clone().unwrap();
    keyring.current = 7;
    let error = Command::InstallKeyring(keyring).validate().unwrap_err();
    assert!(error.to_string().contains("key 1 only"), "{error}");

    let Command::RotateKeyring {
        seal_key_id,
        wrapped,
        resealed,
        ..
    } = test_sealer().rotation(&s).unwrap()
    else {
        panic!("a rotation");
    };
    // A rotation that skips a key id would leave tokens under a destroyed key.
    let skipped = Command::RotateKeyring {
        seal_key_id,
        key_id: 9,
        wrapped,
        resealed,
    };
    assert!(
        skipped.validate().is_err(),
        "its tokens are sealed with another key"
    );
}
