//! Sealed secrets and the data keys that seal them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::CryptoError;

/// Nonce length of XChaCha20-Poly1305.
pub(super) const NONCE_LEN: usize = 24;
/// Poly1305's tag, which every ciphertext carries.
pub(super) const TAG_LEN: usize = 16;

/// A secret encrypted with a data key. This is the only form a token takes in commands, the
/// Raft log, snapshots and sled.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Wire", into = "Wire")]
pub struct SealedSecret {
    /// The keyring key that sealed it; 0 for the keys derived from the cluster key.
    key: u32,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// How a sealed secret is stored: the two fields it had before keys had ids. A keyring key's
/// id rides in front of the nonce, so values stored before the keyring read as key 0.
#[derive(Serialize, Deserialize)]
struct Wire {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl From<Wire> for SealedSecret {
    fn from(wire: Wire) -> Self {
        let (key, nonce) = match wire.nonce.len() {
            len if len == 4 + NONCE_LEN => {
                let (id, nonce) = wire.nonce.split_at(4);
                let id = u32::from_be_bytes(id.try_into().expect("4 bytes"));
                (id, nonce.to_vec())
            }
            // Key 0, or malformed: `is_well_formed` says which.
            _ => (0, wire.nonce),
        };
        SealedSecret {
            key,
            nonce,
            ciphertext: wire.ciphertext,
        }
    }
}

impl From<SealedSecret> for Wire {
    fn from(sealed: SealedSecret) -> Self {
        let nonce = if sealed.key == 0 {
            sealed.nonce
        } else {
            [&sealed.key.to_be_bytes()[..], &sealed.nonce].concat()
        };
        Wire {
            nonce,
            ciphertext: sealed.ciphertext,
        }
    }
}

impl SealedSecret {
    /// The id of the data key that opens it.
    pub fn key_id(&self) -> u32 {
        self.key
    }

    /// Could this be a sealed token of at most `max_plaintext` bytes? Checked by `apply`,
    /// which cannot open it, so a forged command cannot store an arbitrary blob.
    pub fn is_well_formed(&self, max_plaintext: usize) -> bool {
        self.nonce.len() == NONCE_LEN
            && (TAG_LEN..=TAG_LEN + max_plaintext).contains(&self.ciphertext.len())
    }

    /// The raw ciphertext, for tests that look for it where it must not be.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(key {}, ***)", self.key)
    }
}

/// An AEAD key for secrets. The `scope` ("system", "org:ID", ...) is bound into the
/// ciphertext as associated data, so a sealed token cannot be replayed at another level.
#[derive(Clone)]
pub struct DataKey {
    id: u32,
    cipher: XChaCha20Poly1305,
    /// Authenticates gossip datagrams while this key is the keyring's current one.
    gossip: [u8; 32],
}

impl DataKey {
    /// A data key from its raw bytes (unwrapped from the keyring, derived from the cluster
    /// key, or a candidate tried by the test that looks for keys left in files).
    pub fn from_bytes(id: u32, bytes: [u8; 32]) -> DataKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("any key length");
        mac.update(b"helix/v1/gossip");
        DataKey {
            id,
            cipher: XChaCha20Poly1305::new(&bytes.into()),
            gossip: mac.finalize().into_bytes().into(),
        }
    }

    /// The key that authenticates gossip: derived from this data key, so only members that
    /// open the keyring hold it, and a keyring rotation replaces it.
    pub fn gossip_key(&self) -> [u8; 32] {
        self.gossip
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn seal(&self, plaintext: &SecretString, scope: &str) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad(scope).as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        SealedSecret {
            key: self.id,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    pub fn open(&self, sealed: &SealedSecret, scope: &str) -> Result<SecretString, CryptoError> {
        if sealed.nonce.len() != NONCE_LEN || sealed.key != self.id {
            return Err(CryptoError::Unseal);
        }
        let plain = self
            .cipher
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ClusterSecret, SealKey, SealKeySource};

    #[test]
    fn sealed_token_opens_only_in_its_scope_and_hides_plaintext() {
        let key = ClusterSecret::generate().legacy_data_key();
        let token = SecretString::from("hf_secret_value_123".to_string());
        let sealed = key.seal(&token, "system");
        let bytes = serde_json::to_vec(&sealed).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("hf_secret_value_123"));
        assert_eq!(
            key.open(&sealed, "system").unwrap().expose_secret(),
            "hf_secret_value_123"
        );
        assert!(key.open(&sealed, "org:1").is_err());
        let other = ClusterSecret::generate().legacy_data_key();
        assert!(other.open(&sealed, "system").is_err());
        assert!(sealed.is_well_formed(token.expose_secret().len()));
        assert!(!sealed.is_well_formed(token.expose_secret().len() - 1));
    }

    #[test]
    fn a_keyring_key_id_survives_storage_and_key_zero_keeps_the_old_form() {
        let seal_key = SealKey::new([7; 32], SealKeySource::DataDir);
        let (key, _) = seal_key.new_data_key(42);
        let token = SecretString::from("hf_x".to_string());
        let sealed = key.seal(&token, "system");
        let stored = crate::state::codec::encode(&sealed);
        let back: SealedSecret = crate::state::codec::decode(&stored).unwrap();
        assert_eq!(back.key_id(), 42);
        assert_eq!(key.open(&back, "system").unwrap().expose_secret(), "hf_x");

        let legacy = ClusterSecret::generate().legacy_data_key();
        let old = legacy.seal(&token, "system");
        let wire: Wire = old.clone().into();
        assert_eq!(
            wire.nonce.len(),
            NONCE_LEN,
            "key 0 is stored as before keyrings"
        );
        let back: SealedSecret =
            crate::state::codec::decode(&crate::state::codec::encode(&old)).unwrap();
        assert_eq!(back, old);
    }
}
