use std::path::{Path, PathBuf};
use std::sync::mpsc;

use futures::executor::block_on;

use super::*;

/// Small segments, so that a few entries span several files.
const SMALL: u64 = 256;

fn payload(index: u64) -> Vec<u8> {
    format!("entry {index} {}", "x".repeat((index % 7) as usize)).into_bytes()
}

fn open(dir: &Path) -> SegmentLog {
    SegmentLog::open_with(dir, SMALL).expect("open the log")
}

/// Append `indexes`, each durable before the next (one flush each, so that small
/// segments fill and roll over).
fn append(log: &SegmentLog, indexes: std::ops::RangeInclusive<u64>) {
    for index in indexes {
        let (tx, rx) = mpsc::channel();
        log.append(
            [(index, payload(index))],
            Box::new(move |r| tx.send(r).expect("the test waits")),
        )
        .expect("append");
        rx.recv().expect("a callback").expect("durable");
    }
}

/// The index of the last entry, or the purge point when none is left.
fn last_index(log: &SegmentLog) -> Option<u64> {
    let inner = log.shared.lock();
    inner.last_entry().or(inner.meta.purged_index())
}

fn all(log: &SegmentLog) -> Vec<Vec<u8>> {
    log.read(..).expect("read")
}

fn expected(indexes: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    indexes.map(payload).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn entries_read_back_before_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(log.is_blank());
    append(&log, 1..=40);
    assert_eq!(all(&log), expected(1..=40));
    assert_eq!(log.read(10..=12).unwrap(), expected(10..=12));
    assert_eq!(last_index(&log), Some(40));
    assert_eq!(log.last_entry().unwrap(), Some(payload(40)));
    assert!(
        segment_files(dir.path()).len() > 3,
        "small segments roll over"
    );
    drop(log);
    let log = open(dir.path());
    assert_eq!(all(&log), expected(1..=40));
    append(&log, 41..=45);
    assert_eq!(all(&open_again(log, dir.path())), expected(1..=45));
}

fn open_again(log: SegmentLog, dir: &Path) -> SegmentLog {
    drop(log);
    open(dir)
}

/// Entries appended are readable before they are durable, and every callback runs.
#[test]
fn appends_are_readable_at_once_and_every_callback_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let (tx, rx) = mpsc::channel();
    for index in 1..=200u64 {
        let tx = tx.clone();
        log.append(
            [(index, payload(index))],
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .unwrap();
        assert_eq!(log.read(index..=index).unwrap(), vec![payload(index)]);
    }
    for _ in 1..=200 {
        rx.recv().unwrap().unwrap();
    }
    let wrong = log.append([(7, payload(7))], Box::new(|_| {}));
    assert!(
        wrong
            .unwrap_err()
            .to_string()
            .contains("entry 7 appended where entry 201 belongs"),
        "an append must follow the last entry"
    );
}

#[test]
fn truncation_removes_the_suffix_durably() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, 1..=40);
    let files = segment_files(dir.path()).len();
    block_on(log.truncate(25)).unwrap();
    assert_eq!(all(&log), expected(1..=24));
    assert!(segment_files(dir.path()).len() < files);
    let log = open_again(log, dir.path());
    assert_eq!(all(&log), expected(1..=24));
    // The cut point can be written again.
    append(&log, 25..=30);
    block_on(log.truncate(1)).unwrap();
    assert_eq!(last_index(&log), None);
    assert!(segment_files(dir.path()).is_empty());
    append(&log, 1..=3);
    assert_eq!(all(&open_again(log, dir.path())), expected(1..=3));
}

#[test]
fn purge_removes_whole_segments_and_keeps_its_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, 1..=40);
    let files = segment_files(dir.path()).len();
    block_on(log.purge(20, b"twenty".to_vec())).unwrap();
    assert_eq!(all(&log), expected(21..=40));
    assert_eq!(log.read(..=21).unwrap(), expected(21..=21));
    assert!(segment_files(dir.path()).len() < files, "whole segments go");
    let first_left = segment_files(dir.path())[0].clone();
    let first = segment::first_index_of(first_left.file_name().unwrap().to_str().unwrap());
    assert!(first.unwrap() <= 21, "the segment holding entry 21 stays");
    let log = open_again(log, dir.path());
    assert_eq!(all(&log), expected(21..=40));
    assert_eq!(log.meta().purged, Some((20, b"twenty".to_vec())));
    // Past the last entry (a snapshot installed): the log is empty, and goes on after it.
    block_on(log.purge(50, b"fifty".to_vec())).unwrap();
    assert!(all(&log).is_empty());
    assert_eq!(last_index(&log), Some(50));
    assert!(segment_files(dir.path()).is_empty());
    append(&log, 51..=52);
    let log = open_again(log, dir.path());
    assert_eq!(all(&log), expected(51..=52));
    assert_eq!(last_index(&log), Some(52));
}

