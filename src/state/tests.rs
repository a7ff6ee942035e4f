use super::*;
use crate::crypto::ClusterSecret;
use secrecy::SecretString;

fn bootstrapped() -> (State, String) {
    let mut state = State::default();
    let admin = User {
        id: "u1".into(),
        name: "admin".into(),
        admin: true,
        created_ms: 1,
        organization_id: None,
        org_role: None,
        hf_token: None,
    };
    let (outcome, _) = state.apply(&Proposal {
        actor: None,
        at_ms: 1,
        command: Command::Bootstrap {
            admin,
            key_id: "k1".into(),
            key_hash: "hash-admin".into(),
        },
    });
    outcome.unwrap();
    (state, "hash-admin".into())
}

fn model(id: &str) -> Model {
    Model::new(id.into())
}

#[test]
fn apply_is_deterministic_and_round_trips_through_records() {
    let (mut a, admin) = bootstrapped();
    let sealed = ClusterSecret::generate()
        .data_key()
        .seal(&SecretString::from("hf_x".to_string()), SYSTEM_TOKEN_SCOPE);
    let proposals = vec![
        Proposal {
            actor: Some(admin.clone()),
            at_ms: 5,
            command: Command::UpdateSystemSettings {
                hf_token: Some(TokenUpdate::Set(sealed)),
            },
        },
        Proposal {
            actor: Some(admin.clone()),
            at_ms: 6,
            command: Command::CreateModel(model("a/b")),
        },
    ];
    let mut b = a.clone();
    for p in &proposals {
        a.apply(p).0.unwrap();
        b.apply(p).0.unwrap();
    }
    assert_eq!(a, b);
    let records: Vec<Vec<u8>> = a
        .all_keys()
        .iter()
        .filter_map(|k| a.encode_record(k))
        .collect();
    let rebuilt = State::from_records(records.iter().map(|r| r.as_slice())).unwrap();
    assert_eq!(rebuilt, a);
    assert_eq!(a.models["a/b"].created_ms, 6);
}

#[test]
fn unknown_key_and_duplicate_model_are_refused() {
    let (mut s, admin) = bootstrapped();
    let p = |actor: &str, cmd| Proposal {
        actor: Some(actor.to_string()),
        at_ms: 2,
        command: cmd,
    };
    assert_eq!(
        s.apply(&p("nope", Command::CreateModel(model("m")))).0,
        Err(StateError::Unauthenticated)
    );
    s.apply(&p(&admin, Command::CreateModel(model("m"))))
        .0
        .unwrap();
    assert!(matches!(
        s.apply(&p(&admin, Command::CreateModel(model("m")))).0,
        Err(StateError::Conflict(_))
    ));
    assert!(matches!(
        s.apply(&p(&admin, Command::RemoveNode { id: 1 })).0,
        Err(StateError::Forbidden(_))
    ));
}

#[test]
fn clearing_the_token_clears_it() {
    let (mut s, admin) = bootstrapped();
    let sealed = ClusterSecret::generate()
        .data_key()
        .seal(&SecretString::from("hf_x".to_string()), SYSTEM_TOKEN_SCOPE);
    for update in [TokenUpdate::Set(sealed), TokenUpdate::Clear] {
        s.apply(&Proposal {
            actor: Some(admin.clone()),
            at_ms: 3,
            command: Command::UpdateSystemSettings {
                hf_token: Some(update),
            },
        })
        .0
        .unwrap();
    }
    assert!(s.settings.hf_token.is_none());
}

#[test]
fn codec_refuses_unknown_versions() {
    let mut bytes = codec::encode(&42u32);
    assert_eq!(codec::decode::<u32>(&bytes).unwrap(), 42);
    bytes[0] = 99;
    assert!(matches!(
        codec::decode::<u32>(&bytes),
        Err(codec::CodecError::Version(99))
    ));
}
