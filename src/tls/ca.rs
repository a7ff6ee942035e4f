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

use super::{
    fingerprint_of_der, leaf_info, node_dns_name, one_cert_from_pem, TlsError, NODE_NAME_DOMAIN,
};

const CA_COMMON_NAME: &str = "helix cluster CA";
const CA_LIFETIME: Duration = Duration::from_secs(3652 * 86_400);
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
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::KeyGen(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(CA_COMMON_NAME);
        // Path length 0: node certificates can never sign further certificates.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = validity(now_ms, CA_LIFETIME)?;
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
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            TlsError::BadCsr(match e {
                rcgen::Error::RingUnspecified => "its signature does not match its key".into(),
                other => other.to_string(),
            })
        })?;
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
        (params.not_before, params.not_after) = validity(now_ms, request.lifetime)?;
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

/// From `CLOCK_SKEW` before `now_ms` until `lifetime` after it.
fn validity(now_ms: i64, lifetime: Duration) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    let out_of_range = || {
        TlsError::Sign(format!(
            "a validity of {lifetime:?} from {now_ms} ms is out of range"
        ))
    };
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .map_err(|_| out_of_range())?;
    let lifetime = ::time::Duration::try_from(lifetime).map_err(|_| out_of_range())?;
    let not_before = now.checked_sub(CLOCK_SKEW).ok_or_else(out_of_range)?;
    let not_after = now.checked_add(lifetime).ok_or_else(out_of_range)?;
    Ok((not_before, not_after))
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

#[cfg(test)]
mod tests {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateSigningRequestDer;
    use x509_parser::extensions::GeneralName;

    use super::super::tests::{identity, issue, now, request, DAY};
    use super::super::{NodeIdentity, NodeKey};
    use super::*;

    #[test]
    fn a_new_ca_is_a_ten_year_ca_that_signs_only_leaves() {
        let ca = ClusterCa::generate(now()).unwrap();
        let der = super::super::certs_from_pem(ca.cert_pem(), "CA")
            .unwrap()
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign());
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "helix cluster CA");
        let years = (cert.validity().not_after.timestamp() - now() / 1000) / (365 * 86_400);
        assert_eq!(years, 10);
    }

    #[test]
    fn a_stored_ca_round_trips_and_still_signs_for_its_nodes() {
        let ca = ClusterCa::generate(now()).unwrap();
        let restored = ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(restored.cert_pem(), ca.cert_pem());
        assert_eq!(restored.fingerprint(), ca.fingerprint());
        assert_eq!(
            restored.key_pem().expose_secret(),
            ca.key_pem().expose_secret()
        );
        // Nodes hold the original certificate: what the restored CA signs must chain to it.
        let (key, issued) = issue(&restored, 4, &[]);
        let node = NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem()).unwrap();
        assert_eq!(node.node_id(), 4);
    }

    #[test]
    fn a_stored_ca_must_be_a_ca_with_its_own_key() {
        let ca = ClusterCa::generate(now()).unwrap();
        let other = ClusterCa::generate(now()).unwrap();
        let err = ClusterCa::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch), "{err}");
        let (key, issued) = issue(&ca, 1, &[]);
        let err = ClusterCa::from_pem(&issued.cert_pem, &key.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NotCa), "{err}");
        let err = ClusterCa::from_pem("", &ca.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NoPem { .. }), "{err}");
    }

    #[test]
    fn the_signer_decides_the_names_whatever_the_csr_asks() {
        let ca = ClusterCa::generate(now()).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut asked =
            CertificateParams::new(vec!["node-9.helix".into(), "evil.example".into()]).unwrap();
        asked.distinguished_name = common_name("node-9.helix");
        let csr = asked.serialize_request(&key).unwrap().pem().unwrap();

        let names = ["10.0.0.5", "DB.example.com", "db.example.com", "::1"];
        let issued = ca.sign(&csr, &request(3, &names), now()).unwrap();

        let der = super::super::certs_from_pem(&issued.cert_pem, "cert")
            .unwrap()
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(ip) => format!("ip {ip:?}"),
                other => panic!("unexpected name {other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            [
                "node-3.helix",
                "ip [10, 0, 0, 5]",
                "db.example.com",
                &format!(
                    "ip {:?}",
                    [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
                )
            ]
        );
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "node-3.helix");
        let usage = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(usage.server_auth && usage.client_auth);
        assert!(!cert.is_ca());
    }

    #[test]
    fn each_certificate_gets_a_fresh_128_bit_serial_and_the_requested_lifetime() {
        let ca = ClusterCa::generate(now()).unwrap();
        let at = now();
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_pem().unwrap();
        let first = ca.sign(&csr, &request(1, &[]), at).unwrap();
        let second = ca.sign(&csr, &request(1, &[]), at).unwrap();
        assert_ne!(first.serial, second.serial);
        for issued in [&first, &second] {
            assert!(
                issued.serial.len() <= 32 && issued.serial.len() >= 2,
                "{}",
                issued.serial
            );
            assert_eq!(
                issued.not_after_ms,
                (at / 1000) * 1000 + DAY.as_millis() as i64
            );
        }
    }

    #[test]
    fn bad_names_are_refused_by_name() {
        let ca = ClusterCa::generate(now()).unwrap();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        for bad in [
            "",
            "*.example.com",
            "a.*.example",
            "exa mple.com",
            "-bad.example",
            "example.com.",
            "999.1.1.1",
            "[::1]",
            "node-4.helix",
            "x.HELIX",
            "helix",
            "bücher.example",
        ] {
            match ca.sign(&csr, &request(1, &[bad]), now()) {
                Err(TlsError::BadName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_request_needs_a_csr_signed_by_its_key_and_a_sane_validity() {
        let ca = ClusterCa::generate(now()).unwrap();
        let err = ca.sign("not a csr", &request(1, &[]), now()).unwrap_err();
        assert!(matches!(err, TlsError::BadCsr(_)), "{err}");

        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        let mut der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        *der.last_mut().unwrap() ^= 1; // the signature no longer matches
        let forged = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        let err = ca.sign(&forged, &request(1, &[]), now()).unwrap_err();
        assert!(
            err.to_string().contains("signature does not match"),
            "{err}"
        );

        let mut zero = request(1, &[]);
        zero.lifetime = Duration::ZERO;
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        assert!(matches!(
            ca.sign(&csr, &zero, now()),
            Err(TlsError::Sign(_))
        ));
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let ca = ClusterCa::generate(now()).unwrap();
        let node = identity(&ca, 1, &[]);
        let key = NodeKey::generate().unwrap();
        for debug in [format!("{ca:?}"), format!("{node:?}"), format!("{key:?}")] {
            assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        }
        assert!(format!("{ca:?}").contains(&ca.fingerprint()));
    }
}
