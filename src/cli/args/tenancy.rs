//! The flags of `helix org`, `helix user` and `helix audit`.

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization (admin).
    Create {
        /// Its name, unique in the cluster.
        name: String,
    },
    /// Organizations: all of them for an admin, else your own.
    List,
    /// An organization's Hugging Face token (admin or an owner of the organization).
    #[command(subcommand)]
    Settings(OrgSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum OrgSettingsCommand {
    /// Whether its token is set (never the token).
    Get {
        /// The organization id, as in `helix org list`.
        org: String,
    },
    /// Set its token, or clear it.
    Set {
        /// The organization id, as in `helix org list`.
        org: String,
        #[command(flatten)]
        token: TokenFlags,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; prints its API key once.
    Create {
        /// Its name, unique in the cluster.
        name: String,
        /// Make it an admin: it may do anything.
        #[arg(long)]
        admin: bool,
        /// Organization id to put the user in.
        #[arg(long)]
        org: Option<String>,
        /// Make the user an owner of --org (default: member).
        #[arg(long, requires = "org")]
        owner: bool,
    },
    /// Users: all of them for an admin, else yourself.
    List,
    /// A user's API keys: id, name, created, last used (default: yourself).
    Keys {
        /// The user id [default: yourself].
        user: Option<String>,
    },
    /// Issue, rotate or revoke an API key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Disable a user: all their API keys stop working at once (admins only).
    Disable {
        /// The user id, as in `helix user list`.
        user: String,
    },
    /// Enable a disabled user again (admins only).
    Enable {
        /// The user id, as in `helix user list`.
        user: String,
    },
    /// A user's Hugging Face token (admin or that user).
    #[command(subcommand)]
    Settings(UserSettingsCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Issue another API key for a user (default: yourself); prints it once.
    Issue {
        /// The user id [default: yourself].
        user: Option<String>,
        /// What to call the key (shown by `helix user keys`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Replace a key with a new one of the same name; prints the new key once, and the old
    /// one stops working.
    Rotate {
        /// The key's id, as in `helix user keys`.
        key_id: String,
    },
    /// Revoke an API key by its id.
    Revoke {
        /// The key's id, as in `helix user keys`.
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserSettingsCommand {
    /// Whether the user's token is set (never the token).
    Get {
        /// User id (default: yourself).
        user: Option<String>,
    },
    /// Set the user's token, or clear it.
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
