//! Certificates and rustls configurations for TLS between nodes and on the API.
//!
//! One cluster CA (ECDSA P-256, made at bootstrap) signs every node's certificate. The DNS
//! name `node-<id>.helix` in a node certificate is the only source of a node's identity. The
//! same node certificate serves the peer port (mTLS in both directions) and the API port.
//! Every config uses the ring provider explicitly (never a process-wide default) and offers
//! ALPN `http/1.1`, since both ends speak hyper http1; the peer port also offers
//! `helix-raft/1`, its framed protocol for Raft's messages (`peer/frame.rs`).

mod ca;
mod config;
mod identity;
#[cfg(test)]
mod tests;
mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use ca::{CertRequest, ClusterCa, IssuedCert};
pub use config::{
    api_server_config, ca_client_config, peer_client_config, peer_link_client_config,
    peer_server_config, pinned_client_config, PEER_LINK_ALPN,
};
pub use identity::{leaf_info, LeafInfo, NodeIdentity, NodeKey};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no {what} found in the PEM text")]
    NoPem { what: &'static str },
    #[error("malformed PEM for the {what}: {detail}")]
    BadPem { what: &'static str, detail: String },
    #[error("malformed certificate: {0}")]
    BadCert(String),
    #[error("malformed or unsupported private key: {0}")]
    BadKey(String),
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
    #[error("name {name:?} refused: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("the CA certificate is not a CA (no CA basic constraint)")]
    NotCa,
    #[error("signing the certificate failed: {0}")]
    Sign(String),
    #[error("making the key or its signing request failed: {0}")]
    KeyGen(String),
    #[error("the certificate is not signed by the cluster CA: {0}")]
    NotSignedByCa(String),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("the certificate names no node (it needs exactly one DNS name node-<id>.helix)")]
    NoNodeName,
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("fingerprint {0:?} is not \"sha256:\" followed by 64 lowercase hex digits")]
    FingerprintFormat(String),
}

const NODE_NAME_PREFIX: &str = "node-";
/// Node names live under this domain; signers refuse other names in it.
const NODE_NAME_DOMAIN: &str = "helix";

/// The DNS name that makes a certificate node `node_id`'s.
pub fn node_dns_name(node_id: u64) -> String {
    format!("{NODE_NAME_PREFIX}{node_id}.{NODE_NAME_DOMAIN}")
}

/// The node id a DNS name stands for, only in its canonical spelling ("node-07.helix" is not
/// node 7), so one id has exactly one name.
fn node_id_of_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(NODE_NAME_PREFIX)?
        .strip_suffix(NODE_NAME_DOMAIN)?
        .strip_suffix('.')?;
    let id: u64 = digits.parse().ok()?;
    (node_dns_name(id) == name).then_some(id)
}

/// "sha256:" + lowercase hex SHA-256 of the first certificate's DER.
pub fn fingerprint_of_pem(cert_pem: &str) -> Result<String, TlsError> {
    let first = certs_from_pem(cert_pem, "certificate")?.swap_remove(0);
    Ok(fingerprint_of_der(&first))
}

pub fn valid_fingerprint(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn fingerprint_of_der(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Every certificate in the PEM text, in order; at least one.
fn certs_from_pem(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem { what });
    }
    Ok(certs)
}

/// The PEM text's only certificate: a chain where one is expected is a mistake to report.
fn one_cert_from_pem(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, TlsError> {
    let mut certs = certs_from_pem(pem, what)?;
    if certs.len() != 1 {
        return Err(TlsError::BadPem {
            what,
            detail: format!("expected one certificate, found {}", certs.len()),
        });
    }
    Ok(certs.swap_remove(0))
}

fn key_from_pem(key_pem: &SecretString) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The parser's error could quote the text; a key's text must not reach logs.
    PrivateKeyDer::from_pem_slice(key_pem.expose_secret().as_bytes())
        .map_err(|_| TlsError::BadKey("no PEM private key (PKCS#8, SEC1 or PKCS#1) found".into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
