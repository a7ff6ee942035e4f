//! The Raft log behind openraft's `RaftLogStorage`: a thin adapter over the segment files
//! (`segments/`), which hold entries as opaque bytes by index and the vote, committed id
//! and purge point as opaque bytes. This file only encodes them and maps the calls.

use std::fmt::Debug;
use std::ops::RangeBounds;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, EntryPayload, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote,
};

use super::segments::SegmentLog;
use crate::raft::types::{Batch, Entry, LogId, NodeId, StorageError, TypeConfig, TypeConfigV1};
use crate::state::codec;

/// Log entries are stored as this format byte, then bincode. Format 1 (the
/// [`codec`] default) carried one proposal per entry; format 2 carries a [`Batch`].
const ENTRY_FORMAT: u8 = 2;

pub(super) fn encode_entry(entry: &Entry) -> Vec<u8> {
    codec::encode_as(ENTRY_FORMAT, entry)
}

pub(super) fn decode_entry(bytes: &[u8]) -> Result<Entry, codec::CodecError> {
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

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: std::io::Error) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, StorageError> {
    bytes
        .map(|b| codec::decode(&b).map_err(read_err))
        .transpose()
}

/// The Raft log. Cloned handles share the segment files and their flusher.
#[derive(Clone)]
pub struct LogStore {
    log: SegmentLog,
}

impl LogStore {
    pub(super) fn new(log: SegmentLog) -> LogStore {
        LogStore { log }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let stored = self.log.read(range).map_err(read_err)?;
        stored
            .iter()
            .map(|bytes| decode_entry(bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = decode(self.log.meta().purged.map(|(_, id)| id))?;
        let last_log_id = match self.log.last_entry().map_err(read_err)? {
            Some(bytes) => Some(decode_entry(&bytes).map_err(read_err)?.log_id),
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
        self.log
            .save_vote(codec::encode(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        decode(self.log.meta().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Written with the next meta write: losing it only means re-applying from the last
        // applied id.
        self.log.save_committed(codec::encode(&committed));
        crate::raft::metrics::note_committed(committed.map_or(0, |c| c.index));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(decode::<Option<LogId>>(self.log.meta().committed)?.flatten())
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
        let stored = entries
            .into_iter()
            .map(|entry| (entry.log_id.index, encode_entry(&entry)));
        // Acknowledged by the flusher once written and `fdatasync`-ed.
        self.log
            .append(
                stored,
                Box::new(move |result| callback.log_io_completed(result)),
            )
            .map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.log.truncate(log_id.index).await.map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.log
            .purge(log_id.index, codec::encode(&log_id))
            .await
            .map_err(write_err)
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
