//! Real handshakes between the configs, over an in-memory pipe, and the helpers the other
//! test modules share.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) fn now() -> i64 {
    crate::time::now_ms()
}

pub(super) fn request(node_id: u64, names: &[&str]) -> CertRequest {
    CertRequest {
        node_id,
        names: names.iter().map(|name| name.to_string()).collect(),
        lifetime: DAY,
    }
}

pub(super) fn issue(ca: &ClusterCa, node_id: u64, names: &[&str]) -> (NodeKey, IssuedCert) {
    let key = NodeKey::generate().unwrap();
    let issued = ca
        .sign(&key.csr_pem().unwrap(), &request(node_id, names), now())
        .unwrap();
    (key, issued)
}

pub(super) fn identity(ca: &ClusterCa, node_id: u64, names: &[&str]) -> NodeIdentity {
    let (key, issued) = issue(ca, node_id, names);
    NodeIdentity::new(ca.cert_pem(), &issued.cert_pem, key.key_pem()).unwrap()
}

type Side = Result<Option<u64>, String>;

/// One handshake; then the server sends a byte for the client to read, because under TLS 1.3
/// the client finishes before the server has judged the client's certificate. Each side
/// reports the node id the other presented, or its error.
async fn handshake(server: Arc<ServerConfig>, client: ClientConfig, host: &str) -> (Side, Side) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server_side = async move {
        let mut tls = TlsAcceptor::from(server)
            .accept(server_io)
            .await
            .map_err(|e| e.to_string())?;
        let peer = presented_node(tls.get_ref().1.peer_certificates());
        tls.write_all(b"k").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok(peer)
    };
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let client_side = async move {
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(name, client_io)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok(presented_node(tls.get_ref().1.peer_certificates()))
    };
    let both = async { tokio::join!(server_side, client_side) };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("the handshake neither finished nor failed")
}

