//! The Raft log in append-only segment files, openraft-agnostic: entries are opaque bytes by
//! index, the vote, committed id and purge point opaque bytes in a small meta file.
//!
//! - `record.rs`: one record (checksum, length, format byte, index, payload);
//! - `segment.rs`: files named by their first index; opening checks every record, and cuts a
//!   torn tail of the last file;
//! - `flusher.rs`: the one thread that writes: appends group-committed (one write and one
//!   `fdatasync` for all waiting), truncation, purge (whole files), the meta file;
//! - `meta.rs`: the meta file, replaced atomically.
//!
//! Appended entries are readable at once (from memory until written); their callback runs
//! once they are on disk.

mod flusher;
mod meta;
mod record;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use self::meta::Meta;
use self::segment::Loc;

/// Called once an append is durable (or failed).
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// A new segment is started once the last one holds this much.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The log in one directory. Clones share it; the last one dropped finishes what was asked
/// (writing a committed id not written yet) and stops the flusher.
#[derive(Clone)]
pub struct SegmentLog {
    shared: Arc<Shared>,
    flusher: Arc<flusher::Flusher>,
}

struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
}

struct Inner {
    /// On disk, oldest first; entries up to the purge point may still be in the first.
    segments: VecDeque<Segment>,
    /// Being written by the flusher now.
    in_flight: Option<Arc<Batch>>,
    /// Appended since, and who waits for them.
    pending: Batch,
    waiters: Vec<Done>,
    meta: Meta,
    /// The committed id changed since the meta file was written.
    meta_dirty: bool,
    /// A write or sync failed: what is on disk is unknown, so nothing more is written.
    failed: Option<String>,
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// The bytes of whole records in the file.
    len: u64,
    records: Vec<Loc>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.first + self.records.len() as u64
    }
}

/// Encoded records not on disk yet, for entries `first..first + records.len()`.
#[derive(Default)]
struct Batch {
    first: u64,
    bytes: Vec<u8>,
    records: Vec<Loc>,
}

impl Batch {
    fn end(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    fn payload(&self, index: u64) -> Vec<u8> {
        let loc = self.records[(index - self.first) as usize];
        let start = loc.offset as usize + record::HEADER;
        self.bytes[start..loc.offset as usize + loc.size as usize].to_vec()
    }
}

impl SegmentLog {
    /// Open (or create) the log in `dir`, checking every record.
    pub fn open(dir: &Path) -> io::Result<SegmentLog> {
        SegmentLog::open_with(dir, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, segment_bytes: u64) -> io::Result<SegmentLog> {
        fs::create_dir_all(dir)?;
        let meta = meta::read(dir)?;
        let segments = open_segments(dir, meta.purged_index())?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            segment_bytes,
            inner: Mutex::new(Inner {
                segments,
                in_flight: None,
                pending: Batch::default(),
                waiters: Vec::new(),
                meta,
                meta_dirty: false,
                failed: None,
            }),
        });
        let flusher = flusher::Flusher::start(shared.clone())?;
        Ok(SegmentLog {
            shared,
            flusher: Arc::new(flusher),
        })
    }

    /// No entry and no meta written yet.
    pub fn is_blank(&self) -> bool {
        let inner = self.shared.lock();
        inner.last_entry().is_none() && inner.meta == Meta::default()
    }

    pub fn meta(&self) -> Meta {
        self.shared.lock().meta.clone()
    }

    /// The last entry's payload, if there is an entry.
    pub fn last_entry(&self) -> io::Result<Option<Vec<u8>>> {
        let inner = self.shared.lock();
        match inner.last_entry() {
            Some(last) => Ok(inner.read(last..last + 1)?.pop()),
            None => Ok(None),
        }
    }

    /// The payloads of the entries in `range` that the log holds, in order.
    pub fn read(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Vec<u8>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        self.shared.lock().read(start..end)
    }

