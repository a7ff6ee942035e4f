//! Data dirs written before the log had segment files kept it in sled: entries in the `log`
//! tree by big-endian index, the vote, committed id and purge point in `raft_meta`. The first
//! start moves them into segments (the entries' stored bytes unchanged), then removes them
//! from sled.

use std::io;
use std::path::Path;

use futures::executor::block_on;

use super::segments::SegmentLog;
use crate::raft::types::LogId;
use crate::state::codec;

const OLD_LOG_TREE: &str = "log";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The segment log in `dir`, made from sled's log once if sled still holds one.
pub(super) fn open_log(
    db: &sled::Db,
    raft_meta: &sled::Tree,
    dir: &Path,
) -> Result<SegmentLog, sled::Error> {
    let had_tree = db.tree_names().iter().any(|n| n == OLD_LOG_TREE.as_bytes());
    let old_meta = [VOTE, COMMITTED, LAST_PURGED]
        .iter()
        .map(|key| raft_meta.get(key))
        .collect::<Result<Vec<_>, _>>()?;
    let holds_old = had_tree || old_meta.iter().any(Option::is_some);
    if dir.exists() || !holds_old {
        let log = SegmentLog::open(dir)?;
        // A move that stopped after the segments were in place: only the removal is left.
        if holds_old {
            remove_old(db, raft_meta)?;
        }
        return Ok(log);
    }
    let staging = dir.with_extension("import");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let old_log = db.open_tree(OLD_LOG_TREE)?;
    let moved = import(&old_log, &old_meta, &staging).map_err(sled::Error::Io)?;
    // The move is one rename: a crash before it starts over, after it only removes.
    std::fs::rename(&staging, dir)?;
    std::fs::File::open(dir.parent().expect("the log lies in the database dir"))?.sync_all()?;
    remove_old(db, raft_meta)?;
    tracing::info!(
        entries = moved,
        "moved the Raft log from sled into segment files ({})",
        dir.display()
    );
    Ok(SegmentLog::open(dir)?)
}

/// Write sled's log into a new segment log at `staging`, durably; the number of entries.
fn import(
    old_log: &sled::Tree,
    old_meta: &[Option<sled::IVec>],
    staging: &Path,
) -> io::Result<u64> {
    let log = SegmentLog::open(staging)?;
    let [vote, committed, purged] = old_meta else {
        unreachable!("three keys were read");
    };
    let purged_index = match purged {
        Some(bytes) => {
            let id: LogId = codec::decode(bytes).map_err(io::Error::other)?;
            block_on(log.purge(id.index, bytes.to_vec()))?;
            Some(id.index)
        }
        None => None,
    };
    let mut moved = 0;
    for item in old_log.iter() {
        let (key, value) = item.map_err(io::Error::other)?;
        let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
            io::Error::other(format!("a key of sled's log is not an index: {key:?}"))
        })?);
        // Left by a purge a crash interrupted.
        if purged_index.is_some_and(|p| index <= p) {
            continue;
        }
        log.append([(index, value.to_vec())], Box::new(|_| {}))?;
        moved += 1;
    }
    if let Some(vote) = vote {
        block_on(log.save_vote(vote.to_vec()))?;
    }
    if let Some(committed) = committed {
        log.save_committed(committed.to_vec());
    }
    // Every append is durable once this returns (a failed one fails it).
    block_on(log.sync())?;
    Ok(moved)
}

fn remove_old(db: &sled::Db, raft_meta: &sled::Tree) -> Result<(), sled::Error> {
    db.drop_tree(OLD_LOG_TREE)?;
    for key in [VOTE, COMMITTED, LAST_PURGED] {
        raft_meta.remove(key)?;
    }
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, Vote};

    use super::super::Db;
    use super::*;
    use crate::raft::types::{Batch, Entry, TypeConfigV1};
    use crate::state::tests::register;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    /// A database as the sled log wrote it: entries 5..=9 after a purge at 4 (and entry 4
    /// a purge left behind), the first of them in format 1, a vote and a committed id.
    fn write_old_database(dir: &Path) {
        let db = sled::open(dir).unwrap();
        let log = db.open_tree(OLD_LOG_TREE).unwrap();
        let meta = db.open_tree("raft_meta").unwrap();
        let old = openraft::Entry::<TypeConfigV1> {
            log_id: log_id(5),
            payload: EntryPayload::Normal(register(5)),
        };
        log.insert(4u64.to_be_bytes(), codec::encode(&old)).unwrap();
        log.insert(5u64.to_be_bytes(), codec::encode(&old)).unwrap();
        for index in 6..=9 {
            let entry = Entry {
                log_id: log_id(index),
                payload: EntryPayload::Normal(Batch(vec![register(index)])),
            };
            log.insert(index.to_be_bytes(), super::super::log::encode_entry(&entry))
                .unwrap();
        }
        meta.insert(VOTE, codec::encode(&Vote::new_committed(3, 1u64)))
            .unwrap();
        meta.insert(COMMITTED, codec::encode(&Some(log_id(8))))
            .unwrap();
        meta.insert(LAST_PURGED, codec::encode(&log_id(4))).unwrap();
        meta.insert(b"node_id", codec::encode(&1u64)).unwrap();
        db.flush().unwrap();
    }

    /// sled's background threads may hold its lock a moment after the last handle is gone.
    fn reopen(dir: &Path) -> Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Db::open(dir) {
                Ok(db) => return db,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "sled still locked; trying again");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot reopen {}: {e}", dir.display()),
            }
        }
    }

    #[tokio::test]
    async fn a_sled_log_moves_into_segments_once() {
        let dir = tempfile::tempdir().unwrap();
        write_old_database(dir.path());
        for _ in 0..2 {
            let db = reopen(dir.path());
            let (mut log, _) = db.stores().unwrap();
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(log_id(4)));
            assert_eq!(state.last_log_id, Some(log_id(9)));
            let entries = log.try_get_log_entries(0..100).await.unwrap();
            let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
            assert_eq!(indexes, vec![5, 6, 7, 8, 9]);
            assert!(
                matches!(&entries[0].payload, EntryPayload::Normal(Batch(p)) if *p == vec![register(5)]),
                "a format-1 entry still reads"
            );
            assert_eq!(
                log.read_vote().await.unwrap(),
                Some(Vote::new_committed(3, 1))
            );
            assert_eq!(log.read_committed().await.unwrap(), Some(log_id(8)));
            assert_eq!(db.node_id().unwrap(), Some(1), "sled keeps the node id");
        }
        // Gone from sled (the tree is dropped before these keys are removed).
        let db = reopen(dir.path());
        for key in [VOTE, COMMITTED, LAST_PURGED] {
            assert!(db.raft_meta.get(key).unwrap().is_none());
        }
    }
}
