//! The cluster key, join tokens, and the sealing of secrets.
//!
//! One random 32-byte cluster key is created when a cluster bootstraps and kept by every
//! member (`cluster.key`, 0600). A joining node gets it only over mutual TLS, after the
//! leader admitted it with a join token: nothing a joining node is handed derives it. From
//! it we derive, each bound to its purpose, the key that seals Hugging Face tokens before
//! they are proposed (so plaintext never reaches the Raft log, a snapshot or sled), and the
//! key that seals the cluster CA's private key in the replicated state.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const JOIN_TOKEN_PREFIX: &str = "helix-join";
const OLD_JOIN_TOKEN_PREFIX: &str = "helix-join-v1-";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "join token is malformed: expected {JOIN_TOKEN_PREFIX}.<id>.<secret>.<CA fingerprint> \
         (from `helix cluster join-token create`)"
    )]
    MalformedJoinToken,
    #[error(
        "this join token is from an older helix, which put the cluster key in it; create a \
         new one with `helix cluster join-token create`"
    )]
    OldJoinToken,
    #[error("cluster key is malformed (expected 64 hex digits)")]
    MalformedClusterKey,
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

    /// The form kept in the data dir and sent to an admitted node (over mTLS only).
    pub fn to_hex(&self) -> SecretString {
        SecretString::from(hex::encode(self.0))
    }

    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(text.trim()).map_err(|_| CryptoError::MalformedClusterKey)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::MalformedClusterKey)?;
        Ok(ClusterSecret(bytes))
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"helix/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn data_key(&self) -> DataKey {
        DataKey(XChaCha20Poly1305::new(
            &self.derive("hf-token-encryption").into(),
        ))
    }

    /// Seals the cluster CA's private key in the replicated state.
    pub fn ca_key_sealer(&self) -> DataKey {
        DataKey(XChaCha20Poly1305::new(
            &self.derive("ca-key-encryption").into(),
        ))
    }
}

/// A join token: `helix-join.<id>.<secret>.<CA fingerprint hex>`. The cluster stores only
/// the hash of the secret; the fingerprint lets the joining node check the cluster's
/// certificate before it sends anything.
pub struct JoinToken {
    pub id: String,
    secret: SecretString,
    /// `sha256:<hex>` of the cluster CA's certificate.
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinToken({}, ***)", self.id)
    }
}

impl JoinToken {
    pub fn generate(ca_fingerprint: &str) -> JoinToken {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        JoinToken {
            id: hex::encode(id),
            secret: SecretString::from(hex::encode(secret)),
            ca_fingerprint: ca_fingerprint.to_string(),
        }
    }

    pub fn parse(text: &str) -> Result<JoinToken, CryptoError> {
        let text = text.trim();
        if text.starts_with(OLD_JOIN_TOKEN_PREFIX) {
            return Err(CryptoError::OldJoinToken);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let is_hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            [JOIN_TOKEN_PREFIX, id, secret, fingerprint]
                if is_hex(id, 16) && is_hex(secret, 32) && is_hex(fingerprint, 64) =>
            {
                Ok(JoinToken {
                    id: id.to_ascii_lowercase(),
                    secret: SecretString::from(secret.to_ascii_lowercase()),
                    ca_fingerprint: format!("sha256:{}", fingerprint.to_ascii_lowercase()),
                })
            }
            _ => Err(CryptoError::MalformedJoinToken),
        }
    }

    /// The whole token, to show once to whoever created it.
    pub fn reveal(&self) -> SecretString {
        let fingerprint = self
            .ca_fingerprint
            .strip_prefix("sha256:")
            .unwrap_or(&self.ca_fingerprint);
        SecretString::from(format!(
            "{JOIN_TOKEN_PREFIX}.{}.{}.{fingerprint}",
            self.id,
            self.secret.expose_secret()
        ))
    }

    /// What the cluster stores and compares: hex SHA-256 of the secret part.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.expose_secret().as_bytes()))
    }
}

/// Compare two strings in time that depends only on their length.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
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
    fn join_token_round_trips_and_names_what_is_wrong() {
        let fingerprint = format!("sha256:{}", "ab".repeat(32));
        let token = JoinToken::generate(&fingerprint);
        let back = JoinToken::parse(token.reveal().expose_secret()).unwrap();
        assert_eq!(back.id, token.id);
        assert_eq!(back.ca_fingerprint, fingerprint);
        assert_eq!(back.secret_hash(), token.secret_hash());
        assert!(!format!("{token:?}").contains(&token.secret_hash()[..8]));
        assert!(matches!(
            JoinToken::parse(&format!("helix-join-v1-{}", "00".repeat(32))),
            Err(CryptoError::OldJoinToken)
        ));
        assert!(matches!(
            JoinToken::parse("helix-join.zz.yy.xx"),
            Err(CryptoError::MalformedJoinToken)
        ));
        let key = ClusterSecret::generate();
        let back = ClusterSecret::from_hex(key.to_hex().expose_secret()).unwrap();
        assert_eq!(back.0, key.0);
        assert!(ClusterSecret::from_hex("nope").is_err());
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
