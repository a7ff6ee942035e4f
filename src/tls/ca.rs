//! The cluster CA: made once at bootstrap, it signs each node's certificate.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ::time::OffsetDateTime;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, DnsName};
use secrecy::{ExposeSecret, SecretString};

use super::NODE_NAME_DOMAIN;
use super::{fingerprint_of_der, leaf_info, node_dns_name, one_cert_from_pem, TlsError};

const CA_COMMON_NAME: &str = "helix cluster CA";
const CA_LIFETIME: ::time::Duration = ::time::Duration::days(3652);
/// Certificates start this long before they are made, so a peer whose clock is a little
/// behind the signer's accepts them at once.
pub(super) const CLOCK_SKEW: ::time::Duration = ::time::Duration::minutes(5);

pub struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    /// The CA as rcgen signs with it: its name, key identifier and key usages.
    issuer: rcgen::Certificate,
    key: KeyPair,
}

/// What a signer decides about a node certificate; the CSR only contributes the public key.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub node_id: u64,
    /// Extra names for the certificate: IP literals become IP SANs, others DNS SANs.
    pub names: Vec<String>,
    pub lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub not_after_ms: i64,
}

impl ClusterCa {
    pub fn generate(now_ms: i64) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(sign_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(CA_COMMON_NAME);
        // Path length 0: node certificates can never sign further certificates.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let now = datetime(now_ms)?;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_LIFETIME;
        let issuer = params.self_signed(&key).map_err(sign_error)?;
        Ok(ClusterCa {
            cert_pem: issuer.pem(),
            cert_der: issuer.der().clone(),
            issuer,
            key,
        })
    }

    /// The CA as stored: its certificate and the matching private key.
    pub fn from_pem(cert_pem: &str, key_pem: &SecretString) -> Result<ClusterCa, TlsError> {
        let cert_der = one_cert_from_pem(cert_pem, "CA certificate")?;
        let key = KeyPair::from_pem(key_pem.expose_secret())
            .map_err(|e| TlsError::BadKey(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| TlsError::BadCert(e.to_string()))?;
        if !cert.is_ca() {
            return Err(TlsError::NotCa);
        }
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(TlsError::KeyMismatch);
        }
        // rcgen signs with a Certificate; rebuilt from the stored one it carries the same
        // subject name and key identifier, so what it signs chains to the stored certificate.
        let issuer = CertificateParams::from_ca_cert_der(&cert_der)
            .and_then(|params| params.self_signed(&key))
            .map_err(|e| TlsError::BadCert(format!("the CA certificate cannot sign: {e}")))?;
        Ok(ClusterCa {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> SecretString {
        SecretString::from(self.key.serialize_pem())
    }

    pub fn fingerprint(&self) -> String {
        fingerprint_of_der(&self.cert_der)
    }

    /// Signs the CSR's public key into a certificate for `request.node_id`. Whatever subject
    /// or names the CSR asks for are ignored: the identity is the signer's decision.
    pub fn sign(
        &self,
        csr_pem: &str,
        request: &CertRequest,
        now_ms: i64,
    ) -> Result<IssuedCert, TlsError> {
        // Parsing also checks the CSR's signature: the requester holds the private key.
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| TlsError::BadCsr(e.to_string()))?;
        if request.lifetime.is_zero() {
            return Err(TlsError::Sign("the certificate lifetime is zero".into()));
        }
        let node_name = node_dns_name(request.node_id);
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&node_name);
        params.subject_alt_names = subject_alt_names(&node_name, &request.names)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // One certificate serves both ends of the peer protocol and the API port.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let now = datetime(now_ms)?;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = ::time::Duration::try_from(request.lifetime)
            .ok()
            .and_then(|lifetime| now.checked_add(lifetime))
            .ok_or_else(|| TlsError::Sign("the certificate lifetime is too long".into()))?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer, &self.key)
            .map_err(sign_error)?;
        let info = leaf_info(cert.der())?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            serial: info.serial,
            not_after_ms: info.not_after_ms,
        })
    }
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// 128 random bits; rcgen encodes them as a positive integer.
fn random_serial() -> SerialNumber {
    SerialNumber::from_slice(&rand::random::<[u8; 16]>())
}

fn datetime(ms: i64) -> Result<OffsetDateTime, TlsError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| TlsError::Sign(format!("time {ms} ms is out of range: {e}")))
}

fn sign_error(e: rcgen::Error) -> TlsError {
    TlsError::Sign(e.to_string())
}

/// The node's own name first, then each extra name once.
fn subject_alt_names(node_name: &str, extra: &[String]) -> Result<Vec<SanType>, TlsError> {
    let mut sans = vec![dns_san(node_name.to_owned())?];
    for name in extra {
        let san = extra_san(name)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn extra_san(name: &str) -> Result<SanType, TlsError> {
    let refuse = |reason| TlsError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.contains('*') {
        return Err(refuse("wildcard names are not allowed"));
    }
    // webpki refuses presented names that end in a dot.
    if name.ends_with('.') || DnsName::try_from(name).is_err() {
        return Err(refuse("not a valid DNS name or IP address"));
    }
    let name = name.to_ascii_lowercase();
    if name == NODE_NAME_DOMAIN || name.ends_with(&format!(".{NODE_NAME_DOMAIN}")) {
        return Err(refuse(
            "names under .helix are reserved for node identities",
        ));
    }
    dns_san(name)
}

fn dns_san(name: String) -> Result<SanType, TlsError> {
    let ia5 = name.clone().try_into().map_err(|_| TlsError::BadName {
        name,
        reason: "not an ASCII name",
    })?;
    Ok(SanType::DnsName(ia5))
}
