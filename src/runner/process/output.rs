//! The child's output in `vllm.log`: copied a line at a time with the Hugging Face token
//! replaced by `***`, rotated at launch once it has grown big, and read back by `log_tail`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::slot_log::LOG_FILE;
/// A log bigger than this at launch is moved to `vllm.log.1` (replacing the previous one).
const LOG_ROTATE_BYTES: u64 = 32 << 20;
/// Output with no newline for this long (progress bars redraw with `\r`) is written anyway.
const MAX_LINE: usize = 64 << 10;

/// Opens `slot_dir/vllm.log` for appending (0600), first moving a big one to `vllm.log.1`.
pub(super) fn open_log(slot_dir: &Path) -> io::Result<File> {
    let log_path = slot_dir.join(LOG_FILE);
    if fs::metadata(&log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let _ = fs::rename(&log_path, slot_dir.join(format!("{LOG_FILE}.1")));
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
}

/// Copies one output stream of the child into the log, a line at a time, redacting the token.
pub(super) async fn copy_to_log<R: AsyncRead + Unpin>(
    mut stream: R,
    mut log: File,
    token: Option<Arc<SecretString>>,
) {
    let token = token.as_deref().map(|t| t.expose_secret().as_bytes());
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        if let Some(t) = token {
            pending = redact(&pending, t);
        }
        let cut = match pending.iter().rposition(|&b| b == b'\n') {
            Some(nl) => Some(nl + 1),
            // No newline for a long while: write all but a tail that could be the start of a
            // token (every complete occurrence has been replaced already).
            None if pending.len() > MAX_LINE => {
                Some(pending.len() - token.map_or(0, |t| t.len().saturating_sub(1)))
            }
            None => None,
        };
        if let Some(cut) = cut {
            let rest = pending.split_off(cut);
            let _ = log.write_all(&pending);
            pending = rest;
        }
    }
    if !pending.is_empty() {
        if let Some(t) = token {
            pending = redact(&pending, t);
        }
        pending.push(b'\n');
        let _ = log.write_all(&pending);
    }
}

/// `text` with every occurrence of `token` replaced by `***`.
fn redact(text: &[u8], token: &[u8]) -> Vec<u8> {
    if token.is_empty() || text.len() < token.len() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(token) {
            out.extend_from_slice(b"***");
            i += token.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The last `max_bytes` of `slot_dir/vllm.log`, as (lossy) UTF-8; empty if there is no log.
pub fn log_tail(slot_dir: &Path, max_bytes: usize) -> String {
    let Ok(mut f) = File::open(slot_dir.join(LOG_FILE)) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes as u64);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::with_capacity(max_bytes.min(len as usize));
    if f.take(max_bytes as u64).read_to_end(&mut buf).is_err() {
        return String::new();
    }
    // Do not start in the middle of a UTF-8 character.
    let skip = if start > 0 {
        buf.iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count()
    } else {
        0
    };
    String::from_utf8_lossy(&buf[skip..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{spec, wait_exit, TOKEN};
    use super::super::VllmProcess;
    use super::*;

    #[tokio::test]
    async fn token_is_redacted_everywhere_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        // On both streams, twice on a line, and split across writes with no newline.
        let script = "echo \"token is $HF_TOKEN\"; echo \"$HF_TOKEN$HF_TOKEN\" >&2; \
                      printf 'x%s' \"$HF_TOKEN\"; printf 'y%s' \"$HF_TOKEN\" >&2";
        let mut p = VllmProcess::spawn(spec(dir.path(), "r", script, Some(TOKEN))).unwrap();
        wait_exit(&mut p).await;
        let log = fs::read_to_string(dir.path().join("r/vllm.log")).unwrap();
        assert!(!log.contains(TOKEN), "{log}");
        assert!(!log.contains("hf_TestToken"), "{log}");
        assert!(log.contains("token is ***\n"), "{log}");
        assert!(log.contains("******\n"), "{log}");
        assert!(log.contains("x***"), "{log}");
        assert!(log.contains("y***"), "{log}");

        // A token in argv is refused outright.
        let mut bad = spec(dir.path(), "r2", "true", Some(TOKEN));
        bad.argv.push(format!("--token={TOKEN}"));
        let err = VllmProcess::spawn(bad).unwrap_err();
        assert!(!err.to_string().contains(TOKEN));
    }

    #[test]
    fn redaction_of_long_output_without_newlines() {
        let mut text = vec![b'a'; MAX_LINE];
        text.extend_from_slice(TOKEN.as_bytes());
        let out = redact(&text, TOKEN.as_bytes());
        assert_eq!(out.len(), MAX_LINE + 3);
        assert_eq!(redact(b"short", TOKEN.as_bytes()), b"short");
    }

    #[test]
    fn log_tail_reads_the_end() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(log_tail(dir.path(), 100), "");
        fs::write(dir.path().join(LOG_FILE), "first line\nsecond é line\n").unwrap();
        assert_eq!(log_tail(dir.path(), 1000), "first line\nsecond é line\n");
        assert_eq!(log_tail(dir.path(), 6), " line\n");
        // Starting inside the two bytes of "é" skips its second byte.
        assert_eq!(log_tail(dir.path(), 7), " line\n");
        assert_eq!(log_tail(dir.path(), 8), "é line\n");
    }
}
