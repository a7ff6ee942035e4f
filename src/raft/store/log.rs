//! The Raft log: entries by big-endian index in the `log` tree, and the vote, committed id
//! and purge point in `raft_meta`.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{EntryPayload, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};

use super::flush::FlushWaiter;
use super::{get, io_error, put, read_err, write_err, Db};
use crate::raft::types::{Batch, Entry, LogId, NodeId, StorageError, TypeConfig, TypeConfigV1};
use crate::state::codec;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Log entries are stored as this format byte, then bincode. Format 1 (the
/// [`codec`] default) carried one proposal per entry; format 2 carries a [`Batch`].
const ENTRY_FORMAT: u8 = 2;

fn encode_entry(entry: &Entry) -> Vec<u8> {
    codec::encode_as(ENTRY_FORMAT, entry)
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, codec::CodecError> {
    match codec::version_of(bytes)? {
        ENTRY_FORMAT => codec::decode_as(ENTRY_FORMAT, bytes),
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

/// The Raft log. Cloned handles share the database and its flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
}

impl LogStore {
    pub(super) fn new(db: Db) -> LogStore {
        LogStore { db }
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
        put(&self.db.raft_meta, COMMITTED, &committed)?;
        crate::raft::metrics::note_committed(committed.map_or(0, |c| c.index));
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::register;

    fn log_id(index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
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
}
