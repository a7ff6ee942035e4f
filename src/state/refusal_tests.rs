//! `apply` trusts no proposer: whatever reaches the log (a member's forged proposal, a
//! hand-built one on the peer port) is held to the rules the API holds requests to.

use std::collections::BTreeSet;

use super::tests::{
    by, every_command, every_command_applied, gpu, new_user, sealed, ADMIN_KEY, U2_KEY,
};
use super::*;
use crate::crypto::SealedSecret;

fn built() -> State {
    every_command_applied()
}

/// Applies `proposal` to a copy of `s`: its refusal, after checking it changed nothing.
pub(super) fn refused(s: &State, proposal: Proposal) -> StateError {
    let mut after = s.clone();
    let (outcome, touched) = after.apply(&proposal);
    let error = outcome.expect_err(&format!("{:?} was accepted", proposal.command));
    assert!(
        touched.is_empty(),
        "{:?} touched {touched:?}",
        proposal.command
    );
    assert_eq!(&after, s, "{:?} changed the state", proposal.command);
    error
}

const SYSTEM_KINDS: &[&str] = &[
    "Bootstrap",
    "RegisterNode",
    "PublishGpus",
    "PublishEnvToken",
    "Schedule",
    "ReportSlot",
    "RemoveNode",
    "InitCa",
    "RecordCertificate",
    "AdmitNode",
    "TouchApiKeys",
    "InstallKeyring",
    "RecordAutopilot",
];

/// Every command, at the point `every_command` runs it: without an actor only the
/// cluster's own kinds pass, and those never pass with a user's key, an admin's included.
#[test]
fn only_the_cluster_proposes_without_an_actor_and_only_it_proposes_its_kinds() {
    let mut s = State::default();
    let mut system_seen = BTreeSet::new();
    for p in every_command() {
        let name = p.command.name();
        if SYSTEM_KINDS.contains(&name) {
            assert_eq!(p.actor, None);
            system_seen.insert(name);
            if !s.users.is_empty() {
                let e = refused(&s, by(Some(ADMIN_KEY), 1, p.command.clone()));
                assert_eq!(
                    e,
                    StateError::Forbidden("only the cluster itself may do this".into())
                );
            }
        } else {
            match refused(&s, by(None, p.at_ms, p.command.clone())) {
                StateError::Forbidden(m) => assert!(
                    m.starts_with(&format!("{name} needs an authenticated user")),
                    "{m}"
                ),
                other => panic!("{name} without an actor: {other:?}"),
            }
        }
        s.apply(&p).0.unwrap();
    }
    assert_eq!(system_seen.len(), SYSTEM_KINDS.len(), "{system_seen:?}");
}

/// The attack that was found: a hand-built `CreateUser` of an admin, with no actor.
#[test]
fn a_forged_admin_without_an_actor_changes_nothing() {
    let s = built();
    let forged = Command::CreateUser {
        user: new_user("mallory", true, None),
        key_id: "km".into(),
        key_hash: "ee".repeat(32),
    };
    assert!(matches!(
        refused(&s, by(None, 100, forged)),
        StateError::Forbidden(_)
    ));

    // Nor through a second bootstrap: once users exist it is a no-op.
    let mut after = s.clone();
    let again = Command::Bootstrap {
        admin: new_user("mallory", true, None),
        key_id: "km".into(),
        key_hash: "ee".repeat(32),
    };
    assert_eq!(after.apply(&by(None, 100, again)).0, Ok(Reply::Done));
    assert_eq!(
        (&after.users, &after.api_keys),
        (&s.users, &s.api_keys),
        "a late bootstrap added someone"
    );
    // A bootstrap whose first user is no admin is refused, even on an empty cluster.
    let not_admin = Command::Bootstrap {
        admin: new_user("u1", false, None),
        key_id: "k1".into(),
        key_hash: ADMIN_KEY.into(),
    };
    assert!(matches!(
        refused(&State::default(), by(None, 1, not_admin)),
        StateError::Invalid(m) if m.contains("`admin`")
    ));
}

fn bad_sealed() -> SealedSecret {
    serde_json::from_value(serde_json::json!({ "nonce": [1, 2, 3], "ciphertext": [] }))
        .expect("a sealed secret's shape")
}

