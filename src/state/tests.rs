//! Fixtures the state's tests share: fixed keys, a keyring, and `every_command`, one
//! proposal of every kind that applies in order.

use std::sync::LazyLock;

use secrecy::SecretString;

use super::*;
use crate::crypto::{ClusterSecret, SealKey, SealKeySource, SealedSecret};

/// Key hashes as `apply` accepts them: 64 lowercase hex digits.
pub(crate) const ADMIN_KEY: &str =
    "00000000000000000000000000000000000000000000000000000000000000ad";
pub(super) const U2_KEY: &str = "00000000000000000000000000000000000000000000000000000000000000b2";
const U2_SECOND_KEY: &str = "00000000000000000000000000000000000000000000000000000000000002b2";
const U2_THIRD_KEY: &str = "00000000000000000000000000000000000000000000000000000000000003b2";

/// The seal key and cluster key of the test states: fixed, so every test's keyring opens.
pub(crate) fn test_sealer() -> Sealer {
    let cluster_key = ClusterSecret::from_hex(&"07".repeat(32)).expect("64 hex digits");
    Sealer::new(
        SealKey::new([9; 32], SealKeySource::DataDir),
        cluster_key.legacy_data_key(),
    )
}

/// The keyring `every_command` installs: made once, so every token sealed for it opens.
pub(crate) static TEST_KEYRING: LazyLock<Keyring> = LazyLock::new(|| test_sealer().first_keyring());

/// A state holding only the test keyring.
pub(crate) fn with_test_keyring() -> State {
    State {
        keyring: Some(TEST_KEYRING.clone()),
        ..State::default()
    }
}

/// A token sealed with the test keyring's current key, as the API would seal it.
pub(super) fn sealed(scope: TokenScope) -> SealedSecret {
    test_sealer()
        .seal(
            &with_test_keyring(),
            &SecretString::from("hf_x".to_string()),
            scope,
        )
        .expect("the test keyring opens")
}

pub(super) fn new_user(id: &str, admin: bool, org: Option<&str>) -> NewUser {
    NewUser {
        id: id.into(),
        name: id.into(),
        admin,
        created_ms: 0,
        organization_id: org.map(str::to_string),
        org_role: org.map(|_| OrgRole::Owner),
        hf_token: None,
    }
}

pub(crate) fn by(actor: Option<&str>, at_ms: i64, command: Command) -> Proposal {
    Proposal {
        actor: actor.map(str::to_string),
        at_ms,
        command,
    }
}

pub(super) fn gpu(index: u32) -> Gpu {
    Gpu {
        index,
        name: "declared".into(),
        uuid: None,
        memory: 80_000_000_000,
    }
}

/// The cluster recording node `id` (a command that needs no user).
pub(crate) fn register(id: u64) -> Proposal {
    by(
        None,
        id as i64,
        Command::RegisterNode(NodeAnnouncement {
            id,
            api_addr: format!("127.0.0.{id}:1"),
            peer_addr: format!("127.0.0.{id}:2"),
            joined_ms: id as i64,
            gpus: Vec::new(),
        }),
    )
}

