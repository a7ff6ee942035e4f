//! The state as stored: one record per object, so an apply rewrites only what it touched,
//! and a snapshot is the list of all records.
//!
//! Records are read by position of their [`StateValue`] variant, so a record type that
//! changes shape gets a new variant at the end and the old one is still read (and upgraded).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::{Model, ModelV1};
use super::codec::{self, CodecError};
use super::keyring::Keyring;
use super::nodes::{NodeAnnouncement, NodeRecord, Slot};
use super::tenancy::{ApiKey, ApiKeyV1, AuditEntry, NewUser, Org, SystemSettings, User};
use super::trust::{CaRecord, CertRecord, JoinTokenRecord};
use super::{AuditLog, State};

/// One record of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateKey {
    Settings,
    User(String),
    ApiKey(String),
    Model(String),
    Node(u64),
    Slot(String),
    Org(String),
    Audit(u64),
    /// The latest time an apply was stamped with.
    Clock,
    Ca,
    JoinToken(String),
    Certificate(String),
    RetiredNode(u64),
    DisabledUser(String),
    Keyring,
    Compactions,
}

/// The stored value behind a [`StateKey`].
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StateValue {
    Settings(SystemSettings),
    /// A user as stored before users had `updated_ms`.
    UserV1(NewUser),
    /// A key as stored before keys had a name and a last use.
    ApiKeyV1(String, ApiKeyV1),
    /// A model as stored before models had `replicas`.
    ModelV1(ModelV1),
    /// A node as stored before nodes said whether they have an `HF_TOKEN`.
    NodeV1(NodeAnnouncement),
    Slot(Slot),
    Org(Org),
    Audit(AuditEntry),
    User(User),
    Node(NodeRecord),
    /// [`State::clock_ms`]; absent from data written before it existed, which reads as 0.
    Clock(i64),
    Ca(CaRecord),
    JoinToken(JoinTokenRecord),
    Certificate(CertRecord),
    RetiredNode(u64),
    ApiKey(String, ApiKey),
    DisabledUser(String),
    Keyring(Keyring),
    Compactions(u64),
    Model(Model),
}

impl StateKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateKey::Settings => b"settings".to_vec(),
            StateKey::User(id) => format!("user/{id}").into_bytes(),
            StateKey::ApiKey(hash) => format!("apikey/{hash}").into_bytes(),
            StateKey::Model(id) => format!("model/{id}").into_bytes(),
            StateKey::Node(id) => format!("node/{id:020}").into_bytes(),
            StateKey::Slot(id) => format!("slot/{id}").into_bytes(),
            StateKey::Org(id) => format!("org/{id}").into_bytes(),
            StateKey::Audit(seq) => format!("audit/{seq:020}").into_bytes(),
            StateKey::Clock => b"clock".to_vec(),
            StateKey::Ca => b"ca".to_vec(),
            StateKey::JoinToken(id) => format!("jointoken/{id}").into_bytes(),
            StateKey::Certificate(serial) => format!("cert/{serial}").into_bytes(),
            StateKey::RetiredNode(id) => format!("retired/{id:020}").into_bytes(),
            StateKey::DisabledUser(id) => format!("disabled/{id}").into_bytes(),
            StateKey::Keyring => b"keyring".to_vec(),
            StateKey::Compactions => b"compactions".to_vec(),
        }
    }
}

impl State {
    /// The stored bytes for `key`, or `None` when the record no longer exists.
    pub fn encode_record(&self, key: &StateKey) -> Option<Vec<u8>> {
        let value = match key {
            StateKey::Settings => StateValue::Settings(self.settings.clone()),
            StateKey::User(id) => StateValue::User(self.users.get(id)?.clone()),
            StateKey::ApiKey(hash) => {
                StateValue::ApiKey(hash.clone(), self.api_keys.get(hash)?.clone())
            }
            StateKey::Model(id) => StateValue::Model(self.models.get(id)?.clone()),
            StateKey::Node(id) => StateValue::Node(self.nodes.get(id)?.clone()),
            StateKey::Slot(id) => StateValue::Slot(self.slots.get(id)?.clone()),
            StateKey::Org(id) => StateValue::Org(self.orgs.get(id)?.clone()),
            StateKey::Audit(seq) => StateValue::Audit(self.audit.get(seq)?.clone()),
            StateKey::Clock => StateValue::Clock(self.clock_ms),
            StateKey::Ca => StateValue::Ca(self.trust.ca.clone()?),
            StateKey::JoinToken(id) => {
                StateValue::JoinToken(self.trust.join_tokens.get(id)?.clone())
            }
            StateKey::Certificate(serial) => {
                StateValue::Certificate(self.trust.certificates.get(serial)?.clone())
            }
            StateKey::RetiredNode(id) => {
                StateValue::RetiredNode(*self.trust.retired_nodes.get(id)?)
            }
            StateKey::DisabledUser(id) => {
                StateValue::DisabledUser(self.disabled_users.get(id)?.clone())
            }
            StateKey::Keyring => StateValue::Keyring(self.keyring.clone()?),
            StateKey::Compactions => StateValue::Compactions(self.compactions),
        };
        Some(codec::encode(&value))
    }

