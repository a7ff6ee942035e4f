//! Raft storage in one sled database per node.
//!
//! Trees:
//! - `log`        — log entries by big-endian index;
//! - `raft_meta`  — vote, committed id, last purged id, this node's id;
//! - `state`      — the replicated state, one record per [`StateKey`];
//! - `state_meta` — last applied id, last membership, the current snapshot.
//!
//! Durability: appends, votes and truncations are flushed before they are acknowledged.
//! Flushes are group-committed: one flusher thread serves every flush request (appends,
//! votes, truncations, purges, snapshots) that arrived while the previous flush ran with a
//! single flush. sled flushes the whole database at once, so a flush also makes every
//! earlier state write durable. A flush is sled's own followed by `fdatasync` of its files
//! (see [`DiskSync`]): sled alone does not reach the disk's platter.

// The error type is openraft's `StorageError`, fixed by its traits; boxing it would only add
// conversions at every call site.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, EntryPayload, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::{oneshot, watch};

use super::types::{
    Batch, Entry, LogId, NodeId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
    TypeConfigV1,
};
use crate::state::{codec, Outcome, State, StateKey};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
const NODE_ID: &[u8] = b"node_id";
const LAST_APPLIED: &[u8] = b"last_applied";
const LAST_MEMBERSHIP: &[u8] = b"last_membership";
const SNAPSHOT: &[u8] = b"snapshot";