/// Proposals that between them run every command, each one successfully: the state they
/// build touches every kind of record, and removes some.
pub(crate) fn every_command() -> Vec<Proposal> {
    let admin = Some(ADMIN_KEY);
    let node = |id: u64| NodeAnnouncement {
        id,
        api_addr: format!("127.0.0.{id}:8080"),
        peer_addr: format!("127.0.0.{id}:9080"),
        joined_ms: id as i64,
        gpus: vec![gpu(0)],
    };
    let mut model = Model::new("org/m".into());
    model.memory = 10_000_000_000;
    model.prewarm = true;
    let mut proposals = vec![
        by(
            None,
            1,
            Command::Bootstrap {
                admin: new_user("u1", true, None),
                key_id: "k1".into(),
                key_hash: ADMIN_KEY.into(),
            },
        ),
        by(None, 1, Command::InstallKeyring(TEST_KEYRING.clone())),
        by(None, 2, Command::RegisterNode(node(1))),
        by(None, 3, Command::RegisterNode(node(2))),
        by(
            None,
            4,
            Command::PublishGpus {
                node_id: 2,
                gpus: vec![gpu(0), gpu(1)],
            },
        ),
        by(
            None,
            5,
            Command::PublishEnvToken {
                node_id: 1,
                present: true,
            },
        ),
        by(
            admin,
            6,
            Command::UpdateSystemSettings {
                hf_token: Some(TokenUpdate::Set(sealed(TokenScope::System))),
            },
        ),
        by(
            admin,
            7,
            Command::CreateOrg(Org {
                id: "o1".into(),
                name: "acme".into(),
                created_ms: 0,
                updated_ms: 0,
                hf_token: None,
            }),
        ),
        by(
            admin,
            8,
            Command::CreateUser {
                user: new_user("u2", false, Some("o1")),
                key_id: "k2".into(),
                key_hash: U2_KEY.into(),
            },
        ),
        by(
            Some(U2_KEY),
            9,
            Command::IssueApiKey {
                user_id: "u2".into(),
                key_id: "k3".into(),
                key_hash: U2_SECOND_KEY.into(),
            },
        ),
        by(
            Some(U2_KEY),
            10,
            Command::RevokeApiKey {
                key_id: "k3".into(),
            },
        ),
        by(
            Some(U2_KEY),
            11,
            Command::UpdateOrgSettings {
                org_id: "o1".into(),
                hf_token: Some(TokenUpdate::Set(sealed(TokenScope::Organization("o1")))),
            },
        ),
        by(
            Some(U2_KEY),
            12,
            Command::UpdateUserSettings {
                user_id: "u2".into(),
                hf_token: Some(TokenUpdate::Set(sealed(TokenScope::User("u2")))),
            },
        ),
        by(admin, 13, Command::CreateModel(model.clone())),
        by(
            admin,
            14,
            Command::UpdateModel {
                id: "org/m".into(),
                patch: ModelPatch {
                    description: Some("updated".into()),
                    hf_token: Some(TokenUpdate::Set(sealed(TokenScope::Model("org/m")))),
                    ..ModelPatch::default()
                },
            },
        ),
        by(admin, 15, Command::CreateModel(Model::new("gone".into()))),
        by(admin, 16, Command::DeleteModel { id: "gone".into() }),
        by(
            None,
            17,
            Command::Schedule(vec![SlotChange::Place {
                slot_id: slot_id_for("org/m"),
                model_id: "org/m".into(),
                expect_generation: 0,
                placement: Placement {
                    node_id: 2,
                    gpu_indices: vec![1],
                },
            }]),
        ),
        by(
            None,
            18,
            Command::ReportSlot {
                slot_id: slot_id_for("org/m"),
                node_id: 2,
                generation: 1,
                status: SlotStatus {
                    state: SlotState::Running,
                    port: Some(20000),
                    hf_token_source: Some(TokenSource::Model),
                    restarts: 0,
                    last_error: None,
                },
            },
        ),
        by(None, 19, Command::RemoveNode { id: 1 }),
        by(
            None,
            19,
            Command::RecordAutopilot {
                action: AutopilotAction::Demoted,
                node_id: 1,
            },
        ),
        by(None, 20, Command::InitCa(ca_record())),
        by(
            None,
            21,
            Command::RecordCertificate(IssuedCertificate {
                node_id: 2,
                serial: "0a".into(),
                not_after_ms: 1_000_000,
            }),
        ),
        by(
            admin,
            22,
            Command::CreateJoinToken {
                id: JOIN_TOKEN_ID.into(),
                secret_hash: JOIN_SECRET_HASH.into(),
                ttl_ms: 1000,
                max_uses: Some(2),
            },
        ),
        by(
            None,
            23,
            Command::AdmitNode {
                token_id: JOIN_TOKEN_ID.into(),
                secret_hash: JOIN_SECRET_HASH.into(),
                certificate: IssuedCertificate {
                    node_id: 3,
                    serial: "0b".into(),
                    not_after_ms: 1_000_000,
                },
            },
        ),
        by(
            admin,
            24,
            Command::RevokeJoinToken {
                id: JOIN_TOKEN_ID.into(),
            },
        ),
        by(
            Some(U2_KEY),
            25,
            Command::IssueNamedApiKey {
                user_id: "u2".into(),
                key_id: "k4".into(),
                key_hash: U2_SECOND_KEY.into(),
                name: Some("laptop".into()),
            },
        ),
        by(
            Some(U2_KEY),
            26,
            Command::RotateApiKey {
                key_id: "k4".into(),
                new_key_id: "k5".into(),
                new_key_hash: U2_THIRD_KEY.into(),
            },
        ),
        by(
            None,
            27,
            Command::TouchApiKeys {
                key_hashes: vec![ADMIN_KEY.into(), U2_THIRD_KEY.into()],
            },
        ),
        by(
            admin,
            28,
            Command::SetUserDisabled {
                user_id: "u2".into(),
                disabled: true,
            },
        ),
        by(
            admin,
            29,
            Command::SetUserDisabled {
                user_id: "u2".into(),
                disabled: false,
            },
        ),
        by(
            admin,
            29,
            Command::UpdateTokenSettings {
                system: Some(TokenUpdate::Set(sealed(TokenScope::System))),
                orgs: vec![(
                    "o1".into(),
                    TokenUpdate::Set(sealed(TokenScope::Organization("o1"))),
                )],
                users: vec![("u1".into(), TokenUpdate::Clear)],
            },
        ),
    ];
    // A rotation re-seals the tokens set above, so it is made from the state they built.
    let mut state = State::default();
    for p in &proposals {
        state.apply(p).0.expect("every command above applies");
    }
    let rotation = test_sealer()
        .rotation(&state)
        .expect("the test keyring opens");
    proposals.push(by(admin, 30, rotation));
    proposals.push(by(admin, 31, Command::CompactLogs));
    proposals
}

/// The state `every_command` builds (every proposal in it succeeds).
pub(crate) fn every_command_applied() -> State {
    let mut state = State::default();
    for p in every_command() {
        state.apply(&p).0.unwrap();
    }
    state
}

pub(crate) const JOIN_TOKEN_ID: &str = "00000000000000a1";
pub(crate) const JOIN_SECRET_HASH: &str =
    "00000000000000000000000000000000000000000000000000000000000000a2";

/// A real CA certificate, its key sealed with some cluster key.
pub(super) fn ca_record() -> CaRecord {
    let ca = crate::tls::ClusterCa::generate(0).expect("a CA");
    CaRecord {
        cert_pem: ca.cert_pem().to_string(),
        fingerprint: ca.fingerprint(),
        sealed_key: ClusterSecret::generate()
            .ca_key_sealer()
            .seal(&ca.key_pem(), "cluster-ca"),
    }
}
