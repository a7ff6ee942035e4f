//! The state machine: applies committed entries to the replicated [`State`] in memory and,
//! one record per object, to the `state` tree; the applied log id and membership go to
//! `state_meta` in the same transaction as the records an apply touched.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, Snapshot, StorageIOError};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::watch;

use super::applied::{Applied, StateView};
use super::snapshot::{self, SnapshotBuilder};
use super::{get, io_error, read_err, Db};
use crate::raft::types::{
    Batch, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::state::{codec, Outcome, PlacementInputs, State, StateKey};

const LAST_APPLIED: &[u8] = b"last_applied";
const LAST_MEMBERSHIP: &[u8] = b"last_membership";

pub struct StateMachine {
    db: Db,
    applied: Arc<RwLock<Applied>>,
    changes: Arc<watch::Sender<u64>>,
    /// What the scheduler's plan read as of the last apply, to tell which applies change it.
    placement_inputs: PlacementInputs,
    /// The placement revision, grown whenever `placement_inputs` changed.
    placement: Arc<watch::Sender<u64>>,
}

impl StateMachine {
    pub(super) fn open(db: Db) -> Result<StateMachine, StorageError> {
        let records: Vec<sled::IVec> = db
            .state
            .iter()
            .values()
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        let state = State::from_records(records.iter().map(|r| r.as_ref())).map_err(read_err)?;
        // Stored as an `Option<LogId>` (see `persist`): decode it as one.
        let last_applied: Option<LogId> =
            get::<Option<LogId>>(&db.state_meta, LAST_APPLIED)?.flatten();
        let membership: StoredMembership =
            get(&db.state_meta, LAST_MEMBERSHIP)?.unwrap_or_default();
        let (tx, _) = watch::channel(last_applied.map(|l| l.index).unwrap_or(0));
        let placement_inputs = PlacementInputs::of(&state);
        Ok(StateMachine {
            db,
            applied: Arc::new(RwLock::new(Applied {
                state,
                last_applied,
                membership,
            })),
            changes: Arc::new(tx),
            placement_inputs,
            placement: Arc::new(watch::channel(0).0),
        })
    }

    pub fn view(&self) -> StateView {
        StateView::new(
            self.applied.clone(),
            self.changes.subscribe(),
            self.placement.subscribe(),
        )
    }

    /// Persist the touched records and the applied id/membership in one sled transaction.
    pub(super) fn persist(
        &self,
        records: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        clear_first: bool,
        last_applied: &Option<LogId>,
        membership: &StoredMembership,
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        if clear_first {
            for key in self.db.state.iter().keys() {
                let key = key.map_err(read_err)?;
                if !records.contains_key(key.as_ref()) {
                    batch.remove(key);
                }
            }
        }
        for (key, value) in records {
            match value {
                Some(v) => batch.insert(key.as_slice(), v.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        let applied_bytes = codec::encode(last_applied);
        let membership_bytes = codec::encode(membership);
        (&self.db.state, &self.db.state_meta)
            .transaction(|(state, meta)| {
                state.apply_batch(&batch)?;
                meta.insert(LAST_APPLIED, applied_bytes.as_slice())?;
                meta.insert(LAST_MEMBERSHIP, membership_bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| {
                let cause = match e {
                    TransactionError::Storage(e) => io_error(e),
                    e => io_error(std::io::Error::other(format!("{e:?}"))),
                };
                StorageIOError::write_state_machine(cause).into()
            })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.applied.read().expect("state lock poisoned");
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut records = BTreeMap::new();
        let (last_applied, placement_changed) = {
            let mut guard = self.applied.write().expect("state lock poisoned");
            let applied = &mut *guard;
            let mut touched: Vec<StateKey> = Vec::new();
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => outcomes.push(Vec::new()),
                    EntryPayload::Normal(Batch(proposals)) => {
                        let mut answers = Vec::with_capacity(proposals.len());
                        for proposal in &proposals {
                            let (outcome, keys) = applied.state.apply(proposal);
                            touched.extend(keys);
                            answers.push(outcome);
                        }
                        outcomes.push(answers);
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        outcomes.push(Vec::new());
                    }
                }
            }
            let placement_changed = self.placement_inputs.update(&applied.state, &touched);
            for key in touched {
                records.insert(key.to_bytes(), applied.state.encode_record(&key));
            }
            // Written before the lock is released: a snapshot (built under this lock) must
            // never be ahead of what sled holds, or a purge could leave a gap on restart.
            self.persist(&records, false, &applied.last_applied, &applied.membership)?;
            (applied.last_applied, placement_changed)
        };
        if let Some(id) = last_applied {
            self.changes.send_replace(id.index);
        }
        if placement_changed {
            self.placement.send_modify(|revision| *revision += 1);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder::new(self.db.clone(), self.applied.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = snapshot::decode(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_error(e)))?;
        let records: BTreeMap<Vec<u8>, Option<Vec<u8>>> = state
            .records()
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        self.persist(&records, true, &meta.last_log_id, &meta.last_membership)?;
        snapshot::store(&self.db, meta, data)?;
        self.db.flush().await.map_err(super::write_err)?;
        self.placement_inputs = PlacementInputs::of(&state);
        {
            let mut a = self.applied.write().expect("state lock poisoned");
            a.state = state;
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
        }
        if let Some(id) = meta.last_log_id {
            self.changes.send_replace(id.index);
        }
        self.placement.send_modify(|revision| *revision += 1);
        ::metrics::counter!(crate::metrics::names::RAFT_SNAPSHOTS_INSTALLED).increment(1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        snapshot::current(&self.db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::register;
    use crate::state::Proposal;

    fn log_id(index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    fn normal(index: u64, proposals: Vec<Proposal>) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Batch(proposals)),
        }
    }

    /// A batch is applied in order and answers one outcome per proposal; other entries
    /// answer none.
    #[tokio::test]
    async fn batches_answer_each_proposal() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(Db::open(dir.path()).expect("open sled"))?;
        let answers = sm
            .apply([
                Entry {
                    log_id: log_id(1),
                    payload: EntryPayload::Blank,
                },
                normal(2, vec![register(7), register(8)]),
            ])
            .await?;
        assert_eq!(answers.len(), 2);
        assert!(answers[0].is_empty());
        assert_eq!(answers[1].len(), 2);
        assert!(answers[1].iter().all(|a| a.is_ok()), "{answers:?}");
        sm.view().read(|s| {
            assert!(s.nodes.contains_key(&7) && s.nodes.contains_key(&8));
        });
        assert_eq!(sm.view().applied_index(), 2);
        Ok(())
    }

    /// A new user plans nothing; a new node may: only the second ticks the placement watch.
    #[tokio::test]
    async fn only_what_placement_reads_ticks_the_placement_watch() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(Db::open(dir.path()).expect("open sled"))?;
        let placement = sm.view().subscribe_placement();
        let bootstrap = crate::state::tests::every_command().remove(0);
        sm.apply([normal(1, vec![bootstrap])]).await?;
        assert!(!placement.has_changed().expect("open"), "a user came");
        sm.apply([normal(2, vec![register(7)])]).await?;
        assert!(placement.has_changed().expect("open"), "a node came");
        Ok(())
    }

    /// The database at `dir` once the last handle's files are released: sled's own
    /// background threads may hold its lock a moment after the handles are dropped.
    async fn reopen(dir: &std::path::Path) -> Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Db::open(dir) {
                Ok(db) => return db,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "sled still locked; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot reopen sled at {}: {e}", dir.display()),
            }
        }
    }

    /// Every command, applied one entry at a time, then the store is reopened: what sled
    /// holds (only the records each apply said it touched) is the state that was in memory,
    /// and the applied id survives, so a restart resumes exactly where it stopped.
    #[tokio::test]
    async fn a_reopened_store_holds_the_applied_state() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let proposals = crate::state::tests::every_command();
        let last = proposals.len() as u64;
        let in_memory = {
            let db = Db::open(dir.path()).expect("open sled");
            let mut sm = StateMachine::open(db.clone())?;
            for (i, proposal) in proposals.into_iter().enumerate() {
                let answers = sm.apply([normal(i as u64 + 1, vec![proposal])]).await?;
                assert!(answers[0][0].is_ok(), "entry {}: {answers:?}", i + 1);
            }
            db.flush().await.map_err(super::super::write_err)?;
            sm.view().read(State::clone)
        };
        let mut reopened = StateMachine::open(reopen(dir.path()).await)?;
        assert_eq!(reopened.view().read(State::clone), in_memory);
        assert_eq!(reopened.applied_state().await?.0, Some(log_id(last)));
        Ok(())
    }
}
