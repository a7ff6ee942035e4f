//! Segment files: named by the index of their first entry, records back to back. Opening
//! reads each one whole and checks every record.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::record::{self, Parsed};

const SUFFIX: &str = ".log";

pub(super) fn file_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

/// The first index a segment file's name gives, if the name is a segment's.
pub(super) fn first_index_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where an entry's record lies in its segment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Loc {
    pub offset: u64,
    pub size: u32,
}

/// A segment as opening found it.
#[derive(Debug)]
pub(super) struct Scanned {
    /// One per entry, from `first` on.
    pub records: Vec<Loc>,
    /// The length of the whole records (the file is cut to it when a tail was torn).
    pub len: u64,
    /// A torn tail found after the records: the bytes that were there, and why.
    pub torn: Option<(u64, &'static str)>,
}

/// Damage that opening does not repair: it names the file and the offset.
pub(super) fn corrupt(path: &Path, offset: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the Raft log is damaged: {} at byte {offset}: {what}",
            path.display()
        ),
    )
}

/// Read and check the segment at `path`. Only the last segment may end in a torn record
/// (a write a crash cut short, never acknowledged): it is reported in `torn`, and the caller
/// cuts it. A bad record anywhere else, or one followed by a good record, is damage to data
/// that was synced, and an error.
pub(super) fn scan(path: &Path, first: u64, last_segment: bool) -> io::Result<Scanned> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut torn = None;
    while offset < bytes.len() {
        let expected = first + records.len() as u64;
        let reason = match record::parse(&bytes[offset..]) {
            Parsed::Record { index, size } if index == expected => {
                records.push(Loc {
                    offset: offset as u64,
                    size: size as u32,
                });
                offset += size;
                continue;
            }
            Parsed::Record { index, .. } => {
                return Err(corrupt(
                    path,
                    offset as u64,
                    format!("holds entry {index} where entry {expected} belongs"),
                ))
            }
            Parsed::UnknownFormat(format) => {
                return Err(corrupt(
                    path,
                    offset as u64,
                    format!("record format {format} is unknown to this helix"),
                ))
            }
            Parsed::Short => "a record cut short",
            Parsed::Bad(reason) => reason,
        };
        if !last_segment {
            return Err(corrupt(path, offset as u64, reason));
        }
        if let Some(at) = good_record_after(&bytes, offset + 1, expected) {
            return Err(corrupt(
                path,
                offset as u64,
                format!("{reason}, with a good record after it at byte {at}"),
            ));
        }
        torn = Some(((bytes.len() - offset) as u64, reason));
        break;
    }
    Ok(Scanned {
        records,
        len: offset as u64,
        torn,
    })
}

/// The offset of a good record for an entry from `expected` on, at or after `from`. A torn
/// write leaves nothing good behind it; a damaged record in the middle does.
fn good_record_after(bytes: &[u8], from: usize, expected: u64) -> Option<usize> {
    let limit = expected + (bytes.len() / record::HEADER) as u64;
    (from..bytes.len().saturating_sub(record::HEADER - 1)).find(|&at| {
        // The cheap check first: most offsets do not even name a plausible index.
        let (index, _) = record::header(&bytes[at..]);
        (expected..limit).contains(&index)
            && matches!(record::parse(&bytes[at..]), Parsed::Record { .. })
    })
}
