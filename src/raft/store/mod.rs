//! Raft storage of one node: the log in segment files, everything else in one sled database.
//! - `segments/`  — the log: entries in append-only segment files, group-committed with
//!   `fdatasync` (its flusher), the vote, committed id and purge point beside them;
//!   `log.rs` adapts it to openraft; `migrate.rs` moves a log sled held once;
//! - `raft_meta`  — this node's id;
//! - `state`      — the replicated state, one record per `StateKey` (`state_machine.rs`);
//! - `state_meta` — last applied id, last membership, the current snapshot (`snapshot.rs`).
//!
//! Durability: appends, votes, truncations and purges are durable before they are
//! acknowledged (the log's flusher). The state machine is written once per applied batch and
//! flushed by sled every second and by `flush.rs` before a snapshot is relied on (a purge
//! follows one): a crash re-applies the entries since its last flush from the log.

// The error type is openraft's `StorageError`, fixed by its traits; boxing it would only add
// conversions at every call site.
#![allow(clippy::result_large_err)]

mod applied;
mod flush;
mod log;
mod migrate;
mod segments;
mod snapshot;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use openraft::{AnyError, BasicNode, CommittedLeaderId, Membership, StorageIOError};
use serde::Serialize;
use tokio::sync::oneshot;

pub use self::applied::StateView;
use self::flush::Flusher;
pub(crate) use self::log::LogStore;
use self::segments::SegmentLog;
pub(crate) use self::state_machine::StateMachine;
use super::types::{LogId, NodeId, SnapshotMeta, StorageError, StoredMembership};
use crate::state::{codec, State};

const NODE_ID: &[u8] = b"node_id";
/// The log's directory, inside the database's (moved and restored with it).
const LOG_DIR: &str = "raft-log";
/// sled writes the state machine to disk this often (a crash re-applies what it had not).
const STATE_FLUSH_EVERY_MS: u64 = 1000;

