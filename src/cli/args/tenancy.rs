//! The flags of `helix org`, `helix user` and `helix audit`.

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    Create {
        name: String,
    },
    List,
    #[command(subcommand)]
    Settings(OrgSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum OrgSettingsCommand {
    Get {
        org: String,
    },
    Set {
        org: String,
        #[command(flatten)]
        token: TokenFlags,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; prints its API key once.
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        /// Organization id to put the user in.
        #[arg(long)]
        org: Option<String>,
        /// Make the user an owner of --org (default: member).
        #[arg(long, requires = "org")]
        owner: bool,
    },
    List,
    /// A user's API keys: id, name, created, last used (default: yourself).
    Keys {
        user: Option<String>,
    },
    /// Issue, rotate or revoke an API key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Disable a user: all their API keys stop working at once (admins only).
    Disable {
        user: String,
    },
    /// Enable a disabled user again (admins only).
    Enable {
        user: String,
    },
    #[command(subcommand)]
    Settings(UserSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Issue another API key for a user (default: yourself); prints it once.
    Issue {
        user: Option<String>,
        /// What to call the key (shown by `helix user keys`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Replace a key with a new one of the same name; prints the new key once, and the old
    /// one stops working.
    Rotate { key_id: String },
    /// Revoke an API key by its id.
    Revoke { key_id: String },
}

#[derive(Subcommand, Debug)]
pub enum UserSettingsCommand {
    Get {
        /// User id (default: yourself).
        user: Option<String>,
    },
    Set {
        /// User id (default: yourself).
        user: Option<String>,
        #[command(flatten)]
        token: TokenFlags,
    },
}

#[derive(Args, Debug)]
pub struct TokenFlags {
    /// The token; `-` reads it from standard input (keeps it out of shell history).
    #[arg(
        long,
        conflicts_with = "clear_hf_token",
        required_unless_present = "clear_hf_token"
    )]
    pub huggingface_token: Option<String>,
    /// Clear the token at this level (resolution falls through to the next).
    #[arg(long)]
    pub clear_hf_token: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Entries oldest first; the filters combine.
    List {
        /// A user id, or `cluster` for the cluster's own entries.
        #[arg(long)]
        actor: Option<String>,
        /// e.g. `hf_token_set`, `api_key_issued`, `node_removed`.
        #[arg(long)]
        kind: Option<String>,
        /// RFC 3339, e.g. 2026-12-01T03:00:00Z (inclusive).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 (inclusive).
        #[arg(long)]
        until: Option<String>,
        /// Only the newest N of the matching entries.
        #[arg(long)]
        limit: Option<String>,
    },
}

