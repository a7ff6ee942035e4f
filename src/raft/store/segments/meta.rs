//! The log's small state beside the entries: the vote, the committed id and the purge
//! point, opaque to this module (the caller encodes them). One file, replaced whole: written
//! to a temporary file, synced, renamed over the old one, and the directory synced, so a
//! crash leaves the old file or the new one, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::state::codec;

const FILE: &str = "meta";
const TMP: &str = "meta.tmp";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub vote: Option<Vec<u8>>,
    pub committed: Option<Vec<u8>>,
    /// The last purged index, and the caller's record of it.
    pub purged: Option<(u64, Vec<u8>)>,
}

impl Meta {
    pub fn purged_index(&self) -> Option<u64> {
        self.purged.as_ref().map(|(index, _)| *index)
    }
}

/// The meta file in `dir`, or the default when there is none yet. A leftover temporary file
/// (a crash before its rename) is removed.
pub(super) fn read(dir: &Path) -> io::Result<Meta> {
    match fs::remove_file(dir.join(TMP)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Meta::default()),
        Err(e) => return Err(e),
    };
    let damaged = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the Raft log's {} is damaged: {what}", path.display()),
        )
    };
    if bytes.len() < 4 {
        return Err(damaged(format!("{} bytes", bytes.len())));
    }
    let (crc, body) = bytes.split_at(4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(damaged("checksum mismatch".into()));
    }
    codec::decode(body).map_err(|e| damaged(e.to_string()))
}

/// Replace the meta file in `dir` with `meta`, durably.
pub(super) fn write(dir: &Path, meta: &Meta) -> io::Result<()> {
    let body = codec::encode(meta);
    let tmp = dir.join(TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(&crc32fast::hash(&body).to_le_bytes())?;
    file.write_all(&body)?;
    file.sync_data()?;
    fs::rename(&tmp, dir.join(FILE))?;
    sync_dir(dir)
}

/// Make the names in `dir` (files created, renamed or removed) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