fn io_error(e: impl std::error::Error + 'static) -> AnyError {
    AnyError::new(&e)
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(io_error(e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(io_error(e)).into()
}

/// The sled database and its trees, shared by the log store and the state machine.
#[derive(Clone)]
pub struct Db {
    log: sled::Tree,
    raft_meta: sled::Tree,
    state: sled::Tree,
    state_meta: sled::Tree,
    flusher: Arc<Flusher>,
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db, sled::Error> {
        let db = sled::Config::new()
            .path(dir)
            // Flushes are explicit: we decide when something must be durable.
            .flush_every_ms(None)
            .open()?;
        let disk = DiskSync::open(dir).map_err(sled::Error::Io)?;
        Ok(Db {
            log: db.open_tree("log")?,
            raft_meta: db.open_tree("raft_meta")?,
            state: db.open_tree("state")?,
            state_meta: db.open_tree("state_meta")?,
            flusher: Arc::new(Flusher::start(db, disk)?),
        })
    }

    /// Make every write made before this call durable. Shares the flush with whatever else
    /// is waiting for one (group commit).
    pub async fn flush(&self) -> Result<(), sled::Error> {
        let (tx, rx) = oneshot::channel();
        self.flusher.request(FlushWaiter::Notify(tx))?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(flusher_stopped()),
        }
    }

    /// The id this node has in its cluster, once it has one.
    pub fn node_id(&self) -> Result<Option<NodeId>, StorageError> {
        get(&self.raft_meta, NODE_ID)
    }

    pub async fn set_node_id(&self, id: NodeId) -> Result<(), StorageError> {
        put(&self.raft_meta, NODE_ID, &id)?;
        self.flush().await.map_err(write_err)
    }

    /// Opens the log store and the state machine over this database. `applied` receives the
    /// applied log index after each apply, for anything that waits on or reacts to state.
    pub fn stores(&self) -> Result<(LogStore, StateMachine), StorageError> {
        Ok((
            LogStore::new(self.clone()),
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

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Log entries are stored as this format byte, then bincode. Format 1 (the
/// [`codec`] default) carried one proposal per entry; format 2 carries a [`Batch`].
const ENTRY_FORMAT: u8 = 2;

fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = vec![ENTRY_FORMAT];
    bincode::serde::encode_into_std_write(entry, &mut out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    out
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, codec::CodecError> {
    match bytes.first() {
        Some(&ENTRY_FORMAT) => {
            let (entry, _) =
                bincode::serde::decode_from_slice(&bytes[1..], bincode::config::standard())
                    .map_err(|e| codec::CodecError::Decode(e.to_string()))?;
            Ok(entry)
        }
        // Written before entries carried batches: a batch of one.
        _ => {
            let old: openraft::Entry<TypeConfigV1> = codec::decode(bytes)?;
            Ok(Entry {
                log_id: old.log_id,
                payload: match old.payload {
                    EntryPayload::Blank => EntryPayload::Blank,
                    EntryPayload::Normal(proposal) => EntryPayload::Normal(Batch(vec![proposal])),
                    EntryPayload::Membership(m) => EntryPayload::Membership(m),
                },
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Log store

/// The Raft log. Cloned handles share the database and its flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
}

impl LogStore {
    fn new(db: Db) -> LogStore {
        LogStore { db }
    }
}

/// A flush this slow is logged as a warning.
const SLOW_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Someone waiting for the next flush.
enum FlushWaiter {
    /// An append, acknowledged to openraft once durable.
    Log(LogFlushed<TypeConfig>),
    /// Any other caller of [`Db::flush`].
    Notify(oneshot::Sender<Result<(), sled::Error>>),
}

fn flusher_stopped() -> sled::Error {
    sled::Error::Io(std::io::Error::other("the storage flusher has stopped"))
}

/// Group commit: one thread runs every flush. Whoever asks for a flush while one is running
/// is served by the next one, so a burst of appends (and votes, truncations, snapshots)
/// costs one `fsync`. The flush is sled's synchronous one, on this thread: its async
/// variant hands each flush to sled's thread pool, whose `notify_all` wakes every pool
/// thread for every flush.
struct Flusher {
    queue: std::sync::Mutex<Option<std::sync::mpsc::Sender<FlushWaiter>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(db: sled::Db, mut disk: DiskSync) -> Result<Flusher, sled::Error> {
        let (tx, rx) = std::sync::mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("helix-flush".into())
            .spawn(move || {
                let mut batch = Vec::new();
                // Ends when every sender is gone (the last `Db` handle dropped).
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    batch.extend(rx.try_iter());
                    let started = std::time::Instant::now();
                    let result = db
                        .flush()
                        .and_then(|_| disk.sync().map_err(sled::Error::Io));
                    // openraft's core waits for this flush before it does anything else
                    // (replication, heartbeats): a slow disk costs leadership.
                    let took = started.elapsed();
                    if took >= SLOW_FLUSH {
                        tracing::warn!(
                            took_ms = took.as_millis() as u64,
                            waiting = batch.len(),
                            "slow disk: a flush took long (Raft waits for it and a leader \
                             sends no heartbeat meanwhile)"
                        );
                    }
                    for waiter in batch.drain(..) {
                        let result = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(sled::Error::Io(std::io::Error::other(e.to_string()))),
                        };
                        match waiter {
                            FlushWaiter::Log(callback) => {
                                callback.log_io_completed(result.map_err(std::io::Error::other))
                            }
                            FlushWaiter::Notify(tx) => {
                                let _ = tx.send(result);
                            }
                        }
                    }
                }
            })
            .map_err(sled::Error::Io)?;
        Ok(Flusher {
            queue: std::sync::Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    fn request(&self, waiter: FlushWaiter) -> Result<(), sled::Error> {
        let queue = self.queue.lock().expect("flusher lock poisoned");
        match queue.as_ref() {
            Some(tx) => tx.send(waiter).map_err(|_| flusher_stopped()),
            None => Err(flusher_stopped()),
        }
    }
}

/// sled 0.34's flush writes its log file with `sync_file_range`, which waits for the write
/// to reach the device but does not flush the device's volatile write cache, and it writes
/// values too big for a log segment to files under `blobs/` without syncing them at all. A
/// power cut could thus lose a write sled reported flushed. After each of sled's flushes this
/// calls `fdatasync` on every blob file not synced yet (and on the directory that names
/// them) and then on the log file, as etcd does for its WAL.
struct DiskSync {
    log_file: std::fs::File,
    blobs_dir: PathBuf,
    /// Blob files already synced: sled never rewrites one, it writes a new one.
    synced_blobs: HashSet<OsString>,
}

impl DiskSync {
    fn open(dir: &Path) -> std::io::Result<DiskSync> {
        let log_file = std::fs::File::open(dir.join("db"))?;
        // The files sled just created are named in `dir` and in its parent.
        for d in [Some(dir), dir.parent()].into_iter().flatten() {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(DiskSync {
            log_file,
            blobs_dir: dir.join("blobs"),
            synced_blobs: HashSet::new(),
        })
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let mut present = HashSet::new();
        let mut new_blob = false;
        for entry in std::fs::read_dir(&self.blobs_dir)? {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match std::fs::File::open(self.blobs_dir.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // Replaced and removed by sled since it was listed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new_blob = true;
            }
            present.insert(name);
        }
        if new_blob {
            std::fs::File::open(&self.blobs_dir)?.sync_all()?;
        }
        self.synced_blobs = present;
        self.log_file.sync_data()
    }
}

impl Drop for Flusher {
    /// The last handle is gone: let the thread finish the flushes asked for, and end.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.db
            .log
            .range::<[u8; 8], _>((start, end))
            .map(|item| {
                let (_, bytes) = item.map_err(read_err)?;
                decode_entry(&bytes).map_err(read_err)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = get(&self.db.raft_meta, LAST_PURGED)?;
        let last_log_id = match self.db.log.last().map_err(read_err)? {
            Some((_, bytes)) => Some(decode_entry(&bytes).map_err(read_err)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        put(&self.db.raft_meta, VOTE, vote)?;
        self.db
            .flush()
            .await
            .map_err(|e| StorageIOError::write_vote(io_error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        get(&self.db.raft_meta, VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: losing it only means re-applying from the last applied id.
        put(&self.db.raft_meta, COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(get::<Option<LogId>>(&self.db.raft_meta, COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&index_key(entry.log_id.index), encode_entry(&entry));
        }
        self.db
            .log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        // Acknowledged by the flusher once durable.
        self.db
            .flusher
            .request(FlushWaiter::Log(callback))
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self.db.log.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(read_err)?);
        }
        self.db.log.apply_batch(batch).map_err(write_err)?;
        self.db.flush().await.map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a hole.
        put(&self.db.raft_meta, LAST_PURGED, &log_id)?;
        let mut batch = sled::Batch::default();
        for key in self.db.log.range(..=index_key(log_id.index)).keys() {
            batch.remove(key.map_err(read_err)?);
        }
        self.db.log.apply_batch(batch).map_err(write_err)?;
        self.db.flush().await.map_err(write_err)
    }
}

// ---------------------------------------------------------------------------------------------
// State machine

/// What readers see: the state and the log id it reflects, changed together under one lock.
#[derive(Debug, Default)]
pub struct Applied {
    pub state: State,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Shared read access to the applied state, plus a watch that ticks on every apply.
#[derive(Clone)]
pub struct StateView {
    applied: Arc<RwLock<Applied>>,
    changes: watch::Receiver<u64>,
}

impl StateView {
    pub fn read<R>(&self, f: impl FnOnce(&Applied) -> R) -> R {
        f(&self.applied.read().expect("state lock poisoned"))
    }

    /// A receiver that sees the applied index after each apply or snapshot install.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

pub struct StateMachine {
    db: Db,
    applied: Arc<RwLock<Applied>>,
    changes: Arc<watch::Sender<u64>>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The snapshot body: the state and the id it was taken at.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    state: State,
}

impl StateMachine {
    fn open(db: Db) -> Result<StateMachine, StorageError> {
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
        Ok(StateMachine {
            db,
            applied: Arc::new(RwLock::new(Applied {
                state,
                last_applied,
                membership,
            })),
            changes: Arc::new(tx),
        })
    }

    pub fn view(&self) -> StateView {
        StateView {
            applied: self.applied.clone(),
            changes: self.changes.subscribe(),
        }
    }

    /// Persist the touched records and the applied id/membership in one sled transaction.
    fn persist(
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
                StorageIOError::write_state_machine(io_error(std::io::Error::other(format!(
                    "{e:?}"
                ))))
                .into()
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
        let last_applied = {
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
            for key in touched {
                records.insert(key.to_bytes(), applied.state.encode_record(&key));
            }
            // Written before the lock is released: a snapshot (built under this lock) must
            // never be ahead of what sled holds, or a purge could leave a gap on restart.
            self.persist(&records, false, &applied.last_applied, &applied.membership)?;
            applied.last_applied
        };
        if let Some(id) = last_applied {
            self.changes.send_replace(id.index);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            applied: self.applied.clone(),
        }
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
        let body: SnapshotBody = codec::decode(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_error(e)))?;
        let records: BTreeMap<Vec<u8>, Option<Vec<u8>>> = body
            .state
            .all_keys()
            .iter()
            .map(|k| (k.to_bytes(), body.state.encode_record(k)))
            .collect();
        self.persist(&records, true, &meta.last_log_id, &meta.last_membership)?;
        put(
            &self.db.state_meta,
            SNAPSHOT,
            &StoredSnapshot {
                meta: meta.clone(),
                data,
            },
        )?;
        self.db.flush().await.map_err(write_err)?;
        {
            let mut a = self.applied.write().expect("state lock poisoned");
            a.state = body.state;
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
        }
        if let Some(id) = meta.last_log_id {
            self.changes.send_replace(id.index);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored: Option<StoredSnapshot> = get(&self.db.state_meta, SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

pub struct SnapshotBuilder {
    db: Db,
    applied: Arc<RwLock<Applied>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // A consistent view: state, applied id and membership read under one lock.
        let (data, last_log_id, last_membership) = {
            let a = self.applied.read().expect("state lock poisoned");
            (
                codec::encode(&SnapshotBody {
                    state: a.state.clone(),
                }),
                a.last_applied,
                a.membership.clone(),
            )
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
            put(
                &self.db.state_meta,
                SNAPSHOT,
                &StoredSnapshot {
                    meta: meta.clone(),
                    data: data.clone(),
                },
            )?;
        }
        // The log behind this snapshot may be purged next: make the snapshot durable first.
        self.db
            .flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), io_error(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;

    struct SledBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path()).expect("open sled");
            let (log, sm) = db.stores()?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_conformance_suite() -> Result<(), StorageError> {
        Suite::test_all(SledBuilder)?;
        Ok(())
    }

    fn register(id: u64) -> crate::state::Proposal {
        crate::state::Proposal {
            actor: None,
            at_ms: id as i64,
            command: crate::state::Command::RegisterNode(crate::state::NodeRecord {
                id,
                api_addr: format!("127.0.0.{id}:1"),
                peer_addr: format!("127.0.0.{id}:2"),
                joined_ms: id as i64,
                gpus: Vec::new(),
            }),
        }
    }

    fn log_id(index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    /// A batch is applied in order and answers one outcome per proposal; other entries
    /// answer none.
    #[tokio::test]
    async fn batches_answer_each_proposal() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open sled");
        let mut sm = StateMachine::open(db)?;
        let answers = sm
            .apply([
                Entry {
                    log_id: log_id(1),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(2),
                    payload: EntryPayload::Normal(Batch(vec![register(7), register(8)])),
                },
            ])
            .await?;
        assert_eq!(answers.len(), 2);
        assert!(answers[0].is_empty());
        assert_eq!(answers[1].len(), 2);
        assert!(answers[1].iter().all(|a| a.is_ok()), "{answers:?}");
        let view = sm.view();
        view.read(|a| {
            assert!(a.state.nodes.contains_key(&7) && a.state.nodes.contains_key(&8));
            assert_eq!(a.last_applied, Some(log_id(2)));
        });
        Ok(())
    }

    /// Entries written before entries carried batches (format 1) read as batches of one.
    #[test]
    fn format_1_entries_read_as_batches_of_one() {
        let old = openraft::Entry::<TypeConfigV1> {
            log_id: log_id(5),
            payload: EntryPayload::Normal(register(3)),
        };
        let entry = decode_entry(&codec::encode(&old)).expect("decode format 1");
        assert_eq!(entry.log_id, log_id(5));
        assert!(
            matches!(&entry.payload, EntryPayload::Normal(Batch(p)) if *p == vec![register(3)])
        );

        let new = Entry {
            log_id: log_id(6),
            payload: EntryPayload::Normal(Batch(vec![register(1), register(2)])),
        };
        let bytes = encode_entry(&new);
        assert_eq!(bytes[0], ENTRY_FORMAT);
        let back = decode_entry(&bytes).expect("decode format 2");
        assert_eq!(back.log_id, log_id(6));
        assert!(
            matches!(&back.payload, EntryPayload::Normal(Batch(p)) if *p == vec![register(1), register(2)])
        );
    }

    /// A restart must resume from the applied id it persisted: openraft re-applies only the
    /// entries after it, and those before it may already be purged behind a snapshot.
    #[tokio::test]
    async fn applied_id_survives_a_reopen() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_id = LogId::new(openraft::CommittedLeaderId::new(3, 2), 4242);
        {
            let db = Db::open(dir.path()).expect("open sled");
            let mut sm = StateMachine::open(db.clone())?;
            sm.apply([Entry {
                log_id,
                payload: EntryPayload::Blank,
            }])
            .await?;
            db.flush().await.map_err(write_err)?;
        }
        let db = Db::open(dir.path()).expect("reopen sled");
        let mut sm = StateMachine::open(db)?;
        assert_eq!(sm.applied_state().await?.0, Some(log_id));
        Ok(())
    }

    /// Values too big for a log segment live in sled's `blobs/`, which sled never syncs:
    /// every flush syncs the new ones.
    #[test]
    fn flushes_sync_new_blob_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("open sled");
        let mut disk = DiskSync::open(dir.path()).expect("open sled's files");
        disk.sync().expect("sync");
        assert!(disk.synced_blobs.is_empty());

        db.insert("big", vec![7u8; 4 << 20]).expect("insert");
        db.flush().expect("flush");
        disk.sync().expect("sync");
        assert_eq!(disk.synced_blobs.len(), 1, "the blob file was synced");

        db.insert("big", vec![8u8; 4 << 20]).expect("replace");
        db.flush().expect("flush");
        disk.sync().expect("sync");
        let on_disk = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert_eq!(
            disk.synced_blobs.len(),
            on_disk,
            "only files still there are tracked"
        );
    }
}
