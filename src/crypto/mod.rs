//! The cluster key, join tokens, API keys, and the sealing of secrets.
//!
//! One random 32-byte cluster key is created when a cluster bootstraps and kept by every
//! member (`cluster.key`, 0600). A joining node gets it only over mutual TLS, after the
//! leader admitted it with a join token: nothing a joining node is handed derives it. It
//! seals the cluster CA's private key in the replicated state and, unless the node is given
//! an external seal key, it is where the seal key comes from.
//!
//! Hugging Face tokens are sealed with random data keys ([`DataKey`]) that live in the
//! replicated keyring wrapped by the seal key ([`SealKey`], the key-encryption key), so
//! plaintext never reaches the Raft log, a snapshot or sled, and a key can be replaced.

mod cluster_key;
mod join_token;
mod seal;
mod seal_key;

use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use self::cluster_key::ClusterSecret;
pub use self::join_token::JoinToken;
pub use self::seal::{DataKey, SealedSecret};
pub use self::seal_key::{SealKey, SealKeySource, WrappedKey};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "join token is malformed: expected {}.<id>.<secret>.<CA fingerprint> \
         (from `helix cluster join-token create`)",
        join_token::PREFIX
    )]
    MalformedJoinToken,
    #[error(
        "this join token is from an older helix, which put the cluster key in it; create a \
         new one with `helix cluster join-token create`"
    )]
    OldJoinToken,
    #[error("cluster key is malformed (expected 64 hex digits)")]
    MalformedClusterKey,
    #[error(
        "seal key file {path}: {problem} (expected 64 hex digits; make one with \
         `openssl rand -hex 32`)"
    )]
    MalformedSealKey { path: String, problem: String },
    #[error("sealed secret cannot be opened with this key")]
    Unseal,
}

/// Compare two strings in time that depends only on their length.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// 32 random bytes from the operating system.
fn random_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A new API key: shown once to its owner, stored only as [`hash_api_key`].
pub fn generate_api_key() -> SecretString {
    SecretString::from(format!("hx_{}", hex::encode(random_key())))
}

/// The stored form of an API key (hex SHA-256). API keys are 256-bit random, so a plain hash
/// is enough; no salt or slow hash is needed.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A short random identifier (hex) for users, orgs and API keys.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