fn presented_node(certs: Option<&[rustls::pki_types::CertificateDer<'static>]>) -> Option<u64> {
    leaf_info(certs?.first()?).ok()?.node_id
}

/// A client that trusts `trusted` but presents `presenter`'s certificate.
fn client_presenting(presenter: &NodeIdentity, trusted: &ClusterCa) -> ClientConfig {
    let roots = verify::roots(&certs_from_pem(trusted.cert_pem(), "CA").unwrap()).unwrap();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(presenter.chain(), presenter.private_key().unwrap())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The node's API port as the daemon serves it: its certificate, then the CA's.
fn api_server(node: &NodeIdentity) -> Arc<ServerConfig> {
    let chain = format!("{}{}", node.cert_pem(), node.ca_pem());
    api_server_config(&chain, node.key_pem()).unwrap()
}

#[tokio::test]
async fn nodes_of_one_cluster_learn_each_others_ids() {
    let ca = ClusterCa::generate(now()).unwrap();
    let a = identity(&ca, 1, &[]);
    let b = identity(&ca, 2, &[]);
    // The URL names an address the certificate does not: peers are known by id.
    let (server, client) = handshake(
        peer_server_config(&b).unwrap(),
        peer_client_config(&a, 2).unwrap(),
        "10.9.9.9",
    )
    .await;
    assert_eq!(server, Ok(Some(1)));
    assert_eq!(client, Ok(Some(2)));
}

#[tokio::test]
async fn the_peer_port_refuses_a_client_certificate_from_another_ca() {
    let ca = ClusterCa::generate(now()).unwrap();
    let stranger = identity(&ClusterCa::generate(now()).unwrap(), 1, &[]);
    let b = identity(&ca, 2, &[]);
    let (server, client) = handshake(
        peer_server_config(&b).unwrap(),
        client_presenting(&stranger, &ca),
        "node-2.helix",
    )
    .await;
    // Every helix CA has the same name, so webpki finds the server's CA and then refuses
    // the signature.
    let err = server.unwrap_err();
    assert!(err.contains("BadSignature"), "{err}");
    assert!(client.is_err());
}

#[tokio::test]
async fn the_peer_port_refuses_a_client_without_a_certificate() {
    let ca = ClusterCa::generate(now()).unwrap();
    let b = identity(&ca, 2, &[]);
    let (server, client) = handshake(
        peer_server_config(&b).unwrap(),
        ca_client_config(ca.cert_pem()).unwrap(),
        "node-2.helix",
    )
    .await;
    assert!(server.unwrap_err().contains("no certificates"));
    assert!(client.is_err());
}

#[tokio::test]
async fn a_peer_client_refuses_a_server_that_is_not_the_expected_node() {
    let ca = ClusterCa::generate(now()).unwrap();
    let a = identity(&ca, 1, &[]);
    let b = identity(&ca, 2, &[]);
    let (server, client) = handshake(
        peer_server_config(&b).unwrap(),
        peer_client_config(&a, 7).unwrap(),
        "node-2.helix",
    )
    .await;
    assert!(client.unwrap_err().contains("node-7.helix"));
    assert!(server.is_err());
}

#[tokio::test]
async fn a_joiner_trusts_the_server_whose_chain_holds_the_pinned_ca() {
    let ca = ClusterCa::generate(now()).unwrap();
    let b = identity(&ca, 2, &["127.0.0.1"]);
    let pinned = || pinned_client_config(&ca.fingerprint()).unwrap();

    let (server, client) = handshake(api_server(&b), pinned(), "127.0.0.1").await;
    assert_eq!(server, Ok(None));
    assert_eq!(client, Ok(Some(2)));

    // The pin replaces the trust store, not the name check.
    let (_, client) = handshake(api_server(&b), pinned(), "127.0.0.2").await;
    assert!(client.is_err());

    let other = ClusterCa::generate(now()).unwrap();
    let wrong = pinned_client_config(&other.fingerprint()).unwrap();
    let (_, client) = handshake(api_server(&b), wrong, "127.0.0.1").await;
    assert!(client.unwrap_err().contains(&other.fingerprint()));
}

#[tokio::test]
async fn a_pin_can_name_an_operators_self_signed_api_certificate() {
    let own = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = SecretString::from(own.key_pair.serialize_pem());
    let server = api_server_config(&own.cert.pem(), &key).unwrap();
    let pinned = pinned_client_config(&fingerprint_of_pem(&own.cert.pem()).unwrap()).unwrap();
    let (server, client) = handshake(server, pinned, "localhost").await;
    assert_eq!(server, Ok(None));
    assert_eq!(client, Ok(None));
}

#[tokio::test]
async fn a_client_given_the_ca_trusts_its_nodes_api_and_no_other() {
    let ca = ClusterCa::generate(now()).unwrap();
    let b = identity(&ca, 2, &["127.0.0.1"]);
    let (_, client) = handshake(
        api_server(&b),
        ca_client_config(ca.cert_pem()).unwrap(),
        "127.0.0.1",
    )
    .await;
    assert_eq!(client, Ok(Some(2)));

    let other = ClusterCa::generate(now()).unwrap();
    let (_, client) = handshake(
        api_server(&b),
        ca_client_config(other.cert_pem()).unwrap(),
        "127.0.0.1",
    )
    .await;
    let err = client.unwrap_err();
    assert!(err.contains("BadSignature"), "{err}");
}

#[test]
fn configs_refuse_bad_inputs_by_name() {
    assert!(matches!(
        pinned_client_config("sha256:ABC"),
        Err(TlsError::FingerprintFormat(_))
    ));
    assert!(matches!(
        ca_client_config("not pem"),
        Err(TlsError::NoPem { .. })
    ));
    let ca = ClusterCa::generate(now()).unwrap();
    let key = SecretString::from("no key here");
    assert!(matches!(
        api_server_config(ca.cert_pem(), &key),
        Err(TlsError::BadKey(_))
    ));
    // The CA's own key does not belong to a node's certificate.
    let b = identity(&ca, 2, &[]);
    assert!(matches!(
        api_server_config(b.cert_pem(), &ca.key_pem()),
        Err(TlsError::Config(_))
    ));
}

#[test]
fn node_names_round_trip_in_one_spelling_only() {
    assert_eq!(node_dns_name(42), "node-42.helix");
    assert_eq!(node_id_of_name("node-42.helix"), Some(42));
    assert_eq!(node_id_of_name(&node_dns_name(u64::MAX)), Some(u64::MAX));
    for other in [
        "node-042.helix",
        "node-+4.helix",
        "node-.helix",
        "node-4.helix.",
        "node-4xhelix",
        "node-4.example",
        "NODE-4.HELIX",
    ] {
        assert_eq!(node_id_of_name(other), None, "{other}");
    }
}

#[test]
fn fingerprints_are_sha256_of_the_der_in_lowercase_hex() {
    let ca = ClusterCa::generate(now()).unwrap();
    let fingerprint = fingerprint_of_pem(ca.cert_pem()).unwrap();
    assert_eq!(fingerprint, ca.fingerprint());
    assert!(valid_fingerprint(&fingerprint));
    assert!(valid_fingerprint(&format!("sha256:{}", "a0".repeat(32))));
    for bad in [
        "",
        "sha256:",
        "sha1:00",
        &format!("sha256:{}", "A".repeat(64)),
        &fingerprint[..70],
        &format!("{fingerprint}0"),
    ] {
        assert!(!valid_fingerprint(bad), "{bad}");
    }
    assert!(matches!(
        fingerprint_of_pem("nothing"),
        Err(TlsError::NoPem { .. })
    ));
}
