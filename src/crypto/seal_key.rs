//! The seal key (the key-encryption key): it wraps the keyring's data keys, and nothing
//! else. Its id, a keyed hash of it, tells a node whether the key it holds is the one the
//! cluster's keyring was wrapped with, without revealing anything about the key.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::seal::{NONCE_LEN, TAG_LEN};
use super::{random_key, CryptoError, DataKey};

/// Where a node's seal key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealKeySource {
    /// Derived from the cluster key in the data dir (the default).
    DataDir,
    /// Read from a file outside the data dir (`--seal-key-file`, `HELIX_SEAL_KEY_FILE`).
    File(PathBuf),
}

impl std::fmt::Display for SealKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealKeySource::DataDir => f.write_str("derived from the cluster key in the data dir"),
            SealKeySource::File(path) => write!(f, "from {}", path.display()),
        }
    }
}

/// A node's seal key. Never logged: `Debug` prints its id only.
#[derive(Clone)]
pub struct SealKey {
    key: [u8; 32],
    source: SealKeySource,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({}, ***)", self.id())
    }
}

/// A data key encrypted with the seal key, as the replicated keyring holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Could this be a wrapped 32-byte key? `apply` cannot unwrap it, but can refuse junk.
    pub fn is_well_formed(&self) -> bool {
        self.nonce.len() == NONCE_LEN && self.ciphertext.len() == 32 + TAG_LEN
    }
}

impl SealKey {
    pub fn new(key: [u8; 32], source: SealKeySource) -> SealKey {
        SealKey { key, source }
    }

    /// Read a seal key file: 64 hex digits, surrounding whitespace ignored.
    pub fn from_file(path: &Path) -> Result<SealKey, CryptoError> {
        let malformed = |problem: String| CryptoError::MalformedSealKey {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|e| malformed(format!("cannot be read: {e}")))?;
        let text = text.expose_secret().trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(format!(
                "holds {} characters that are not a hex key",
                text.len()
            )));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(text, &mut key).expect("checked: 64 hex digits");
        Ok(SealKey::new(key, SealKeySource::File(path.to_path_buf())))
    }

    pub fn source(&self) -> &SealKeySource {
        &self.source
    }

    /// A public name for this key: 16 hex digits of a keyed hash.
    pub fn id(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"helix/v1/seal-key-id");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }

    /// A new random data key with this id, and its wrapped form for the keyring.
    pub fn new_data_key(&self, id: u32) -> (DataKey, WrappedKey) {
        let key = random_key();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key,
                    aad: wrap_aad(id).as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let data_key = DataKey::from_bytes(id, key);
        let wrapped = WrappedKey {
            nonce: nonce.to_vec(),
            ciphertext,
        };
        (data_key, wrapped)
    }

    /// The data key `id` from its wrapped form; fails unless this seal key wrapped it.
    pub fn unwrap_key(&self, id: u32, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        if !wrapped.is_well_formed() {
            return Err(CryptoError::Unseal);
        }
        let key = self
            .cipher()
            .decrypt(
                XNonce::from_slice(&wrapped.nonce),
                Payload {
                    msg: &wrapped.ciphertext,
                    aad: wrap_aad(id).as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        let key: [u8; 32] = key.try_into().map_err(|_| CryptoError::Unseal)?;
        Ok(DataKey::from_bytes(id, key))
    }
}

/// A wrapped key is bound to its id, so the keyring cannot be reshuffled.
fn wrap_aad(id: u32) -> String {
    format!("helix/v1/data-key/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_seal_key_and_id() {
        let seal = SealKey::new([1; 32], SealKeySource::DataDir);
        let (key, wrapped) = seal.new_data_key(3);
        assert!(wrapped.is_well_formed());
        let token = SecretString::from("hf_abc".to_string());
        let sealed = key.seal(&token, "system");
        let back = seal.unwrap_key(3, &wrapped).unwrap();
        assert_eq!(
            back.open(&sealed, "system").unwrap().expose_secret(),
            "hf_abc"
        );
        assert!(seal.unwrap_key(4, &wrapped).is_err());
        let other = SealKey::new([2; 32], SealKeySource::DataDir);
        assert!(other.unwrap_key(3, &wrapped).is_err());
        assert_ne!(seal.id(), other.id());
        assert!(!format!("{seal:?}").contains("0101"));
    }

    #[test]
    fn a_seal_key_file_must_be_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let key = SealKey::from_file(&path).unwrap();
        assert_eq!(key.source(), &SealKeySource::File(path.clone()));
        std::fs::write(&path, "not a key").unwrap();
        let error = SealKey::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("64 hex digits"), "{error}");
        let missing = SealKey::from_file(&dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");
    }
}