    /// Every record, keyed as stored: what a snapshot holds.
    pub fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.all_keys()
            .into_iter()
            .filter_map(|k| Some((k.to_bytes(), self.encode_record(&k)?)))
            .collect()
    }

    /// Rebuild the state from stored records (any order).
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<State, CodecError> {
        let mut state = State::default();
        for bytes in records {
            match codec::decode::<StateValue>(bytes)? {
                StateValue::Settings(s) => state.settings = s,
                StateValue::UserV1(u) => {
                    let created = u.created_ms;
                    state.users.insert(u.id.clone(), u.into_user(created));
                }
                StateValue::User(u) => {
                    state.users.insert(u.id.clone(), u);
                }
                StateValue::ApiKeyV1(hash, k) => {
                    state.api_keys.insert(hash, k.upgrade());
                }
                StateValue::ApiKey(hash, k) => {
                    state.api_keys.insert(hash, k);
                }
                StateValue::DisabledUser(id) => {
                    state.disabled_users.insert(id);
                }
                StateValue::ModelV1(m) => {
                    state.models.insert(m.id.clone(), m.into());
                }
                StateValue::Model(m) => {
                    state.models.insert(m.id.clone(), m);
                }
                StateValue::NodeV1(n) => {
                    state.nodes.insert(n.id, n.into_record());
                }
                StateValue::Node(n) => {
                    state.nodes.insert(n.id, n);
                }
                StateValue::Slot(s) => {
                    state.slots.insert(s.id.clone(), s);
                }
                StateValue::Org(o) => {
                    state.orgs.insert(o.id.clone(), o);
                }
                StateValue::Audit(a) => {
                    state.audit.load(a);
                }
                StateValue::Clock(ms) => state.clock_ms = ms,
                StateValue::Ca(ca) => state.trust.ca = Some(ca),
                StateValue::JoinToken(t) => {
                    state.trust.join_tokens.insert(t.id.clone(), t);
                }
                StateValue::Certificate(c) => {
                    state.trust.certificates.insert(c.serial.clone(), c);
                }
                StateValue::RetiredNode(id) => {
                    state.trust.retired_nodes.insert(id);
                }
                StateValue::Keyring(k) => state.keyring = Some(k),
                StateValue::Compactions(n) => state.compactions = n,
            }
        }
        Ok(state)
    }

    /// Every key that currently has a record.
    pub fn all_keys(&self) -> Vec<StateKey> {
        let mut keys = vec![StateKey::Settings];
        keys.extend(self.users.keys().cloned().map(StateKey::User));
        keys.extend(self.api_keys.keys().cloned().map(StateKey::ApiKey));
        keys.extend(self.models.keys().cloned().map(StateKey::Model));
        keys.extend(self.nodes.keys().copied().map(StateKey::Node));
        keys.extend(self.slots.keys().cloned().map(StateKey::Slot));
        keys.extend(self.orgs.keys().cloned().map(StateKey::Org));
        keys.extend(self.audit.keys().map(StateKey::Audit));
        keys.push(StateKey::Clock);
        keys.extend(self.trust.ca.iter().map(|_| StateKey::Ca));
        keys.extend(
            self.trust
                .join_tokens
                .keys()
                .cloned()
                .map(StateKey::JoinToken),
        );
        keys.extend(
            self.trust
                .certificates
                .keys()
                .cloned()
                .map(StateKey::Certificate),
        );
        keys.extend(
            self.trust
                .retired_nodes
                .iter()
                .copied()
                .map(StateKey::RetiredNode),
        );
        keys.extend(
            self.disabled_users
                .iter()
                .cloned()
                .map(StateKey::DisabledUser),
        );
        keys.extend(self.keyring.iter().map(|_| StateKey::Keyring));
        keys.push(StateKey::Compactions);
        keys
    }

    /// A snapshot body from before snapshots were lists of records: the whole state, as it
    /// was shaped then.
    pub fn from_whole_state_snapshot(bytes: &[u8]) -> Result<State, CodecError> {
        let old: WholeStateSnapshot = codec::decode(bytes)?;
        let s = old.state;
        Ok(State {
            settings: s.settings,
            users: s
                .users
                .into_iter()
                .map(|(id, u)| {
                    let created = u.created_ms;
                    (id, u.into_user(created))
                })
                .collect(),
            api_keys: s
                .api_keys
                .into_iter()
                .map(|(hash, k)| (hash, k.upgrade()))
                .collect(),
            disabled_users: Default::default(),
            models: s.models.into_iter().map(|(id, m)| (id, m.into())).collect(),
            nodes: s
                .nodes
                .into_iter()
                .map(|(id, n)| (id, n.into_record()))
                .collect(),
            slots: s.slots,
            orgs: s.orgs,
            audit: AuditLog::from_entries(s.audit.into_values()),
            clock_ms: 0,
            trust: Default::default(),
            keyring: None,
            compactions: 0,
        })
    }
}

