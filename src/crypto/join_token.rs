//! Join tokens: what admits a new node, checked against the cluster CA before it is sent.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::CryptoError;

pub(super) const PREFIX: &str = "helix-join";
const OLD_PREFIX: &str = "helix-join-v1-";

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
        if text.starts_with(OLD_PREFIX) {
            return Err(CryptoError::OldJoinToken);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let is_hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            [PREFIX, id, secret, fingerprint]
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
            "{PREFIX}.{}.{}.{fingerprint}",
            self.id,
            self.secret.expose_secret()
        ))
    }

    /// What the cluster stores and compares: hex SHA-256 of the secret part.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.expose_secret().as_bytes()))
    }
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
    }
}
