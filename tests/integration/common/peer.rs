//! Talking to a node's peer port as tests need to: with a member's stolen certificate (its
//! data dir's `node.pem` and `ca.pem`), with no certificate, or with no TLS at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use helix::peer::{PeerClient, PreVoteRequest, PreVoteResponse, TransportError};
use helix::tls::NodeIdentity;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The identity kept in a node's data dir.
pub fn identity_of(data_dir: &Path) -> NodeIdentity {
    let node_pem = std::fs::read_to_string(data_dir.join("node.pem")).expect("node.pem");
    let ca_pem = std::fs::read_to_string(data_dir.join("ca.pem")).expect("ca.pem");
    let split = node_pem
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("a key in node.pem");
    let (cert, key) = node_pem.split_at(split);
    NodeIdentity::new(&ca_pem, cert, SecretString::from(key.to_string())).expect("identity")
}

/// What a peer port answered: its HTTP status and body.
pub struct PeerAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl PeerAnswer {
    pub fn decode<T: DeserializeOwned>(&self) -> T {
        helix::state::codec::decode(&self.body).expect("a peer answer")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POST `request` (bincode) to `path` on the peer port at `addr`, which must be node
/// `target`, presenting `identity`'s certificate.
pub fn peer_call<T: Serialize>(
    identity: &NodeIdentity,
    target: u64,
    addr: &str,
    path: &str,
    request: &T,
) -> Result<PeerAnswer, String> {
    let tls = helix::tls::peer_client_config(identity, target).map_err(|e| e.to_string())?;
    let client = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(format!("https://{addr}{path}"))
        .header("content-type", "application/octet-stream")
        .body(helix::state::codec::encode(request))
        .send()
        .map_err(|e| chain(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().map_err(|e| chain(&e))?.to_vec();
    Ok(PeerAnswer { status, body })
}

/// Ask node `target` at `addr` for a pre-vote on the link that carries Raft's messages
/// (the framed protocol), presenting `identity`'s certificate.
pub fn link_pre_vote(
    identity: &NodeIdentity,
    target: u64,
    addr: &str,
    request: &PreVoteRequest,
) -> Result<PreVoteResponse, TransportError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = PeerClient::new(tokio::sync::watch::channel(Arc::new(identity.clone())).1);
        client
            .pre_vote(target, addr, request, Duration::from_secs(10))
            .await
    })
}

/// Send `bytes` over plain TCP and return whatever comes back before the server closes the
/// connection or goes quiet for a few seconds.
pub fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = socket.write_all(bytes);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while answer.len() < 64 * 1024 {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    answer
}

/// A TLS connection to the peer port that trusts its CA and shows `client` (a certificate
/// and key, PEM) or no certificate: the error the client meets, or what it read if the
/// server let it in.
pub fn tls_probe(
    addr: &str,
    ca_pem: &str,
    node: u64,
    client: Option<(&str, &SecretString)>,
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use secrecy::ExposeSecret;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.expose_secret().as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let name = ServerName::try_from(format!("node-{node}.helix")).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut socket);
    tls.write_all(b"POST /raft/progress HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    if answer.is_empty() {
        return Err("the server closed the connection without an answer".into());
    }
    Ok(answer)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    message
}
