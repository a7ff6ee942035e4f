//! Reading a slot's vLLM log (`DATA_DIR/slots/<slot id>/vllm.log`, written redacted by the
//! runner) in pieces: its last lines, or what was added since an offset. The API serves
//! the log of a slot that runs here with it, and the peer server the log another node asks
//! for (`helix slot logs` from any node).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The log file in a slot's directory.
pub const LOG_FILE: &str = "vllm.log";
/// The most one answer carries: a follower asks again from where it ended.
pub const MAX_CHUNK: u64 = 1 << 20;

/// Which part of a log to read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogQuery {
    pub slot_id: String,
    /// Read from this byte on (what the previous answer's `end` was): the lines added since.
    pub offset: Option<u64>,
    /// Without an offset: only the last N lines.
    pub tail: Option<usize>,
}

/// A piece of a log: its text and where it ends, to ask for what follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    pub text: String,
    /// The byte offset the text starts at.
    pub start: u64,
    /// The byte offset it ends at: the `offset` to follow the log from.
    pub end: u64,
}

/// The slot logs of this node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SlotLogs {
    slots_dir: PathBuf,
}

impl SlotLogs {
    /// The logs under `DATA_DIR/slots`.
    pub fn new(data_dir: &std::path::Path) -> SlotLogs {
        SlotLogs {
            slots_dir: data_dir.join("slots"),
        }
    }

    /// The part of slot `query.slot_id`'s log the query asks for; empty when the slot has no
    /// log here (yet). A log that shrank below `offset` (rotated at a relaunch) is read from
    /// its start again.
    pub fn read(&self, query: &LogQuery) -> io::Result<LogChunk> {
        let id = &query.slot_id;
        if id.is_empty() || id.starts_with('.') || id.contains(['/', '\\']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a slot id"),
            ));
        }
        let mut file = match File::open(self.slots_dir.join(id).join(LOG_FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogChunk::default()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let start = match query.offset {
            Some(offset) if offset <= len => offset,
            Some(_) => 0,
            None => len.saturating_sub(MAX_CHUNK),
        };
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(MAX_CHUNK).read_to_end(&mut bytes)?;
        let end = start + bytes.len() as u64;
        let mut text_start = 0;
        if query.offset.is_none() {
            // Whole lines only when reading back from the end: not half a line, nor half a
            // UTF-8 character.
            if start > 0 {
                text_start = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            }
            if let Some(n) = query.tail {
                text_start = text_start.max(last_lines_start(&bytes, n));
            }
        }
        Ok(LogChunk {
            text: String::from_utf8_lossy(&bytes[text_start..]).into_owned(),
            start: start + text_start as u64,
            end,
        })
    }
}

/// Where the last `n` lines of `bytes` begin (a last line without its newline counts).
fn last_lines_start(bytes: &[u8], n: usize) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if n == 0 {
        return bytes.len();
    }
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, &b)| b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(text: &str) -> (tempfile::TempDir, SlotLogs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("slots/s1")).unwrap();
        std::fs::write(dir.path().join("slots/s1").join(LOG_FILE), text).unwrap();
        let logs = SlotLogs::new(dir.path());
        (dir, logs)
    }

    fn query(offset: Option<u64>, tail: Option<usize>) -> LogQuery {
        LogQuery {
            slot_id: "s1".into(),
            offset,
            tail,
        }
    }

    #[test]
    fn tails_and_offsets() {
        let (_dir, logs) = logs("one\ntwo\nthree\n");
        let all = logs.read(&query(None, None)).unwrap();
        assert_eq!(
            (all.text.as_str(), all.start, all.end),
            ("one\ntwo\nthree\n", 0, 14)
        );
        let last = logs.read(&query(None, Some(2))).unwrap();
        assert_eq!((last.text.as_str(), last.start), ("two\nthree\n", 4));
        assert_eq!(logs.read(&query(None, Some(9))).unwrap().text, all.text);
        assert_eq!(logs.read(&query(None, Some(0))).unwrap().text, "");
        let since = logs.read(&query(Some(8), None)).unwrap();
        assert_eq!((since.text.as_str(), since.end), ("three\n", 14));
        assert_eq!(logs.read(&query(Some(14), None)).unwrap().text, "");
        // Rotated underneath a follower: from the start again.
        assert_eq!(logs.read(&query(Some(99), None)).unwrap().text, all.text);
    }

    #[test]
    fn no_log_is_empty_and_paths_stay_inside() {
        let (_dir, logs) = logs("x\n");
        let none = LogQuery {
            slot_id: "other".into(),
            ..LogQuery::default()
        };
        assert_eq!(logs.read(&none).unwrap(), LogChunk::default());
        for bad in ["", "..", "../x", "a/b"] {
            let q = LogQuery {
                slot_id: bad.into(),
                ..LogQuery::default()
            };
            assert!(logs.read(&q).is_err(), "{bad}");
        }
    }
}