fn io_error(e: impl std::error::Error + 'static) -> AnyError {
    // A storage failure is shown to operators (`/readyz`): sled's I/O errors read as the OS
    // says them, without sled's wrapping.
    match (&e as &dyn std::any::Any).downcast_ref::<sled::Error>() {
        Some(sled) => AnyError::error(flush::plain_io_error(sled)),
        None => AnyError::new(&e),
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(io_error(e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(io_error(e)).into()
}

/// The log and the sled database with its trees, shared by the log store and the state
/// machine.
#[derive(Clone)]
pub struct Db {
    log: SegmentLog,
    raft_meta: sled::Tree,
    state: sled::Tree,
    state_meta: sled::Tree,
    flusher: Arc<Flusher>,
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db, sled::Error> {
        let db = sled::Config::new()
            .path(dir)
            // Off the write path: nothing acknowledged waits for it.
            .flush_every_ms(Some(STATE_FLUSH_EVERY_MS))
            .open()?;
        let raft_meta = db.open_tree("raft_meta")?;
        Ok(Db {
            log: migrate::open_log(&db, &raft_meta, &dir.join(LOG_DIR))?,
            raft_meta,
            state: db.open_tree("state")?,
            state_meta: db.open_tree("state_meta")?,
            flusher: Arc::new(Flusher::start(db, dir)?),
        })
    }

    /// Make every write made before this call durable: the log's (the committed id
    /// included), then sled's. sled's flush is shared with whatever else is waiting for one
    /// (group commit).
    pub async fn flush(&self) -> Result<(), sled::Error> {
        self.log.sync().await?;
        let (tx, rx) = oneshot::channel();
        self.flusher.request(tx)?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(flush::stopped()),
        }
    }

    /// Remove from disk the log entries a purge left in the first segment file (a purge
    /// drops whole files): after it, nothing before the purge point is stored anywhere.
    pub async fn erase_purged_log(&self) -> Result<(), StorageError> {
        self.log.erase_purged().await.map_err(write_err)
    }

    /// The id this node has in its cluster, once it has one.
    pub fn node_id(&self) -> Result<Option<NodeId>, StorageError> {
        get(&self.raft_meta, NODE_ID)
    }

    pub async fn set_node_id(&self, id: NodeId) -> Result<(), StorageError> {
        put(&self.raft_meta, NODE_ID, &id)?;
        self.flush().await.map_err(write_err)
    }

    /// Make `state` the state of this new database (a restore): applied at log index 1,
    /// with `node_id` the only voter, and kept as the snapshot too, so that the node starts
    /// a one-node cluster holding it and members that join later are sent it. Refused
    /// unless the database is empty.
    pub async fn seed(
        &self,
        state: &State,
        node_id: NodeId,
        peer_addr: &str,
    ) -> Result<(), StorageError> {
        let trees = [&self.raft_meta, &self.state, &self.state_meta];
        if trees.iter().any(|t| !t.is_empty()) || !self.log.is_blank() {
            return Err(write_err(std::io::Error::other(
                "the database is not empty: a state can only be seeded into a new one",
            )));
        }
        let log_id = LogId::new(CommittedLeaderId::new(0, node_id), 1);
        let members = Membership::new(
            vec![BTreeSet::from([node_id])],
            BTreeMap::from([(node_id, BasicNode::new(peer_addr))]),
        );
        let membership = StoredMembership::new(Some(log_id), members);
        let meta = SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: membership.clone(),
            snapshot_id: format!("restored-{}", crate::time::now_ms()),
        };
        snapshot::store(self, &meta, snapshot::encode(state))?;
        let records = state
            .records()
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        // On start openraft purges the (empty) log up to the applied id: the log then begins
        // after it, and a joining member is sent the snapshot.
        StateMachine::open(self.clone())?.persist(&records, false, &Some(log_id), &membership)?;
        self.flush().await.map_err(write_err)
    }

    /// This stopped node's state with every entry it knows committed applied (as a start
    /// would), its committed index, and its last log index: entries after the committed
    /// one may or may not have been committed elsewhere.
    pub async fn committed_state(&self) -> Result<(State, u64, u64), StorageError> {
        use openraft::storage::{RaftLogStorage, RaftStateMachine};
        use openraft::RaftLogReader;
        let (mut log, mut sm) = self.stores()?;
        let (applied, _) = sm.applied_state().await?;
        let committed = log.read_committed().await?.max(applied);
        let from = applied.map_or(0, |l| l.index + 1);
        if let Some(to) = committed.filter(|c| c.index >= from) {
            let entries = log.try_get_log_entries(from..=to.index).await?;
            sm.apply(entries).await?;
        }
        let last = log.get_log_state().await?.last_log_id;
        let index = |l: Option<LogId>| l.map_or(0, |l| l.index);
        Ok((sm.view().read(|s| s.clone()), index(committed), index(last)))
    }

    /// Opens the log store and the state machine over this database.
    pub(crate) fn stores(&self) -> Result<(LogStore, StateMachine), StorageError> {
        Ok((
            LogStore::new(self.log.clone()),
            StateMachine::open(self.clone())?,
        ))
    }
}

fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match tree.get(key).map_err(read_err)? {
        Some(bytes) => Ok(Some(codec::decode(&bytes).map_err(read_err)?)),
        None => Ok(None),
    }
}

fn put<T: Serialize>(tree: &sled::Tree, key: &[u8], value: &T) -> Result<(), StorageError> {
    tree.insert(key, codec::encode(value)).map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::raft::types::TypeConfig;

    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path()).expect("open sled");
            let (log, sm) = db.stores()?;
            Ok((dir, log, sm))
        }
    }

    /// A seeded database reads as a state machine that applied the state at index 1 with
    /// one voter, and its snapshot (what joiners are sent) holds the same state; a second
    /// seed is refused.
    #[tokio::test]
    async fn a_seeded_store_holds_the_state_as_applied_and_as_snapshot() -> Result<(), StorageError>
    {
        use openraft::storage::RaftStateMachine;
        let mut state = State::default();
        for p in crate::state::tests::every_command() {
            let _ = state.apply(&p);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open sled");
        db.seed(&state, 7, "127.0.0.1:9000").await?;
        let (_, mut sm) = db.stores()?;
        let (applied, membership) = sm.applied_state().await?;
        assert_eq!(applied.map(|l| l.index), Some(1));
        let voters: Vec<NodeId> = membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![7]);
        assert_eq!(sm.view().read(|s| s.clone()), state);
        let snapshot = sm.get_current_snapshot().await?.expect("a snapshot");
        assert_eq!(snapshot.meta.last_log_id, applied);
        assert_eq!(
            snapshot::decode(snapshot.snapshot.get_ref()).unwrap(),
            state
        );
        assert!(db.seed(&state, 7, "127.0.0.1:9000").await.is_err());
        Ok(())
    }

    #[test]
    fn openraft_storage_conformance_suite() -> Result<(), StorageError> {
        Suite::test_all(SledBuilder)?;
        Ok(())
    }
}
