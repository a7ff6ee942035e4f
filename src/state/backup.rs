//! A backup file of the whole state: what `helix operator snapshot save` writes and
//! `restore` reads. Self-describing and checked before use: a magic, the file format, the
//! applied index it was taken at, the records (sealed secrets only, as the state holds
//! them), then a SHA-256 of everything before it.

use sha2::{Digest, Sha256};

use super::codec::{self, CodecError};
use super::State;

const MAGIC: &[u8; 12] = b"HELIX-BACKUP";
/// The backup format this helix writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
const CHECKSUM_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a helix snapshot")]
    NotBackup,
    #[error("snapshot format {found} is not supported by this helix (expects {BACKUP_FORMAT})")]
    Format { found: u32 },
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    #[error("the snapshot's records cannot be read: {0}")]
    Records(#[from] CodecError),
}

/// What a backup file holds.
#[derive(Debug)]
pub struct Backup {
    /// The applied log index the state was read at.
    pub applied_index: u64,
    pub state: State,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    applied_index: u64,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The file for `state`, read at `applied_index`.
pub fn encode_backup(applied_index: u64, state: &State) -> Vec<u8> {
    let body = codec::encode(&Body {
        applied_index,
        records: state.records(),
    });
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&BACKUP_FORMAT.to_be_bytes());
    out.extend_from_slice(&body);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The backup in `bytes`, once its magic, format and checksum are right.
pub fn decode_backup(bytes: &[u8]) -> Result<Backup, BackupError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(BackupError::NotBackup)?;
    let (format, _) = rest
        .split_first_chunk::<4>()
        .ok_or(BackupError::NotBackup)?;
    let found = u32::from_be_bytes(*format);
    if found != BACKUP_FORMAT {
        return Err(BackupError::Format { found });
    }
    let split = bytes
        .len()
        .checked_sub(CHECKSUM_LEN)
        .filter(|at| *at >= MAGIC.len() + 4)
        .ok_or(BackupError::Checksum)?;
    let (covered, sum) = bytes.split_at(split);
    if Sha256::digest(covered).as_slice() != sum {
        return Err(BackupError::Checksum);
    }
    let body: Body = codec::decode(&covered[MAGIC.len() + 4..])?;
    let state = State::from_records(body.records.iter().map(|(_, v)| v.as_slice()))?;
    Ok(Backup {
        applied_index: body.applied_index,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        crate::state::tests::every_command_applied()
    }

    #[test]
    fn a_backup_holds_the_whole_state() {
        let state = sample();
        let backup = decode_backup(&encode_backup(7, &state)).unwrap();
        assert_eq!((backup.applied_index, backup.state), (7, state));
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch() {
        let mut bytes = encode_backup(7, &sample());
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let err = decode_backup(&bytes).unwrap_err();
        assert_eq!(err.to_string(), "checksum mismatch: the file is damaged");
        bytes.truncate(MAGIC.len() + 4);
        assert!(matches!(decode_backup(&bytes), Err(BackupError::Checksum)));
    }

    #[test]
    fn another_format_and_other_files_are_refused_by_name() {
        let mut bytes = encode_backup(7, &sample());
        bytes[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&9u32.to_be_bytes());
        let err = decode_backup(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "snapshot format 9 is not supported by this helix (expects 1)"
        );
        for other in [&b""[..], b"HELIX", b"{\"not\": \"a backup\"}"] {
            let err = decode_backup(other).unwrap_err();
            assert_eq!(err.to_string(), "not a helix snapshot");
        }
    }
}
