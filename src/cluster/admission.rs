//! Who may be a member: the leader admits a node that shows a valid join token and signs
//! the certificate it asks for (the node made its own key pair); members renew their
//! certificates before they expire; an admitted node fetches the cluster key over mutual TLS;
//! every peer connection's certificate is checked against the replicated state.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::quorum::Action;
use super::{Cluster, ClusterError};
use crate::crypto::ClusterSecret;
use crate::peer::{AdmitRequest, JoinReply, RenewRequest};
use crate::raft::NodeId;
use crate::state::{Command, IssuedCertificate, StateError};
use crate::tls::{CertRequest, ClusterCa};

/// What the leader needs to sign certificates.
pub struct Signing {
    /// Opens the CA key sealed in the replicated state; also what admitted nodes fetch.
    pub secret: ClusterSecret,
    /// How long the certificates this node signs (as leader) are valid.
    pub cert_lifetime: Duration,
}

/// The scope the CA key is sealed under.
pub const CA_KEY_SCOPE: &str = "cluster-ca";

impl Cluster {
    /// Admit a node with a join token, forwarded to the leader.
    pub async fn admit(&self, request: AdmitRequest) -> Result<JoinReply, ClusterError> {
        self.on_leader(
            Action::Write,
            |c| {
                let request = request.clone();
                async move { c.admit_local(request).await }
            },
            |peers, leader, addr, remaining| {
                let request = request.clone();
                async move { peers.admit(leader, &addr, &request, remaining).await }
            },
        )
        .await
    }

    /// On the leader: check the token, pick the node's id, sign its certificate, and spend
    /// one use of the token (`apply` checks the token again, so two joins racing for its
    /// last use cannot both get in).
    pub(super) async fn admit_local(
        &self,
        request: AdmitRequest,
    ) -> Result<JoinReply, ClusterError> {
        self.require_leader()?;
        for (field, addr) in [
            ("api_addr", &request.api_addr),
            ("peer_addr", &request.peer_addr),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|_| refused(format!("{field} {addr:?} is not IP:PORT")))?;
        }
        let now = self.inner.clock.now_ms();
        self.replica()
            .read(|s| {
                s.check_join_token(&request.token_id, &request.secret_hash, now)
                    .map(|_| ())
            })
            .map_err(ClusterError::Refused)?;
        let node_id = self.id_for_joiner(request.node_id, &request.peer_addr)?;
        let ca = self.open_ca()?;
        let issued = self.sign(
            &ca,
            node_id,
            &request.csr_pem,
            &request.api_addr,
            &request.names,
        )?;
        self.propose_system_here(Command::AdmitNode {
            token_id: request.token_id.clone(),
            secret_hash: request.secret_hash.clone(),
            certificate: IssuedCertificate {
                node_id,
                serial: issued.serial,
                not_after_ms: issued.not_after_ms,
            },
        })
        .await?;
        tracing::info!(node = node_id, token = %request.token_id, "admitted a node");
        let membership = self.inner.raft.status().membership;
        let members = membership
            .members()
            .filter_map(|id| Some((id, membership.peer_addr(id)?.to_string())))
            .collect();
        Ok(JoinReply {
            node_id,
            cert_pem: issued.cert_pem,
            ca_pem: ca.cert_pem().to_string(),
            members,
        })
    }

    /// A new certificate for this node's new key pair, signed by the leader.
    pub async fn renew_certificate(&self, request: RenewRequest) -> Result<String, ClusterError> {
        let me = self.node_id();
        self.on_leader(
            Action::Write,
            |c| {
                let request = request.clone();
                async move { c.renew_local(me, request).await }
            },
            |peers, leader, addr, remaining| {
                let request = request.clone();
                async move { peers.renew(leader, &addr, &request, remaining).await }
            },
        )
        .await
    }

    /// On the leader: sign a certificate for member `node` (whose current certificate the
    /// peer server already checked) and record it.
    pub(super) async fn renew_local(
        &self,
        node: NodeId,
        request: RenewRequest,
    ) -> Result<String, ClusterError> {
        self.require_leader()?;
        let api_addr = self
            .replica()
            .read(|s| s.nodes.get(&node).map(|n| n.api_addr.clone()))
            .unwrap_or_default();
        let ca = self.open_ca()?;
        let issued = self.sign(&ca, node, &request.csr_pem, &api_addr, &request.names)?;
        self.propose_system_here(Command::RecordCertificate(IssuedCertificate {
            node_id: node,
            serial: issued.serial,
            not_after_ms: issued.not_after_ms,
        }))
        .await?;
        Ok(issued.cert_pem)
    }

    /// The cluster key, hex, for an admitted node.
    pub fn cluster_key_hex(&self) -> String {
        self.inner
            .signing
            .secret
            .to_hex()
            .expose_secret()
            .to_string()
    }

    /// Why a peer connection with node `node`'s certificate `serial` must be refused, if it
    /// must (the node was removed, the certificate revoked), by this node's applied state.
    pub fn check_peer(&self, node: NodeId, serial: &str) -> Result<(), String> {
        match self.replica().read(|s| s.certificate_refusal(node, serial)) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn open_ca(&self) -> Result<ClusterCa, ClusterError> {
        let record = self.replica().read(|s| s.trust.ca.clone()).ok_or_else(|| {
            ClusterError::Unavailable("the cluster CA is not in the replicated state yet".into())
        })?;
        let key = self
            .inner
            .signing
            .secret
            .ca_key_sealer()
            .open(&record.sealed_key, CA_KEY_SCOPE)
            .map_err(|e| ClusterError::Internal(format!("cannot open the cluster CA key: {e}")))?;
        ClusterCa::from_pem(&record.cert_pem, &key)
            .map_err(|e| ClusterError::Internal(format!("the cluster CA is damaged: {e}")))
    }

    fn sign(
        &self,
        ca: &ClusterCa,
        node_id: NodeId,
        csr_pem: &str,
        api_addr: &str,
        extra_names: &[String],
    ) -> Result<crate::tls::IssuedCert, ClusterError> {
        let request = CertRequest {
            node_id,
            names: certificate_names(api_addr, extra_names),
            lifetime: self.inner.signing.cert_lifetime,
        };
        ca.sign(csr_pem, &request, self.inner.clock.now_ms())
            .map_err(|e| refused(format!("cannot sign the certificate request: {e}")))
    }
}

/// The names a node's certificate carries besides its id: the API address's IP (unless it
/// listens on all addresses) and the names the operator advertises.
pub fn certificate_names(api_addr: &str, extra_names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = api_addr
        .parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_string())
        .into_iter()
        .collect();
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

fn refused(message: String) -> ClusterError {
    ClusterError::Refused(StateError::Forbidden(message))
}