/// One malformed payload of each kind, each refused with a message that names the field.
#[test]
fn malformed_commands_are_refused_naming_the_field() {
    let s = built();
    let admin = Some(ADMIN_KEY);
    let mut stray = Model::new("org/stray".into());
    stray.prewarm = true;
    let mut reserved = Model::new("org/r".into());
    reserved.runtime_args = vec!["--port=1".into()];
    let mut unowned = Model::new("org/u".into());
    unowned.owner_user_id = Some("nobody".into());
    let mut orphan = new_user("u9", false, Some("o-none"));
    orphan.org_role = Some(OrgRole::Member);
    let mut tokened = new_user("u9", false, None);
    tokened.hf_token = Some(sealed(TokenScope::User("u9")));
    let placed = |slot_id: String, gpu_indices: Vec<u32>| SlotChange::Place {
        slot_id,
        model_id: "org/m".into(),
        expect_generation: 1,
        placement: Placement {
            node_id: 2,
            gpu_indices,
        },
    };
    let register = |api_addr: &str, peer_addr: &str| NodeAnnouncement {
        id: 5,
        api_addr: api_addr.into(),
        peer_addr: peer_addr.into(),
        joined_ms: 0,
        gpus: Vec::new(),
    };
    let user = |user: NewUser, key_hash: &str| Command::CreateUser {
        user,
        key_id: "k9".into(),
        key_hash: key_hash.into(),
    };
    let patch = |patch: ModelPatch| Command::UpdateModel {
        id: "org/m".into(),
        patch,
    };
    let fresh_key = "ff".repeat(32);
    let cases: Vec<(Option<&str>, Command, &str)> = vec![
        (
            admin,
            Command::UpdateSystemSettings {
                hf_token: Some(TokenUpdate::Set(bad_sealed())),
            },
            "hf_token",
        ),
        (
            None,
            Command::RegisterNode(register("nowhere", "127.0.0.5:2")),
            "api_addr",
        ),
        (
            None,
            Command::RegisterNode(register("127.0.0.5:1", "x:y")),
            "peer_addr",
        ),
        (
            None,
            Command::PublishGpus {
                node_id: 2,
                gpus: vec![gpu(0), gpu(0)],
            },
            "gpus",
        ),
        (
            None,
            Command::Schedule(vec![placed("forged-000000".into(), vec![0])]),
            "slot_id",
        ),
        (
            None,
            Command::Schedule(vec![placed(slot_id_for("org/m"), Vec::new())]),
            "placement.gpu_indices",
        ),
        (
            None,
            Command::Schedule(vec![SlotChange::Pending {
                slot_id: slot_id_for("../x"),
                model_id: "../x".into(),
                expect_generation: 0,
                reason: "none".into(),
            }]),
            "model_id",
        ),
        (
            None,
            Command::ReportSlot {
                slot_id: "../../etc".into(),
                node_id: 2,
                generation: 1,
                status: SlotStatus::default(),
            },
            "slot_id",
        ),
        (
            None,
            Command::ReportSlot {
                slot_id: slot_id_for("org/m"),
                node_id: 2,
                generation: 1,
                status: SlotStatus {
                    last_error: Some("e".repeat(100_000)),
                    ..SlotStatus::default()
                },
            },
            "status.last_error",
        ),
        (
            admin,
            Command::CreateOrg(Org {
                id: "a/b".into(),
                name: "x".into(),
                created_ms: 0,
                updated_ms: 0,
                hf_token: None,
            }),
            "id",
        ),
        (
            admin,
            Command::CreateOrg(Org {
                id: "o2".into(),
                name: " ".into(),
                created_ms: 0,
                updated_ms: 0,
                hf_token: None,
            }),
            "name",
        ),
        (
            admin,
            user(new_user("u9", false, None), "not-a-hash"),
            "key_hash",
        ),
        (admin, user(new_user("u 9", false, None), &fresh_key), "id"),
        (admin, user(orphan, &fresh_key), "organization_id"),
        (admin, user(tokened, &fresh_key), "hf_token"),
        (
            Some(U2_KEY),
            Command::IssueApiKey {
                user_id: "u2".into(),
                key_id: "k9".into(),
                key_hash: "ABC".into(),
            },
            "key_hash",
        ),
        (admin, Command::RevokeApiKey { key_id: "".into() }, "key_id"),
        (
            Some(U2_KEY),
            Command::IssueNamedApiKey {
                user_id: "u2".into(),
                key_id: "k9".into(),
                key_hash: fresh_key.clone(),
                name: Some("\u{7}".into()),
            },
            "name",
        ),
        (
            Some(U2_KEY),
            Command::RotateApiKey {
                key_id: "k2".into(),
                new_key_id: "k9".into(),
                new_key_hash: "ABC".into(),
            },
            "new_key_hash",
        ),
        (
            admin,
            Command::SetUserDisabled {
                user_id: "u 2".into(),
                disabled: true,
            },
            "user_id",
        ),
        (
            None,
            Command::TouchApiKeys {
                key_hashes: vec!["ABC".into()],
            },
            "key_hashes",
        ),
        (
            admin,
            Command::UpdateOrgSettings {
                org_id: "o 1".into(),
                hf_token: None,
            },
            "org_id",
        ),
        (
            admin,
            Command::UpdateUserSettings {
                user_id: "u2".into(),
                hf_token: Some(TokenUpdate::Set(bad_sealed())),
            },
            "hf_token",
        ),
        (admin, Command::CreateModel(stray), "memory"),
        (admin, Command::CreateModel(reserved), "runtime_args"),
        (admin, Command::CreateModel(unowned), "owner_user_id"),
        (
            admin,
            Command::CreateModel(Model::new("a/../b".into())),
            "id",
        ),
        (
            admin,
            patch(ModelPatch {
                memory: Some(0),
                ..ModelPatch::default()
            }),
            "memory",
        ),
        (
            admin,
            patch(ModelPatch {
                organization_id: Some(Some("o-none".into())),
                ..ModelPatch::default()
            }),
            "organization_id",
        ),
        (admin, Command::DeleteModel { id: "".into() }, "id"),
    ];
    for (actor, command, field) in cases {
        let name = command.name();
        match refused(&s, by(actor, 100, command)) {
            StateError::Invalid(m) => assert!(
                m.starts_with(&format!("invalid field `{field}`")),
                "{name}: {m:?} should name {field}"
            ),
            other => panic!("{name}: refused as {other:?}, not as invalid {field}"),
        }
    }
}

