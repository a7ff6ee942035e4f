//! Snapshots: every record of the state at one applied log id, kept in `state_meta` (the
//! newest only) so that lagging and new members can be sent it and the log behind it purged.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::{RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};

use super::applied::Applied;
use super::{get, io_error, put, Db};
use crate::raft::types::{SnapshotMeta, StorageError, TypeConfig};
use crate::state::codec::{self, CodecError};
use crate::state::State;

const SNAPSHOT: &[u8] = b"snapshot";

/// Format 2: the state's records, as the `state` tree holds them, so a record type that
/// gains a field is read the same way in both. Format 1 was the whole state in one value.
const RECORDS_FORMAT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state a snapshot's data holds.
pub(super) fn decode(data: &[u8]) -> Result<State, CodecError> {
    match codec::version_of(data)? {
        RECORDS_FORMAT => {
            let records: Vec<(Vec<u8>, Vec<u8>)> = codec::decode_as(RECORDS_FORMAT, data)?;
            State::from_records(records.iter().map(|(_, value)| value.as_slice()))
        }
        _ => State::from_whole_state_snapshot(data),
    }
}

pub(super) fn encode(state: &State) -> Vec<u8> {
    codec::encode_as(RECORDS_FORMAT, &state.records())
}

/// Keep `data` as the current snapshot (not flushed: the caller flushes).
pub(super) fn store(db: &Db, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
    put(
        &db.state_meta,
        SNAPSHOT,
        &StoredSnapshot {
            meta: meta.clone(),
            data,
        },
    )
}

pub(super) fn current(db: &Db) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
    let stored: Option<StoredSnapshot> = get(&db.state_meta, SNAPSHOT)?;
    Ok(stored.map(|s| Snapshot {
        meta: s.meta,
        snapshot: Box::new(Cursor::new(s.data)),
    }))
}

pub struct SnapshotBuilder {
    db: Db,
    applied: Arc<RwLock<Applied>>,
}

impl SnapshotBuilder {
    pub(super) fn new(db: Db, applied: Arc<RwLock<Applied>>) -> SnapshotBuilder {
        SnapshotBuilder { db, applied }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // A consistent view: state, applied id and membership read under one lock.
        let (data, last_log_id, last_membership) = {
            let a = self.applied.read().expect("state lock poisoned");
            (encode(&a.state), a.last_applied, a.membership.clone())
        };
        let snapshot_id = match last_log_id {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term,
                id.index,
                crate::time::now_ms()
            ),
            None => format!("empty-{}", crate::time::now_ms()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        // Keep only the newest snapshot: one installed from the leader meanwhile may be ahead.
        let stored: Option<StoredSnapshot> = get(&self.db.state_meta, SNAPSHOT)?;
        if stored.is_none_or(|s| s.meta.last_log_id <= meta.last_log_id) {
            store(&self.db, &meta, data.clone())?;
        }
        // The log behind this snapshot may be purged next: make the snapshot durable first.
        self.db
            .flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_error(e)))?;
        ::metrics::counter!(crate::metrics::names::RAFT_SNAPSHOTS_BUILT).increment(1);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        crate::state::tests::every_command_applied()
    }

    #[test]
    fn a_snapshot_holds_the_whole_state() {
        let state = sample();
        assert_eq!(decode(&encode(&state)).unwrap(), state);
    }

    /// Snapshots written before format 2 (the whole state, users without `updated_ms`,
    /// nodes without the `HF_TOKEN` flag) still install.
    #[test]
    fn format_1_snapshots_still_install() {
        #[derive(Serialize)]
        struct Whole<'a> {
            state: ShapeV1<'a>,
        }
        #[derive(Serialize)]
        struct ShapeV1<'a> {
            settings: &'a crate::state::SystemSettings,
            users: std::collections::BTreeMap<&'a String, crate::state::NewUser>,
            api_keys: std::collections::BTreeMap<&'a String, crate::state::ApiKeyV1>,
            models: std::collections::BTreeMap<&'a String, crate::state::ModelV1>,
            nodes: std::collections::BTreeMap<u64, crate::state::NodeAnnouncement>,
            slots: &'a std::collections::BTreeMap<String, crate::state::Slot>,
            orgs: &'a std::collections::BTreeMap<String, crate::state::Org>,
            audit: &'a std::collections::BTreeMap<u64, crate::state::AuditEntry>,
        }
        let mut state = sample();
        // What format 1 could not say reads as its default.
        for n in state.nodes.values_mut() {
            n.hf_token_in_env = false;
        }
        for u in state.users.values_mut() {
            u.updated_ms = u.created_ms;
        }
        for k in state.api_keys.values_mut() {
            (k.name, k.last_used_ms) = (None, None);
        }
        state.disabled_users.clear();
        state.clock_ms = 0;
        let old = Whole {
            state: ShapeV1 {
                settings: &state.settings,
                users: state
                    .users
                    .iter()
                    .map(|(id, u)| {
                        (
                            id,
                            crate::state::NewUser {
                                id: u.id.clone(),
                                name: u.name.clone(),
                                admin: u.admin,
                                created_ms: u.created_ms,
                                organization_id: u.organization_id.clone(),
                                org_role: u.org_role,
                                hf_token: u.hf_token.clone(),
                            },
                        )
                    })
                    .collect(),
                api_keys: state
                    .api_keys
                    .iter()
                    .map(|(hash, k)| {
                        (
                            hash,
                            crate::state::ApiKeyV1 {
                                id: k.id.clone(),
                                user_id: k.user_id.clone(),
                                created_ms: k.created_ms,
                            },
                        )
                    })
                    .collect(),
                models: state
                    .models
                    .iter()
                    .map(|(id, m)| (id, crate::state::ModelV1::from(m)))
                    .collect(),
                nodes: state
                    .nodes
                    .values()
                    .map(|n| {
                        (
                            n.id,
                            crate::state::NodeAnnouncement {
                                id: n.id,
                                api_addr: n.api_addr.clone(),
                                peer_addr: n.peer_addr.clone(),
                                joined_ms: n.joined_ms,
                                gpus: n.gpus.clone(),
                            },
                        )
                    })
                    .collect(),
                slots: &state.slots,
                orgs: &state.orgs,
                audit: state.audit.entries(),
            },
        };
        // Format 1 predates the trust records.
        let expected = crate::state::State {
            trust: Default::default(),
            keyring: None,
            compactions: 0,
            ..state.clone()
        };
        assert_eq!(decode(&codec::encode(&old)).unwrap(), expected);
    }
}