    /// Append entries (index, payload) after the last one; they are readable at once, and
    /// `done` runs once they are durable. The first index must follow the last entry (or
    /// the purge point; entries at or before it are skipped); a new log starts anywhere.
    pub fn append(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
        done: Done,
    ) -> io::Result<()> {
        {
            let mut inner = self.shared.lock();
            inner.check_writable()?;
            let purged = inner.meta.purged_index();
            let mut next = inner.last_entry().or(purged).map(|l| l + 1);
            for (index, payload) in entries {
                // Already in the snapshot the purge point stands for.
                if purged.is_some_and(|p| index <= p) {
                    continue;
                }
                if next.is_some_and(|n| n != index) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "entry {index} appended where entry {} belongs",
                            next.unwrap()
                        ),
                    ));
                }
                let pending = &mut inner.pending;
                if pending.records.is_empty() {
                    pending.first = index;
                }
                let offset = pending.bytes.len() as u64;
                record::encode(index, &payload, &mut pending.bytes);
                pending.records.push(Loc {
                    offset,
                    size: record::size(&payload) as u32,
                });
                next = Some(index + 1);
            }
            inner.waiters.push(done);
        }
        self.flusher.send(flusher::Job::Wake)
    }

    /// Remove the entries from `from` on, durably.
    pub async fn truncate(&self, from: u64) -> io::Result<()> {
        self.run(|done| flusher::Job::Truncate(from, done)).await
    }

    /// Remove the entries up to `upto`, recording `record` as the purge point (durable
    /// before any file is removed). Whole segments go; the first one left may still hold
    /// purged entries, never read again.
    pub async fn purge(&self, upto: u64, record: Vec<u8>) -> io::Result<()> {
        self.run(|done| flusher::Job::Purge(upto, record, done))
            .await
    }

    /// Rewrite the first segment without the purged entries it still holds, so that none
    /// of them stays on disk (a purge alone removes whole segments only). For compaction on
    /// request: it copies the rest of that segment.
    pub async fn erase_purged(&self) -> io::Result<()> {
        self.run(flusher::Job::ErasePurged).await
    }

    pub async fn save_vote(&self, vote: Vec<u8>) -> io::Result<()> {
        self.run(|done| flusher::Job::SaveVote(vote, done)).await
    }

    /// Kept with the next meta write ([`Self::sync`], a vote, a purge, the last handle
    /// dropped), not at once: losing it only means re-applying from the state machine's
    /// last applied id.
    pub fn save_committed(&self, committed: Vec<u8>) {
        let mut inner = self.shared.lock();
        inner.meta.committed = Some(committed);
        inner.meta_dirty = true;
    }

    /// Make everything appended and saved so far durable.
    pub async fn sync(&self) -> io::Result<()> {
        self.run(flusher::Job::Sync).await
    }

    async fn run(&self, job: impl FnOnce(Done) -> flusher::Job) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.send(job(Box::new(move |result| {
            let _ = tx.send(result);
        })))?;
        rx.await.unwrap_or_else(|_| Err(flusher::stopped()))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("the Raft log's lock is poisoned")
    }
}

impl Inner {
    fn check_writable(&self) -> io::Result<()> {
        match &self.failed {
            Some(cause) => Err(io::Error::other(format!(
                "the Raft log refuses writes after an earlier failure: {cause}"
            ))),
            None => Ok(()),
        }
    }

    /// The first index held (past the purge point), if any entry is.
    fn first_entry(&self) -> Option<u64> {
        let first = self
            .segments
            .front()
            .map(|s| s.first)
            .or(self.in_flight.as_ref().map(|b| b.first))
            .or((!self.pending.records.is_empty()).then_some(self.pending.first))?;
        let first = first.max(self.meta.purged_index().map_or(0, |p| p + 1));
        (self.last_entry()? >= first).then_some(first)
    }