/// A key hash or key id already stored is not taken over by a new key.
#[test]
fn a_stored_key_cannot_be_issued_again() {
    let s = built();
    let issue = |key_id: &str, key_hash: &str| {
        by(
            Some(U2_KEY),
            100,
            Command::IssueApiKey {
                user_id: "u2".into(),
                key_id: key_id.into(),
                key_hash: key_hash.into(),
            },
        )
    };
    assert!(matches!(
        refused(&s, issue("k9", ADMIN_KEY)),
        StateError::Conflict(_)
    ));
    assert!(matches!(
        refused(&s, issue("k1", &"ff".repeat(32))),
        StateError::Conflict(_)
    ));
}

/// A placement of a model that is gone, or on GPUs the node does not have, is dropped as
/// one taken on an older view: it does not create a slot.
#[test]
fn placements_of_unknown_models_or_gpus_are_dropped() {
    let s = built();
    let place = |model_id: &str, gpu_indices: Vec<u32>| {
        by(
            None,
            100,
            Command::Schedule(vec![SlotChange::Place {
                slot_id: slot_id_for(model_id),
                model_id: model_id.into(),
                expect_generation: 0,
                placement: Placement {
                    node_id: 2,
                    gpu_indices,
                },
            }]),
        )
    };
    for forged in [place("org/ghost", vec![0]), place("org/m", vec![7])] {
        let mut after = s.clone();
        assert_eq!(after.apply(&forged).0, Ok(Reply::Done));
        assert_eq!(after.slots, s.slots);
    }
}

/// The time `apply` uses never goes back: a proposal stamped before the last one (by a new
/// leader whose clock is behind) is applied at the last time; a refusal moves no clock.
#[test]
fn time_never_goes_back() {
    let mut s = built();
    assert_eq!(s.clock_ms, 31);
    let org = |id: &str| Org {
        id: id.into(),
        name: id.into(),
        created_ms: 0,
        updated_ms: 0,
        hf_token: None,
    };
    let (outcome, touched) = s.apply(&by(Some(ADMIN_KEY), 5, Command::CreateOrg(org("late"))));
    assert!(matches!(outcome, Ok(Reply::Org(o)) if o.created_ms == 31));
    assert!(!touched.contains(&StateKey::Clock));
    assert_eq!(s.audit.values().next_back().map(|a| a.at_ms), Some(31));

    refused(
        &s,
        by(Some(ADMIN_KEY), 1_000, Command::CreateOrg(org("late"))),
    );
    let (outcome, touched) = s.apply(&by(Some(ADMIN_KEY), 35, Command::CreateOrg(org("next"))));
    assert!(matches!(outcome, Ok(Reply::Org(o)) if o.created_ms == 35));
    assert!(touched.contains(&StateKey::Clock));
    assert_eq!(s.clock_ms, 35);
}
