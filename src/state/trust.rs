//! Who may be a member: the cluster CA, the join tokens that admit new nodes, and the
//! certificates the CA has issued (so a removed node's certificate can be refused).
//!
//! Only public or sealed material lives here: the CA key is sealed with the cluster key,
//! join tokens are stored as hashes of their secret part.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::State;
use crate::crypto::SealedSecret;

/// The cluster CA. Every member can open `sealed_key` (it is sealed with the cluster key), so
/// whichever voter leads can sign certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub cert_pem: String,
    /// `sha256:<hex>` of the CA certificate, what join tokens carry.
    pub fingerprint: String,
    pub sealed_key: SealedSecret,
}

/// A join token as stored: its secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    pub id: String,
    /// Hex SHA-256 of the token's secret part.
    pub secret_hash: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// `None`: any number of nodes may join with it until it expires.
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
    /// The user who created it; `None` for the bootstrap token.
    pub created_by: Option<String>,
}

/// Why a join token does not admit a node right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinTokenStatus {
    Active,
    Expired,
    UsedUp,
    Revoked,
}

impl JoinTokenStatus {
    pub fn name(self) -> &'static str {
        match self {
            JoinTokenStatus::Active => "active",
            JoinTokenStatus::Expired => "expired",
            JoinTokenStatus::UsedUp => "used up",
            JoinTokenStatus::Revoked => "revoked",
        }
    }
}

impl JoinTokenRecord {
    pub fn status(&self, now_ms: i64) -> JoinTokenStatus {
        if self.revoked {
            JoinTokenStatus::Revoked
        } else if now_ms >= self.expires_ms {
            JoinTokenStatus::Expired
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            JoinTokenStatus::UsedUp
        } else {
            JoinTokenStatus::Active
        }
    }
}

/// A certificate the CA issued to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: String,
    pub node_id: u64,
    pub issued_ms: i64,
    pub not_after_ms: i64,
    pub revoked: bool,
}

/// A certificate to record, as the leader issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    pub node_id: u64,
    pub serial: String,
    pub not_after_ms: i64,
}

/// The trust part of the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trust {
    pub ca: Option<CaRecord>,
    pub join_tokens: BTreeMap<String, JoinTokenRecord>,
    /// By serial.
    pub certificates: BTreeMap<String, CertRecord>,
    /// Removed nodes: their ids are never handed out again and their certificates, recorded
    /// or not, are refused.
    pub retired_nodes: BTreeSet<u64>,
}

impl State {
    /// Why the peer certificate of node `node_id` with `serial` must be refused, if it must.
    /// A serial the state does not know yet is accepted: a node catching up may not have
    /// applied the record of a certificate the CA issued after its own state was built.
    pub fn certificate_refusal(&self, node_id: u64, serial: &str) -> Option<String> {
        if self.trust.retired_nodes.contains(&node_id) {
            return Some(format!("node {node_id} was removed from the cluster"));
        }
        match self.trust.certificates.get(serial) {
            Some(c) if c.node_id != node_id => Some(format!(
                "certificate {serial} was issued to node {}, not {node_id}",
                c.node_id
            )),
            Some(c) if c.revoked => Some(format!("certificate {serial} was revoked")),
            _ => None,
        }
    }

    /// The highest node id ever used by this cluster (members, certificates, removed nodes):
    /// new nodes get ids above it.
    pub fn highest_node_id_used(&self) -> Option<u64> {
        let certified = self.trust.certificates.values().map(|c| c.node_id).max();
        let retired = self.trust.retired_nodes.iter().next_back().copied();
        let known = self.nodes.keys().next_back().copied();
        certified.max(retired).max(known)
    }
}
