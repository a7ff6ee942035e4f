//! The rules for the trust records' commands: the CA, join tokens, issued certificates.

use super::invalid;
use crate::state::trust::{CaRecord, IssuedCertificate};
use crate::state::StateError;

/// The longest a join token may admit nodes: a year.
pub(super) const JOIN_TOKEN_TTL_MAX_MS: i64 = 365 * 24 * 3600 * 1000;
/// A CA certificate is a few hundred bytes; this only bounds a forged one.
const CA_PEM_MAX: usize = 16 * 1024;
/// The sealed CA key holds a PKCS#8 PEM of a few hundred bytes.
const CA_KEY_PEM_MAX: usize = 8 * 1024;

fn lower_hex(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

pub(super) fn check_ca(ca: &CaRecord) -> Result<(), StateError> {
    if ca.cert_pem.len() > CA_PEM_MAX {
        return Err(invalid(
            "cert_pem",
            format!("is longer than {CA_PEM_MAX} bytes"),
        ));
    }
    let fingerprint =
        crate::tls::fingerprint_of_pem(&ca.cert_pem).map_err(|e| invalid("cert_pem", e))?;
    if fingerprint != ca.fingerprint {
        return Err(invalid("fingerprint", "is not the certificate's"));
    }
    if !ca.sealed_key.is_well_formed(CA_KEY_PEM_MAX) {
        return Err(invalid("sealed_key", "is not a sealed key"));
    }
    Ok(())
}

pub(super) fn check_join_token(id: &str, secret_hash: &str) -> Result<(), StateError> {
    if !lower_hex(id, 16, 16) {
        return Err(invalid("id", "a join token id is 16 lowercase hex digits"));
    }
    if !lower_hex(secret_hash, 64, 64) {
        return Err(invalid("secret_hash", "must be 64 lowercase hex digits"));
    }
    Ok(())
}

pub(super) fn check_certificate(certificate: &IssuedCertificate) -> Result<(), StateError> {
    if certificate.node_id == 0 {
        return Err(invalid("node_id", "must be at least 1"));
    }
    if !lower_hex(&certificate.serial, 1, 40) {
        return Err(invalid("serial", "must be 1 to 40 lowercase hex digits"));
    }
    if certificate.not_after_ms <= 0 {
        return Err(invalid("not_after_ms", "must be a time after 1970"));
    }
    Ok(())
}
