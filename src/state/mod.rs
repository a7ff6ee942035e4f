//! The replicated state: the data model, the commands that change it, and the pure `apply`.

mod apply;
mod auth;
pub mod codec;
mod command;
mod model;

pub use command::{Command, Outcome, Proposal, Reply, SlotChange, StateError, TokenUpdate};
pub use model::{
    parse_memory, slot_id_for, token_scope, ApiKey, AuditEntry, Gpu, Model, ModelPatch, ModelType,
    NodeRecord, Org, OrgRole, Placement, Runtime, Slot, SlotState, SlotStatus, State,
    SystemSettings, TokenSource, User, SYSTEM_TOKEN_SCOPE,
};

use serde::{Deserialize, Serialize};

/// One record of the state as stored in sled: the state tree holds one entry per key, so an
/// apply rewrites only what it touched.
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
}

/// The stored value behind a [`StateKey`].
#[derive(Debug, Clone, Serialize, Deserialize)]
enum StateValue {
    Settings(SystemSettings),
    User(User),
    ApiKey(String, ApiKey),
    Model(Model),
    Node(NodeRecord),
    Slot(Slot),
    Org(Org),
    Audit(AuditEntry),
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
        };
        Some(codec::encode(&value))
    }

    /// Rebuild the state from stored records (any order).
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<State, codec::CodecError> {
        let mut state = State::default();
        for bytes in records {
            match codec::decode::<StateValue>(bytes)? {
                StateValue::Settings(s) => state.settings = s,
                StateValue::User(u) => {
                    state.users.insert(u.id.clone(), u);
                }
                StateValue::ApiKey(hash, k) => {
                    state.api_keys.insert(hash, k);
                }
                StateValue::Model(m) => {
                    state.models.insert(m.id.clone(), m);
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
                    state.audit.insert(a.seq, a);
                }
            }
        }
        Ok(state)
    }

    /// Every key that currently has a record, for writing a full snapshot into sled.
    pub fn all_keys(&self) -> Vec<StateKey> {
        let mut keys = vec![StateKey::Settings];
        keys.extend(self.users.keys().cloned().map(StateKey::User));
        keys.extend(self.api_keys.keys().cloned().map(StateKey::ApiKey));
        keys.extend(self.models.keys().cloned().map(StateKey::Model));
        keys.extend(self.nodes.keys().copied().map(StateKey::Node));
        keys.extend(self.slots.keys().cloned().map(StateKey::Slot));
        keys.extend(self.orgs.keys().cloned().map(StateKey::Org));
        keys.extend(self.audit.keys().copied().map(StateKey::Audit));
        keys
    }
}

#[cfg(test)]
mod tests;
