//! The one thread that changes the log's files. Appends wake it; it takes every record
//! appended meanwhile, writes them in one `write` and one `fdatasync` (group commit), and
//! then runs each waiting callback. Truncation, purge and the meta file are done here too,
//! in the order asked, after the appends before them are durable.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use super::{meta, segment, Done, Segment, Shared};

/// A flush this slow is logged as a warning.
const SLOW_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) enum Job {
    /// Records were appended.
    Wake,
    /// Make everything so far durable, the committed id included.
    Sync(Done),
    Truncate(u64, Done),
    Purge(u64, Vec<u8>, Done),
    SaveVote(Vec<u8>, Done),
    ErasePurged(Done),
}

pub(super) fn stopped() -> io::Error {
    io::Error::other("the Raft log's flusher has stopped")
}

pub(super) struct Flusher {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub(super) fn start(shared: Arc<Shared>) -> io::Result<Flusher> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("helix-log-flush".into())
            .spawn(move || {
                // Ends when every handle is gone.
                while let Ok(first) = rx.recv() {
                    for job in std::iter::once(first).chain(rx.try_iter()) {
                        // Whatever was appended before a job is durable before it runs: the
                        // first flush takes every record waiting, the others find none.
                        let appended = shared.flush_appended();
                        match job {
                            Job::Wake => {}
                            Job::Sync(done) => done(appended.and_then(|_| shared.sync())),
                            Job::Truncate(from, done) => {
                                done(appended.and_then(|_| shared.truncate(from)))
                            }
                            Job::Purge(upto, record, done) => {
                                done(appended.and_then(|_| shared.purge(upto, record)))
                            }
                            Job::SaveVote(vote, done) => {
                                done(appended.and_then(|_| shared.save_vote(vote)))
                            }
                            Job::ErasePurged(done) => {
                                done(appended.and_then(|_| shared.erase_purged()))
                            }
                        }
                    }
                }
                if let Err(e) = shared.flush_appended().and_then(|_| shared.sync()) {
                    tracing::warn!(error = %e, "the Raft log's last flush failed");
                }
            })?;
        Ok(Flusher {
            queue: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    pub(super) fn send(&self, job: Job) -> io::Result<()> {
        let queue = self.queue.lock().expect("flusher lock poisoned");
        match queue.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }
}

impl Drop for Flusher {
    /// The last handle is gone: let the thread finish what was asked, and end.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the next batch goes.
enum Target {
    Tail { file: Arc<File>, offset: u64 },
    New { first: u64, path: PathBuf },
}

/// The one place the Raft log reaches the disk on the way to an acknowledgement: `bytes`
/// written at `offset` of `file`, then `fdatasync` (never `sync_file_range`, which leaves
/// the device's write cache unflushed).
fn write_and_sync(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    // Tests make the disk slow here, on the way to every acknowledgement (debug builds only).
    let delay = crate::test_faults::flush_delay();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    file.write_all_at(bytes, offset)?;
    file.sync_data()
}

impl Shared {
    /// Write every record appended so far, then run their callbacks.
    fn flush_appended(&self) -> io::Result<()> {
        let (batch, waiters, target) = {
            let mut inner = self.lock();
            let waiters = std::mem::take(&mut inner.waiters);
            if let Err(e) = inner.check_writable() {
                drop(inner);
                fail_all(waiters, &e);
                return Err(e);
            }
            if inner.pending.records.is_empty() {
                drop(inner);
                waiters.into_iter().for_each(|done| done(Ok(())));
                return Ok(());
            }
            let batch = Arc::new(std::mem::take(&mut inner.pending));
            inner.in_flight = Some(batch.clone());
            let target = match inner.segments.back() {
                Some(tail) if tail.len < self.segment_bytes => Target::Tail {
                    file: tail.file.clone(),
                    offset: tail.len,
                },
                _ => Target::New {
                    first: batch.first,
                    path: self.dir.join(segment::file_name(batch.first)),
                },
            };
            (batch, waiters, target)
        };
        let started = std::time::Instant::now();
        let written = match &target {
            Target::Tail { file, offset } => {
                write_and_sync(file, *offset, &batch.bytes).map(|_| None)
            }
            Target::New { path, .. } => new_segment(path, &batch.bytes).map(Some),
        };
        note_flush(started.elapsed(), waiters.len());
        let mut inner = self.lock();
        let result = match written {
            Ok(new_file) => {
                if let (Target::New { first, path }, Some(file)) = (target, new_file) {
                    inner.segments.push_back(Segment {
                        first,
                        path,
                        file: Arc::new(file),
                        len: 0,
                        records: Vec::new(),
                    });
                }
                let tail = inner
                    .segments
                    .back_mut()
                    .expect("a segment was just written");
                let base = tail.len;
                tail.records
                    .extend(batch.records.iter().map(|loc| segment::Loc {
                        offset: base + loc.offset,
                        size: loc.size,
                    }));
                tail.len += batch.bytes.len() as u64;
                inner.in_flight = None;
                Ok(())
            }
            Err(e) => {
                // The records stay readable from memory; nothing more is written.
                inner.failed = Some(e.to_string());
                Err(e)
            }
        };
        drop(inner);
        match &result {
            Ok(()) => waiters.into_iter().for_each(|done| done(Ok(()))),
            Err(e) => fail_all(waiters, e),
        }
        result
    }

    /// Remove the entries from `from` on: later segments first, then the one holding
    /// `from` cut, so a crash in between leaves a shorter log without a hole.
    fn truncate(&self, from: u64) -> io::Result<()> {
        let mut removed = Vec::new();
        let mut cut = None;
        {
            let mut inner = self.lock();
            inner.check_writable()?;
            while let Some(tail) = inner.segments.back_mut() {
                if tail.first >= from {
                    removed.push(tail.path.clone());
                    inner.segments.pop_back();
                    continue;
                }
                if from < tail.end() {
                    let keep = (from - tail.first) as usize;
                    tail.len = tail.records[keep].offset;
                    tail.records.truncate(keep);
                    cut = Some((tail.file.clone(), tail.len));
                }
                break;
            }
        }
        // Readers no longer see those entries, and only this thread writes: the files follow
        // without the lock.
        let result = (|| {
            for path in &removed {
                fs::remove_file(path)?;
            }
            if let Some((file, len)) = cut {
                file.set_len(len)?;
                file.sync_data()?;
            }
            if !removed.is_empty() {
                meta::sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        self.lock().fail_on(result)
    }

    /// Record the purge point durably, then remove the segments wholly at or before it.
    fn purge(&self, upto: u64, record: Vec<u8>) -> io::Result<()> {
        let meta = {
            let inner = self.lock();
            inner.check_writable()?;
            if inner.meta.purged_index().is_some_and(|p| p >= upto) {
                return Ok(());
            }
            let mut meta = inner.meta.clone();
            meta.purged = Some((upto, record));
            meta
        };
        // Only this thread writes the meta file: it is written without the lock.
        let written = meta::write(&self.dir, &meta);
        let mut removed = Vec::new();
        {
            let mut inner = self.lock();
            inner.fail_on(written)?;
            inner.meta_dirty = inner.meta.committed != meta.committed;
            inner.meta.purged = meta.purged;
            while let Some(front) = inner.segments.front() {
                if front.end() > upto + 1 {
                    break;
                }
                removed.push(front.path.clone());
                inner.segments.pop_front();
            }
        }
        let result = (|| {
            for path in &removed {
                fs::remove_file(path)?;
            }
            if !removed.is_empty() {
                meta::sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        self.lock().fail_on(result)
    }

    /// Copy the entries after the purge point out of the first segment into a new one named
    /// by the first of them, then remove the old file. A crash in between leaves both: opening
    /// removes the old one (see `open_segments`).
    fn erase_purged(&self) -> io::Result<()> {
        let (keep_from, old, kept) = {
            let inner = self.lock();
            inner.check_writable()?;
            let (Some(purged), Some(front)) = (inner.meta.purged_index(), inner.segments.front())
            else {
                return Ok(());
            };
            let keep_from = purged + 1;
            if front.first >= keep_from || front.end() <= keep_from {
                return Ok(());
            }
            let kept = front.records[(keep_from - front.first) as usize..].to_vec();
            (
                keep_from,
                (front.path.clone(), front.file.clone(), front.len),
                kept,
            )
        };
        let (old_path, old_file, end) = old;
        let start = kept[0].offset;
        let path = self.dir.join(segment::file_name(keep_from));
        let mut bytes = vec![0; (end - start) as usize];
        let copied = old_file
            .read_exact_at(&mut bytes, start)
            .and_then(|_| new_segment(&path, &bytes));
        let file = match copied {
            Ok(file) => file,
            Err(e) => return self.lock().fail_on(Err(e)),
        };
        let records = kept
            .iter()
            .map(|loc| segment::Loc {
                offset: loc.offset - start,
                size: loc.size,
            })
            .collect();
        self.lock().segments[0] = Segment {
            first: keep_from,
            path,
            file: Arc::new(file),
            len: end - start,
            records,
        };
        let removed = fs::remove_file(&old_path).and_then(|_| meta::sync_dir(&self.dir));
        self.lock().fail_on(removed)
    }

    fn save_vote(&self, vote: Vec<u8>) -> io::Result<()> {
        let meta = {
            let inner = self.lock();
            inner.check_writable()?;
            let mut meta = inner.meta.clone();
            meta.vote = Some(vote);
            meta
        };
        let written = meta::write(&self.dir, &meta);
        let mut inner = self.lock();
        inner.fail_on(written)?;
        inner.meta_dirty = inner.meta.committed != meta.committed;
        inner.meta.vote = meta.vote;
        Ok(())
    }

    /// Write the meta file if the committed id changed since it was written.
    fn sync(&self) -> io::Result<()> {
        let meta = {
            let inner = self.lock();
            inner.check_writable()?;
            if !inner.meta_dirty {
                return Ok(());
            }
            inner.meta.clone()
        };
        let written = meta::write(&self.dir, &meta);
        let mut inner = self.lock();
        inner.fail_on(written)?;
        inner.meta_dirty = inner.meta.committed != meta.committed;
        Ok(())
    }
}

impl super::Inner {
    /// Once a change to the files failed, what is on disk is unknown: refuse every later one.
    fn fail_on(&mut self, result: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }
}

/// A segment file for a batch starting a new segment, its name made durable too.
fn new_segment(path: &std::path::Path, bytes: &[u8]) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    write_and_sync(&file, 0, bytes)?;
    meta::sync_dir(
        path.parent()
            .expect("a segment lies in the log's directory"),
    )?;
    Ok(file)
}

fn fail_all(waiters: Vec<Done>, e: &io::Error) {
    for done in waiters {
        done(Err(io::Error::new(e.kind(), e.to_string())));
    }
}

fn note_flush(took: std::time::Duration, waiting: usize) {
    ::metrics::histogram!(crate::metrics::names::RAFT_LOG_FLUSH).record(took.as_secs_f64());
    if took >= SLOW_FLUSH {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            waiting,
            "slow disk: a flush of the Raft log took long (Raft waits for it and a leader \
             sends no heartbeat meanwhile)"
        );
    }
}
