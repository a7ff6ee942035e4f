//! The cluster secret and everything derived from it.
//!
//! One random 32-byte secret is created when a cluster bootstraps and handed to joining nodes
//! inside the join token. From it we derive, each bound to its purpose:
//! - the peer credential every Raft/peer request must present;
//! - the data key that seals Hugging Face tokens before they are proposed, so plaintext never
//!   reaches the Raft log, a snapshot or sled.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const JOIN_TOKEN_PREFIX: &str = "helix-join-v1-";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("join token is malformed (expected {JOIN_TOKEN_PREFIX}<64 hex digits>)")]
    MalformedJoinToken,
    #[error("sealed secret cannot be opened with this cluster's key")]
    Unseal,
}

/// The root secret of a cluster. Never logged: `Debug` prints `***`.
#[derive(Clone)]
pub struct ClusterSecret([u8; 32]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

impl ClusterSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ClusterSecret(bytes)
    }

    /// The join token carries the secret itself: whoever holds it may become a member.
    pub fn join_token(&self) -> String {
        format!("{JOIN_TOKEN_PREFIX}{}", hex::encode(self.0))
    }

    pub fn from_join_token(token: &str) -> Result<Self, CryptoError> {
        let hex_part = token
            .trim()
            .strip_prefix(JOIN_TOKEN_PREFIX)
            .ok_or(CryptoError::MalformedJoinToken)?;
        let bytes = hex::decode(hex_part).map_err(|_| CryptoError::MalformedJoinToken)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::MalformedJoinToken)?;
        Ok(ClusterSecret(bytes))
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"helix/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The bearer credential peers present to each other (hex).
    pub fn peer_credential(&self) -> String {
        hex::encode(self.derive("peer-credential"))
    }

    pub fn data_key(&self) -> DataKey {
        DataKey(XChaCha20Poly1305::new(
            &self.derive("hf-token-encryption").into(),
        ))
    }
}

/// A secret encrypted with the cluster's data key. This is the only form a token takes in
/// commands, the Raft log, snapshots and sled.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// Nonce length of XChaCha20-Poly1305.
const NONCE_LEN: usize = 24;
/// Poly1305's tag, which every ciphertext carries.
const TAG_LEN: usize = 16;

impl SealedSecret {
    /// Could this be a sealed token of at most `max_plaintext` bytes? Checked by `apply`,
    /// which cannot open it, so a forged command cannot store an arbitrary blob.
    pub fn is_well_formed(&self, max_plaintext: usize) -> bool {
        self.nonce.len() == NONCE_LEN
            && (TAG_LEN..=TAG_LEN + max_plaintext).contains(&self.ciphertext.len())
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(***)")
    }
}

/// AEAD key for Hugging Face tokens. The `scope` ("system", "org:ID", ...) is bound into the
/// ciphertext as associated data, so a sealed token cannot be replayed at another level.
#[derive(Clone)]
pub struct DataKey(XChaCha20Poly1305);

impl DataKey {
    pub fn seal(&self, plaintext: &SecretString, scope: &str) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad(scope).as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        SealedSecret {
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    pub fn open(&self, sealed: &SealedSecret, scope: &str) -> Result<SecretString, CryptoError> {
        if sealed.nonce.len() != NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad(scope).as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Unseal)?;
        Ok(SecretString::from(text))
    }
}

fn aad(scope: &str) -> String {
    format!("helix/v1/hf-token/{scope}")
}

/// A new API key: shown once to its owner, stored only as [`hash_api_key`].
pub fn generate_api_key() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("hx_{}", hex::encode(bytes)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_round_trips() {
        let s = ClusterSecret::generate();
        let back = ClusterSecret::from_join_token(&s.join_token()).unwrap();
        assert_eq!(s.peer_credential(), back.peer_credential());
        assert!(ClusterSecret::from_join_token("helix-join-v1-zz").is_err());
        assert!(ClusterSecret::from_join_token("nope").is_err());
    }

    #[test]
    fn sealed_token_opens_only_in_its_scope_and_hides_plaintext() {
        let key = ClusterSecret::generate().data_key();
        let token = SecretString::from("hf_secret_value_123".to_string());
        let sealed = key.seal(&token, "system");
        let bytes = serde_json::to_vec(&sealed).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("hf_secret_value_123"));
        assert_eq!(
            key.open(&sealed, "system").unwrap().expose_secret(),
            "hf_secret_value_123"
        );
        assert!(key.open(&sealed, "org:1").is_err());
        let other = ClusterSecret::generate().data_key();
        assert!(other.open(&sealed, "system").is_err());
        assert!(sealed.is_well_formed(token.expose_secret().len()));
        assert!(!sealed.is_well_formed(token.expose_secret().len() - 1));
    }
}