/// How snapshots were written at first (format 1).
#[derive(Deserialize)]
struct WholeStateSnapshot {
    state: StateShapeV1,
}

#[derive(Deserialize)]
struct StateShapeV1 {
    settings: SystemSettings,
    users: BTreeMap<String, NewUser>,
    api_keys: BTreeMap<String, ApiKeyV1>,
    models: BTreeMap<String, ModelV1>,
    nodes: BTreeMap<u64, NodeAnnouncement>,
    slots: BTreeMap<String, Slot>,
    orgs: BTreeMap<String, Org>,
    audit: BTreeMap<u64, AuditEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records are read by variant position: appending one must not move the others.
    #[test]
    fn the_clock_record_comes_after_every_older_one() {
        let settings = codec::encode(&StateValue::Settings(SystemSettings::default()));
        let clock = codec::encode(&StateValue::Clock(7));
        // A format byte, then bincode's variant index.
        assert_eq!((settings[1], clock[1]), (0, 10));
    }

    /// Data written before the clock record existed loads, with the clock at 0; the clock
    /// survives a round trip once written.
    #[test]
    fn a_state_stored_without_a_clock_still_loads() {
        let mut state = State::default();
        state.settings.updated_ms = 5;
        let settings = state.encode_record(&StateKey::Settings).unwrap();
        let loaded = State::from_records([settings.as_slice()]).unwrap();
        assert_eq!((loaded.clock_ms, loaded.settings.updated_ms), (0, 5));

        state.clock_ms = 42;
        let records = state.records();
        let loaded = State::from_records(records.iter().map(|(_, v)| v.as_slice())).unwrap();
        assert_eq!(loaded, state);
    }

    /// A model stored before models had replicas loads with one.
    #[test]
    fn a_model_stored_before_replicas_loads_with_one() {
        let mut model = Model::new("a/b".into());
        model.replicas = 5;
        let bytes = codec::encode(&StateValue::ModelV1(ModelV1::from(&model)));
        let loaded = State::from_records([bytes.as_slice()]).unwrap();
        assert_eq!(loaded.models["a/b"].replicas, 1);
    }

    /// A key stored before keys had a name loads, unnamed and never used.
    #[test]
    fn a_key_stored_without_a_name_still_loads() {
        let old = ApiKeyV1 {
            id: "k1".into(),
            user_id: "u1".into(),
            created_ms: 3,
        };
        let bytes = codec::encode(&StateValue::ApiKeyV1("h".into(), old.clone()));
        let loaded = State::from_records([bytes.as_slice()]).unwrap();
        assert_eq!(loaded.api_keys["h"], old.upgrade());
        assert_eq!(loaded.api_keys["h"].name, None);
    }
}
