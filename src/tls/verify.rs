//! Server-certificate verifiers for the two cases webpki's defaults do not cover: a peer
//! that must be a given node whatever address it was dialled at, and a joining node that
//! knows only the fingerprint of the certificate it may trust.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{fingerprint_of_der, node_dns_name, provider, TlsError};

/// webpki's server verifier trusting exactly `root`.
pub(super) fn server_verifier(
    root: &CertificateDer<'_>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(std::slice::from_ref(root))?),
        provider(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))
}

/// A root store holding exactly `certs`.
pub(super) fn roots(certs: &[CertificateDer<'_>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone().into_owned()).map_err(|e| {
            TlsError::Config(format!("the CA certificate cannot be a trust root: {e}"))
        })?;
    }
    Ok(roots)
}

/// Whether `cert` chains to `ca` and names node `node_id`, as a peer would judge it at `at`.
pub(super) fn check_node_cert(
    ca: &CertificateDer<'_>,
    cert: &CertificateDer<'_>,
    node_id: u64,
    at: UnixTime,
) -> Result<(), TlsError> {
    let name = node_server_name(node_id)?;
    server_verifier(ca)?
        .verify_server_cert(cert, &[], &name, &[], at)
        .map(|_| ())
        .map_err(|e| TlsError::NotSignedByCa(e.to_string()))
}

fn node_server_name(node_id: u64) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(node_dns_name(node_id)).map_err(|e| TlsError::Config(e.to_string()))
}

/// Peers are dialled by address but known by id: the server must chain to the CA and name
/// the expected node, whatever host the URL had.
#[derive(Debug)]
pub(super) struct ExpectedNode {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ExpectedNode {
    pub(super) fn new(ca: &CertificateDer<'_>, node_id: u64) -> Result<ExpectedNode, TlsError> {
        Ok(ExpectedNode {
            inner: server_verifier(ca)?,
            name: node_server_name(node_id)?,
        })
    }
}

impl ServerCertVerifier for ExpectedNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A joining node knows only the fingerprint it was given: the certificate with that
/// fingerprint, taken from the chain the server presents, is the only root.
#[derive(Debug)]
pub(super) struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    pub(super) fn new(fingerprint: String) -> Pinned {
        Pinned {
            fingerprint,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| fingerprint_of_der(cert) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the server presented no certificate with fingerprint {}",
                    self.fingerprint
                ))
            })?;
        server_verifier(pinned)
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
