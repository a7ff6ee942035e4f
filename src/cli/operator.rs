//! `helix operator snapshot save|restore`: a backup of the whole state, written
//! atomically; a new one-node cluster made from one. `helix operator recover`: a survivor
//! of a lost quorum made the only voter.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::args::{NodeFlags, OperatorCommand, OutputFormat, SnapshotCommand};
use super::client::Client;
use super::failure::{self, Failure};
use super::output;
use crate::crypto::ClusterSecret;
use crate::state::decode_backup;

const SNAPSHOT_PATH: &str = "/api/v1/operator/snapshot";
/// A progress line every this many bytes.
const PROGRESS_EVERY: u64 = 1 << 20;

pub async fn run(cmd: OperatorCommand, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    match cmd {
        OperatorCommand::Keyring(cmd) => super::keyring::run(cmd, client, out).await,
        OperatorCommand::Compact => super::keyring::compact(client, out).await,
        OperatorCommand::Snapshot(SnapshotCommand::Save { file }) => save(&file, client, out).await,
        OperatorCommand::Snapshot(SnapshotCommand::Restore {
            file,
            cluster_key_file,
            flags,
        }) => restore(&file, &cluster_key_file, *flags, out).await,
        OperatorCommand::Recover { yes, flags } => {
            let config = super::node::config(*flags)?;
            let node_id = crate::daemon::recover(&config, yes)
                .await
                .map_err(|e| failure::failed(format!("{e:#}")))?;
            match out {
                OutputFormat::Json => output::json(&json!({ "only_voter": node_id })),
                OutputFormat::Table => println!(
                    "node {node_id} is now the only voter; start it with `helix node start` \
                     and the same flags"
                ),
            }
            Ok(())
        }
    }
}

async fn restore(
    file: &Path,
    key_file: &Path,
    flags: NodeFlags,
    out: OutputFormat,
) -> Result<(), Failure> {
    let config = super::node::config(flags)?;
    let bytes = std::fs::read(file)
        .map_err(|e| failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let backup =
        decode_backup(&bytes).map_err(|e| failure::failed(format!("{}: {e}", file.display())))?;
    let key_text = std::fs::read_to_string(key_file)
        .map_err(|e| failure::usage(format!("cannot read {}: {e}", key_file.display())))?;
    let secret = ClusterSecret::from_hex(key_text.trim())
        .map_err(|e| failure::usage(format!("{} is not a cluster key: {e}", key_file.display())))?;
    let applied_index = backup.applied_index;
    let node_id = crate::daemon::restore(&config, backup, &secret)
        .await
        .map_err(|e| failure::failed(format!("{e:#}")))?;
    match out {
        OutputFormat::Json => output::json(&json!({
            "restored": file,
            "applied_index": applied_index,
            "data_dir": config.data_dir,
            "node_id": node_id,
        })),
        OutputFormat::Table => println!(
            "restored the snapshot (applied index {applied_index}) into {} as node {node_id}; \
             start it with `helix node start` and the same flags",
            config.data_dir.display()
        ),
    }
    Ok(())
}

async fn save(file: &Path, client: &Client, out: OutputFormat) -> Result<(), Failure> {
    let mut shown = 0;
    let bytes = client
        .download(SNAPSHOT_PATH, |received| {
            if received >= shown + PROGRESS_EVERY {
                shown = received;
                eprint!("\rreceived {} MiB", received >> 20);
            }
        })
        .await?;
    if shown > 0 {
        eprintln!();
    }
    // Checked before it is kept: a damaged transfer is not a backup.
    let backup = decode_backup(&bytes)
        .map_err(|e| failure::failed(format!("the node sent a bad snapshot: {e}")))?;
    write_atomically(file, &bytes)
        .map_err(|e| failure::failed(format!("cannot write {}: {e}", file.display())))?;
    match out {
        OutputFormat::Json => output::json(&json!({
            "saved": file,
            "applied_index": backup.applied_index,
            "bytes": bytes.len(),
        })),
        OutputFormat::Table => println!(
            "saved a snapshot at applied index {} ({}) to {}",
            backup.applied_index,
            output::size(bytes.len() as u64),
            file.display()
        ),
    }
    Ok(())
}

/// Write `bytes` to a temporary file beside `file`, sync it, then rename it over `file`.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp_name = file.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = Path::new(&tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, file)
}
