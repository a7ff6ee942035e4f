//! rustls configurations for the peer port (mTLS), the API port, and the clients of both.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ConfigBuilder, ServerConfig, WantsVerifier};
use secrecy::SecretString;

use super::verify::{roots, ExpectedNode, Pinned};
use super::{certs_from_pem, key_from_pem, provider, valid_fingerprint, NodeIdentity, TlsError};

/// Both ends speak hyper http1.
const ALPN_HTTP1: &[u8] = b"http/1.1";
/// The peer port's framed protocol for Raft's messages (`peer/frame.rs`).
pub const PEER_LINK_ALPN: &[u8] = b"helix-raft/1";

/// Peer port, server side: a client certificate is required and must chain to the CA;
/// presents [node cert, CA cert]. Who the client is: `leaf_info` of its certificate. Speaks
/// the framed protocol to clients that ask for it, HTTP/1.1 to the others.
pub fn peer_server_config(id: &NodeIdentity) -> Result<Arc<ServerConfig>, TlsError> {
    let clients = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(std::slice::from_ref(id.ca_der()))?),
        provider(),
    )
    .build()
    .map_err(config_error)?;
    let mut config = server_builder()?
        .with_client_cert_verifier(clients)
        .with_single_cert(id.chain(), id.private_key()?)
        .map_err(config_error)?;
    config.alpn_protocols = vec![PEER_LINK_ALPN.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Peer port, client side: presents the node cert as client cert; accepts the server only if
/// its cert chains to the CA and names node `expected_node`, whatever name the URL had.
pub fn peer_client_config(id: &NodeIdentity, expected_node: u64) -> Result<ClientConfig, TlsError> {
    peer_client(id, expected_node, ALPN_HTTP1)
}

/// [`peer_client_config`] for the framed protocol instead of HTTP/1.1.
pub fn peer_link_client_config(
    id: &NodeIdentity,
    expected_node: u64,
) -> Result<ClientConfig, TlsError> {
    peer_client(id, expected_node, PEER_LINK_ALPN)
}

fn peer_client(
    id: &NodeIdentity,
    expected_node: u64,
    alpn: &[u8],
) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(ExpectedNode::new(id.ca_der(), expected_node)?);
    let mut config = client_builder()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(id.chain(), id.private_key()?)
        .map_err(config_error)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// API port, server side: no client certificate; presents the given chain (PEM, leaf first)
/// and key: an operator's own, or the node identity's cert and the CA's.
pub fn api_server_config(
    cert_chain_pem: &str,
    key_pem: &SecretString,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs_from_pem(cert_chain_pem, "certificate chain")?;
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_single_cert(chain, key_from_pem(key_pem)?)
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// A joining node, before it sends anything: trusts the server only if the chain it presents
/// holds a certificate with this fingerprint and the leaf verifies against that certificate
/// as the only root, for the server name in the URL.
pub fn pinned_client_config(fingerprint: &str) -> Result<ClientConfig, TlsError> {
    if !valid_fingerprint(fingerprint) {
        return Err(TlsError::FingerprintFormat(fingerprint.to_owned()));
    }
    let mut config = client_builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(fingerprint.to_owned())))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Trusts exactly the CA certificates in `ca_pem`, with the usual server-name checks.
pub fn ca_client_config(ca_pem: &str) -> Result<ClientConfig, TlsError> {
    let store = roots(&certs_from_pem(ca_pem, "CA certificate")?)?;
    let mut config = client_builder()?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

fn server_builder() -> Result<ConfigBuilder<ServerConfig, WantsVerifier>, TlsError> {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)
}

fn client_builder() -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)
}

fn config_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}
