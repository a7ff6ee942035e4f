//! A node's own key and certificate, and what a certificate says about its holder.

use std::fmt;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use secrecy::{ExposeSecret, SecretString};
use x509_parser::extensions::GeneralName;

use super::{key_from_pem, node_id_of_name, one_cert_from_pem, verify, TlsError};

/// A node's private key; it never leaves the node, only its CSR does.
pub struct NodeKey {
    key: KeyPair,
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::KeyGen(e.to_string()))?;
        Ok(NodeKey { key })
    }

    /// A CSR carrying only the public key: the signer decides the names.
    pub fn csr_pem(&self) -> Result<String, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "helix node");
        params
            .serialize_request(&self.key)
            .and_then(|csr| csr.pem())
            .map_err(|e| TlsError::KeyGen(e.to_string()))
    }

    pub fn key_pem(&self) -> SecretString {
        SecretString::from(self.key.serialize_pem())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafInfo {
    /// From the one DNS name `node-<id>.helix`; none if it has no such name, or several.
    pub node_id: Option<u64>,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
}

impl LeafInfo {
    /// When to renew: two thirds into the certificate's life, counted from when it was
    /// issued (the signer backdates not-before by its clock-skew allowance).
    pub fn renew_at_ms(&self) -> i64 {
        let skew = super::ca::CLOCK_SKEW.whole_milliseconds() as i64;
        let issued = (self.not_before_ms + skew).min(self.not_after_ms);
        issued + (self.not_after_ms - issued) * 2 / 3
    }
}

pub fn leaf_info(der: &[u8]) -> Result<LeafInfo, TlsError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::BadCert(e.to_string()))?;
    if !rest.is_empty() {
        return Err(TlsError::BadCert(
            "trailing bytes after the certificate".into(),
        ));
    }
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCert(e.to_string()))?;
    let node_ids: Vec<u64> = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => node_id_of_name(dns),
            _ => None,
        })
        .collect();
    let validity = cert.validity();
    Ok(LeafInfo {
        node_id: match node_ids.as_slice() {
            [id] => Some(*id),
            _ => None,
        },
        serial: hex::encode(cert.tbs_certificate.serial.to_bytes_be()),
        not_before_ms: validity.not_before.timestamp() * 1000,
        not_after_ms: validity.not_after.timestamp() * 1000,
    })
}

/// What a node holds: the CA cert, its own cert and private key.
#[derive(Clone)]
pub struct NodeIdentity {
    ca_pem: String,
    cert_pem: String,
    key_pem: SecretString,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    info: LeafInfo,
    node_id: u64,
}

