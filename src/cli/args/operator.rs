//! The flags of `helix operator`.

use std::path::PathBuf;

use clap::Subcommand;

use super::NodeFlags;

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Save or restore a snapshot of the whole state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// After a quorum is lost for good: make this stopped node (`--data-dir`) the only
    /// voter of a new configuration with its own committed state; then start it, and join
    /// the other survivors to it with join tokens and empty data dirs. Prints what may be
    /// lost; changes nothing without `--yes`.
    Recover {
        /// Really do it (without: only print what would be lost).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        flags: Box<NodeFlags>,
    },
    /// The data keys that seal Hugging Face tokens.
    #[command(subcommand)]
    Keyring(KeyringCommand),
    /// Make every node snapshot its state and drop its Raft log up to it now, so replaced
    /// or cleared tokens and destroyed keys leave the logs without waiting for the next
    /// automatic snapshot.
    Compact,
}

#[derive(Subcommand, Debug)]
pub enum KeyringCommand {
    /// Key ids, ages, and how many tokens each seals; whether this node's seal key opens
    /// them.
    List,
    /// Make a new data key, re-seal every stored token with it (one Raft write), and
    /// destroy the old keys.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save the state, read at a linearizable point, to FILE (secrets stay sealed with the
    /// cluster key: keep the source's DATA_DIR/cluster.key safe too, apart from FILE).
    Save {
        /// Where to write it (atomically).
        file: PathBuf,
    },
    /// Make a new data dir (`--data-dir`, missing or empty) whose node, started with
    /// `helix node start` and the same flags, runs a one-node cluster holding FILE's state;
    /// other nodes join it with join tokens. Offline: no node needs to run.
    Restore {
        /// A file written by `helix operator snapshot save`.
        file: PathBuf,
        /// The `cluster.key` of a node of the cluster FILE was saved from: it opens the CA and
        /// the sealed tokens in FILE, and becomes the new cluster's key. Required: without
        /// it nothing sealed in FILE could be opened.
        #[arg(long)]
        cluster_key_file: PathBuf,
        #[command(flatten)]
        flags: Box<NodeFlags>,
    },
}