#[test]
fn vote_and_committed_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    block_on(log.save_vote(b"vote".to_vec())).unwrap();
    log.save_committed(b"committed".to_vec());
    let log = open_again(log, dir.path());
    let meta = log.meta();
    assert_eq!(meta.vote.as_deref(), Some(&b"vote"[..]));
    assert_eq!(
        meta.committed.as_deref(),
        Some(&b"committed"[..]),
        "kept by the last drop"
    );
    assert!(!log.is_blank());
}

/// A crash while the last record was being written leaves any prefix of it: opening cuts
/// it off, whatever its length, and the log goes on from there.
#[test]
fn a_torn_last_record_is_cut_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, 1..=20);
    drop(log);
    let last = segment_files(dir.path()).pop().unwrap();
    let whole = fs::read(&last).unwrap();
    let record_start = (whole.len() - record::size(&payload(20))) as u64;
    for cut in record_start..whole.len() as u64 {
        fs::write(&last, &whole[..cut as usize]).unwrap();
        let log = open(dir.path());
        assert_eq!(all(&log), expected(1..=19), "cut at byte {cut}");
        assert_eq!(
            fs::metadata(&last).map(|m| m.len()).unwrap_or(0),
            record_start
        );
        drop(log);
    }
    // Zeros where the record should be (a file extended but not written) are torn too.
    let mut zeros = whole[..record_start as usize].to_vec();
    zeros.resize(whole.len() + 100, 0);
    fs::write(&last, &zeros).unwrap();
    let log = open(dir.path());
    assert_eq!(all(&log), expected(1..=19));
    append(&log, 20..=21);
    assert_eq!(all(&open_again(log, dir.path())), expected(1..=21));
}

/// A bit flipped in a record that has good records after it is damage, not a torn write:
/// opening fails naming the file and the offset, in the last segment as in any other.
#[test]
fn a_flipped_bit_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, 1..=40);
    drop(log);
    let files = segment_files(dir.path());
    for file in [files[0].clone(), files.last().unwrap().clone()] {
        let whole = fs::read(&file).unwrap();
        let mut damaged = whole.clone();
        // In the first record, which has others after it in each file.
        let at = record::HEADER + 2;
        damaged[at] ^= 0x10;
        fs::write(&file, &damaged).unwrap();
        let error = SegmentLog::open_with(dir.path(), SMALL)
            .err()
            .expect("damage is an error");
        let text = error.to_string();
        assert!(
            text.contains(&file.display().to_string()) && text.contains("at byte 0"),
            "{text}"
        );
        fs::write(&file, &whole).unwrap();
    }
    assert_eq!(all(&open(dir.path())), expected(1..=40));
}

fn holds_any(dir: &Path, payloads: &[Vec<u8>]) -> bool {
    segment_files(dir).iter().any(|file| {
        let bytes = fs::read(file).unwrap();
        payloads
            .iter()
            .any(|p| bytes.windows(p.len()).any(|w| w == p.as_slice()))
    })
}

/// After a purge, the segment holding the purge point still holds the entries before it;
/// erasing rewrites it without them. A crash before the old file was removed leaves both:
/// opening removes the old one.
#[test]
fn erasing_purged_entries_leaves_none_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append(&log, 1..=40);
    block_on(log.purge(20, b"twenty".to_vec())).unwrap();
    let purged = expected(1..=20);
    assert!(
        holds_any(dir.path(), &purged),
        "a purge drops whole files only"
    );
    let old = segment_files(dir.path())[0].clone();
    let old_bytes = fs::read(&old).unwrap();
    block_on(log.erase_purged()).unwrap();
    assert!(!holds_any(dir.path(), &purged));
    assert_eq!(all(&log), expected(21..=40));
    append(&log, 41..=42);
    drop(log);
    fs::write(&old, old_bytes).unwrap();
    let log = open(dir.path());
    assert_eq!(all(&log), expected(21..=42));
    assert!(!holds_any(dir.path(), &purged), "the old file is removed");
}