    fn last_entry(&self) -> Option<u64> {
        let end = if !self.pending.records.is_empty() {
            self.pending.end()
        } else if let Some(batch) = self.in_flight.as_ref().filter(|b| !b.records.is_empty()) {
            batch.end()
        } else {
            self.segments
                .back()
                .filter(|s| !s.records.is_empty())?
                .end()
        };
        let last = end - 1;
        match self.meta.purged_index() {
            Some(purged) if last <= purged => None,
            _ => Some(last),
        }
    }

    fn read(&self, range: std::ops::Range<u64>) -> io::Result<Vec<Vec<u8>>> {
        let (Some(first), Some(last)) = (self.first_entry(), self.last_entry()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for index in range.start.max(first)..range.end.min(last + 1) {
            out.push(self.payload(index)?);
        }
        Ok(out)
    }

    fn payload(&self, index: u64) -> io::Result<Vec<u8>> {
        if !self.pending.records.is_empty() && index >= self.pending.first {
            return Ok(self.pending.payload(index));
        }
        if let Some(batch) = self.in_flight.as_ref().filter(|b| index >= b.first) {
            return Ok(batch.payload(index));
        }
        let at = self.segments.partition_point(|s| s.first <= index) - 1;
        let segment = &self.segments[at];
        let loc = segment.records[(index - segment.first) as usize];
        let mut buf = vec![0; loc.size as usize];
        segment.file.read_exact_at(&mut buf, loc.offset)?;
        match record::parse(&buf) {
            record::Parsed::Record { index: found, .. } if found == index => {
                buf.drain(..record::HEADER);
                Ok(buf)
            }
            _ => Err(segment::corrupt(
                &segment.path,
                loc.offset,
                format!("entry {index} no longer reads back"),
            )),
        }
    }
}

/// The segments in `dir`, checked, the last one's torn tail cut, and those wholly at or
/// before the purge point (a purge a crash interrupted) removed.
fn open_segments(dir: &Path, purged: Option<u64>) -> io::Result<VecDeque<Segment>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(first) = name.to_str().and_then(segment::first_index_of) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let mut removed = false;
    for (i, &first) in firsts.iter().enumerate() {
        let path = dir.join(segment::file_name(first));
        let last_segment = i + 1 == firsts.len();
        let scanned = segment::scan(&path, first, last_segment)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if let Some((bytes, reason)) = scanned.torn {
            tracing::warn!(
                file = %path.display(),
                offset = scanned.len,
                bytes,
                reason,
                "cut a torn record off the end of the Raft log (a write a crash interrupted, \
                 never acknowledged)"
            );
            file.set_len(scanned.len)?;
            file.sync_data()?;
        }
        let wholly_purged = purged.is_some_and(|p| first + scanned.records.len() as u64 <= p + 1);
        if scanned.records.is_empty() || wholly_purged {
            fs::remove_file(&path)?;
            removed = true;
            continue;
        }
        // A rewrite by `erase_purged` a crash interrupted: the new file is in place, the old
        // one (holding entries up to the purge point) not removed yet.
        if purged.is_some_and(|p| first == p + 1) {
            if let Some(old) = segments.pop_back() {
                fs::remove_file(&old.path)?;
                removed = true;
            }
        }
        if let Some(prev) = segments.back().filter(|prev| prev.end() != first) {
            return Err(segment::corrupt(
                &path,
                0,
                format!(
                    "it starts at entry {first} but the segment before it ends at entry {}",
                    prev.end() - 1
                ),
            ));
        }
        segments.push_back(Segment {
            first,
            path,
            file: Arc::new(file),
            len: scanned.len,
            records: scanned.records,
        });
    }
    if removed {
        meta::sync_dir(dir)?;
    }
    if let (Some(p), Some(front)) = (purged, segments.front()) {
        if front.first > p + 1 {
            return Err(segment::corrupt(
                &front.path,
                0,
                format!(
                    "entries {}..{} are missing after the purge point {p}",
                    p + 1,
                    front.first - 1
                ),
            ));
        }
    }
    Ok(segments)
}
