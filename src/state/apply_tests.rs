//! `apply` as a whole: what it touches, refuses, keeps and audits.

use std::collections::BTreeMap;

use super::tests::*;
use super::*;

/// What the store keeps: exactly the records `apply` reports as touched, rewritten (or
/// removed) after each proposal. Rebuilding from them must give the state in memory, or a
/// restart would come back to another state than the one every node applied.
#[test]
fn the_touched_records_are_the_whole_state() {
    let mut state = State::default();
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for proposal in every_command() {
        let (outcome, touched) = state.apply(&proposal);
        assert!(outcome.is_ok(), "{:?}: {outcome:?}", proposal.command);
        for key in touched {
            match state.encode_record(&key) {
                Some(bytes) => stored.insert(key.to_bytes(), bytes),
                None => stored.remove(&key.to_bytes()),
            };
        }
        let rebuilt = State::from_records(stored.values().map(Vec::as_slice)).unwrap();
        assert_eq!(rebuilt, state, "after {:?}", proposal.command);
    }
    assert!(state
        .slots
        .values()
        .all(|s| s.status.state == SlotState::Running));
    assert_eq!(
        state.users["u2"].updated_ms, 12,
        "settings change stamps the user"
    );
}

#[test]
fn unknown_key_and_duplicate_model_are_refused() {
    let mut s = State::default();
    s.apply(&every_command()[0]).0.unwrap();
    let p = |actor: &str, cmd| by(Some(actor), 2, cmd);
    assert_eq!(
        s.apply(&p("nope", Command::CreateModel(Model::new("m".into()))))
            .0,
        Err(StateError::Unauthenticated)
    );
    s.apply(&p(ADMIN_KEY, Command::CreateModel(Model::new("m".into()))))
        .0
        .unwrap();
    assert!(matches!(
        s.apply(&p(ADMIN_KEY, Command::CreateModel(Model::new("m".into()))))
            .0,
        Err(StateError::Conflict(_))
    ));
    assert!(matches!(
        s.apply(&p(ADMIN_KEY, Command::RemoveNode { id: 1 })).0,
        Err(StateError::Forbidden(_))
    ));
}

#[test]
fn clearing_the_token_clears_it() {
    let mut s = State::default();
    for p in &every_command()[..2] {
        s.apply(p).0.unwrap();
    }
    for update in [
        TokenUpdate::Set(sealed(TokenScope::System)),
        TokenUpdate::Clear,
    ] {
        s.apply(&by(
            Some(ADMIN_KEY),
            3,
            Command::UpdateSystemSettings {
                hf_token: Some(update),
            },
        ))
        .0
        .unwrap();
    }
    assert!(s.settings.hf_token.is_none());
}

#[test]
fn a_restarted_node_keeps_its_published_facts() {
    let mut s = State::default();
    for p in &every_command()[..5] {
        s.apply(p).0.unwrap();
    }
    // A node re-announcing its addresses keeps its GPUs and its HF_TOKEN flag.
    let mut moved = s.nodes[&1].clone();
    moved.api_addr = "127.0.0.9:8080".into();
    s.apply(&by(
        None,
        9,
        Command::RegisterNode(NodeAnnouncement {
            id: 1,
            api_addr: moved.api_addr.clone(),
            peer_addr: moved.peer_addr.clone(),
            joined_ms: 99,
            gpus: Vec::new(),
        }),
    ))
    .0
    .unwrap();
    assert_eq!(s.nodes[&1], moved);
}

#[test]
fn codec_refuses_unknown_versions() {
    let mut bytes = codec::encode(&42u32);
    assert_eq!(codec::decode::<u32>(&bytes).unwrap(), 42);
    bytes[0] = 99;
    assert!(matches!(
        codec::decode::<u32>(&bytes),
        Err(codec::CodecError::Version { found: 99, .. })
    ));
}

/// A removed node is audited once, with the leader's time, however often removal is retried.
#[test]
fn removing_a_node_is_audited_once() {
    let mut s = State::default();
    s.apply(&register(1)).0.unwrap();
    for at_ms in [40, 41] {
        s.apply(&by(None, at_ms, Command::RemoveNode { id: 1 }))
            .0
            .unwrap();
    }
    let removed: Vec<_> = s
        .audit
        .values()
        .filter(|e| e.kind == "node_removed")
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (
            removed[0].at_ms,
            removed[0].actor_user_id.as_deref(),
            removed[0].target.as_deref()
        ),
        (40, None, Some("1"))
    );
}

/// The CA and every certificate recorded outside an admission are audited as the
/// cluster's own acts; a retried CA is not a second `ca_created`.
#[test]
fn the_ca_and_certificates_are_audited() {
    let mut s = State::default();
    for p in every_command() {
        s.apply(&p).0.unwrap();
    }
    s.apply(&by(None, 90, Command::InitCa(ca_record())))
        .0
        .unwrap();
    let kinds: Vec<_> = s
        .audit
        .values()
        .filter(|e| e.actor_user_id.is_none())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "ca_created").count(), 1);
    assert!(kinds.contains(&"certificate_issued"), "{kinds:?}");
}