impl NodeIdentity {
    /// Checks the cert is signed by the CA, matches the key, and names a node.
    pub fn new(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: SecretString,
    ) -> Result<NodeIdentity, TlsError> {
        let ca_der = one_cert_from_pem(ca_pem, "CA certificate")?;
        let cert_der = one_cert_from_pem(cert_pem, "node certificate")?;
        let info = leaf_info(&cert_der)?;
        let node_id = info.node_id.ok_or(TlsError::NoNodeName)?;
        let key = KeyPair::from_pem(key_pem.expose_secret())
            .map_err(|e| TlsError::BadKey(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| TlsError::BadCert(e.to_string()))?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(TlsError::KeyMismatch);
        }
        // Judged at the first moment both certificates are valid, so a loaded identity whose
        // certificate has expired still loads (renewal needs it); handshakes judge expiry.
        let ca_info = leaf_info(&ca_der)?;
        let at_ms = info.not_before_ms.max(ca_info.not_before_ms);
        let at =
            UnixTime::since_unix_epoch(Duration::from_millis(u64::try_from(at_ms).unwrap_or(0)));
        verify::check_node_cert(&ca_der, &cert_der, node_id, at)?;
        Ok(NodeIdentity {
            ca_pem: ca_pem.to_owned(),
            cert_pem: cert_pem.to_owned(),
            key_pem,
            ca_der,
            cert_der,
            info,
            node_id,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn info(&self) -> &LeafInfo {
        &self.info
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &SecretString {
        &self.key_pem
    }

    /// The certificate and the private key in one PEM text, as a node keeps them (one file,
    /// so a renewal replaces both at once).
    pub fn node_pem(&self) -> SecretString {
        SecretString::from(format!(
            "{}\n{}",
            self.cert_pem.trim(),
            self.key_pem.expose_secret().trim()
        ))
    }

    /// An identity from the CA certificate and a [`NodeIdentity::node_pem`] text.
    pub fn from_node_pem(ca_pem: &str, node_pem: &str) -> Result<NodeIdentity, TlsError> {
        let split = node_pem
            .find("-----BEGIN PRIVATE KEY-----")
            .ok_or(TlsError::NoPem {
                what: "private key",
            })?;
        let (cert_pem, key_pem) = node_pem.split_at(split);
        NodeIdentity::new(ca_pem, cert_pem, SecretString::from(key_pem.to_string()))
    }

    pub(super) fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// What the node presents: its certificate, then the CA's.
    pub(super) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone(), self.ca_der.clone()]
    }

    pub(super) fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        key_from_pem(&self.key_pem)
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{identity, issue, now, DAY};
    use super::super::{CertRequest, ClusterCa};
    use super::*;

    /// `leaf_info` of the first certificate in the PEM text.
    fn leaf_info_pem(pem: &str) -> Result<LeafInfo, TlsError> {
        let first = super::super::certs_from_pem(pem, "certificate")?.swap_remove(0);
        leaf_info(&first)
    }

    #[test]
    fn leaf_info_reads_the_node_id_serial_and_validity() {
        let ca = ClusterCa::generate(now()).unwrap();
        let (_, issued) = issue(&ca, 12, &["10.1.2.3"]);
        let info = leaf_info_pem(&issued.cert_pem).unwrap();
        assert_eq!(info.node_id, Some(12));
        assert_eq!(info.serial, issued.serial);
        assert_eq!(info.not_after_ms, issued.not_after_ms);
        assert_eq!(
            info.not_after_ms - info.not_before_ms,
            DAY.as_millis() as i64 + 5 * 60_000
        );
        let der = &super::super::certs_from_pem(&issued.cert_pem, "cert").unwrap()[0];
        assert_eq!(leaf_info(der).unwrap().node_id, Some(12));
        assert_eq!(leaf_info_pem(ca.cert_pem()).unwrap().node_id, None);
        assert!(matches!(leaf_info(b"junk"), Err(TlsError::BadCert(_))));
    }

    #[test]
    fn an_identity_holds_a_node_certificate_from_its_ca_with_its_key() {
        let ca = ClusterCa::generate(now()).unwrap();
        let node = identity(&ca, 5, &[]);
        assert_eq!(node.node_id(), 5);
        assert_eq!(node.info().node_id, Some(5));
        assert_eq!(node.ca_pem(), ca.cert_pem());

        let other = ClusterCa::generate(now()).unwrap();
        let (key, foreign) = issue(&other, 5, &[]);
        let err = NodeIdentity::new(ca.cert_pem(), &foreign.cert_pem, key.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NotSignedByCa(_)), "{err}");

        let stranger = NodeKey::generate().unwrap();
        let err =
            NodeIdentity::new(ca.cert_pem(), node.cert_pem(), stranger.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch), "{err}");

        let err = NodeIdentity::new(ca.cert_pem(), ca.cert_pem(), ca.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NoNodeName), "{err}");

        let chain = format!("{}{}", node.cert_pem(), ca.cert_pem());
        let err = NodeIdentity::new(ca.cert_pem(), &chain, node.key_pem().clone()).unwrap_err();
        assert!(matches!(err, TlsError::BadPem { .. }), "{err}");
    }

    #[test]
    fn an_expired_certificate_still_loads_for_renewal() {
        let three_days_ago = now() - 3 * DAY.as_millis() as i64;
        let ca = ClusterCa::generate(three_days_ago).unwrap();
        let key = NodeKey::generate().unwrap();
        let request = CertRequest {
            node_id: 8,
            names: vec![],
            lifetime: DAY,
        };
        let issued = ca
            .sign(&key.csr_pem().unwrap(), &request, three_days_ago)
            .unwrap();
        let node = NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem()).unwrap();
        assert!(node.info().not_after_ms < now());
    }
}
