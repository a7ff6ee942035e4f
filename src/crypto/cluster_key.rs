//! The cluster key: the root secret every member keeps in its data dir.

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;

use super::{random_key, CryptoError, DataKey, SealKey, SealKeySource};

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
        ClusterSecret(random_key())
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

    /// The seal key of a cluster that was given no external one: it lives wherever the
    /// cluster key does, so a copy of a data dir opens every token.
    pub fn seal_key(&self) -> SealKey {
        SealKey::new(self.derive("seal-key"), SealKeySource::DataDir)
    }

    /// The key that sealed tokens before clusters had a keyring (key 0). They stay readable
    /// until the first `keyring rotate` re-seals them with a keyring key.
    pub fn legacy_data_key(&self) -> DataKey {
        DataKey::from_bytes(0, self.derive("hf-token-encryption"))
    }

    /// Seals the cluster CA's private key in the replicated state.
    pub fn ca_key_sealer(&self) -> DataKey {
        DataKey::from_bytes(0, self.derive("ca-key-encryption"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn cluster_key_round_trips_through_hex() {
        let key = ClusterSecret::generate();
        let back = ClusterSecret::from_hex(key.to_hex().expose_secret()).unwrap();
        assert_eq!(back.0, key.0);
        assert!(ClusterSecret::from_hex("nope").is_err());
        assert_eq!(back.seal_key().id(), key.seal_key().id());
    }
}
