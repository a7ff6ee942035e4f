//! `apply` for the trust records: the CA, join tokens, issued certificates, removed nodes.

use crate::state::trust::{
    CaRecord, CertRecord, IssuedCertificate, JoinTokenRecord, JoinTokenStatus,
};
use crate::state::{State, StateError, StateKey};

/// How long a spent (expired, used-up or revoked) token stays listed before `apply` drops it.
const SPENT_TOKENS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

impl State {
    /// Does the join token `id` with this secret hash admit a node at `now_ms`? The refusal
    /// says which of unknown, revoked, expired or used up it is.
    pub fn check_join_token(
        &self,
        id: &str,
        secret_hash: &str,
        now_ms: i64,
    ) -> Result<&JoinTokenRecord, StateError> {
        let token = self
            .trust
            .join_tokens
            .get(id)
            .filter(|t| crate::crypto::constant_time_eq(&t.secret_hash, secret_hash))
            .ok_or_else(|| {
                StateError::Forbidden("join token is not valid for this cluster".into())
            })?;
        let refusal = match token.status(now_ms) {
            JoinTokenStatus::Active => return Ok(token),
            JoinTokenStatus::Revoked => format!("join token {id} has been revoked"),
            JoinTokenStatus::Expired => format!(
                "join token {id} expired at {}",
                crate::time::rfc3339(token.expires_ms)
            ),
            JoinTokenStatus::UsedUp => format!(
                "join token {id} has been used up ({} of {} uses)",
                token.uses,
                token.max_uses.unwrap_or(0)
            ),
        };
        Err(StateError::Forbidden(refusal))
    }

    /// Whether `ca` became the cluster CA.
    pub(super) fn init_ca(&mut self, ca: &CaRecord, touched: &mut Vec<StateKey>) -> bool {
        // The first CA stays: a second bootstrap attempt (a retry) changes nothing.
        if self.trust.ca.is_some() {
            return false;
        }
        self.trust.ca = Some(ca.clone());
        touched.push(StateKey::Ca);
        true
    }

    pub(super) fn create_join_token(
        &mut self,
        token: JoinTokenRecord,
        touched: &mut Vec<StateKey>,
    ) -> Result<(), StateError> {
        if self.trust.join_tokens.contains_key(&token.id) {
            return Err(StateError::Conflict(format!(
                "join token {} already exists",
                token.id
            )));
        }
        let now = token.created_ms;
        let spent: Vec<String> = self
            .trust
            .join_tokens
            .values()
            .filter(|t| {
                t.status(now) != JoinTokenStatus::Active
                    && now - t.expires_ms.min(now) > SPENT_TOKENS_KEPT_MS
            })
            .map(|t| t.id.clone())
            .collect();
        for id in spent {
            self.trust.join_tokens.remove(&id);
            touched.push(StateKey::JoinToken(id));
        }
        touched.push(StateKey::JoinToken(token.id.clone()));
        self.trust.join_tokens.insert(token.id.clone(), token);
        Ok(())
    }

    pub(super) fn revoke_join_token(
        &mut self,
        id: &str,
        touched: &mut Vec<StateKey>,
    ) -> Result<(), StateError> {
        let token = self
            .trust
            .join_tokens
            .get_mut(id)
            .ok_or_else(|| StateError::NotFound(format!("join token {id:?} not found")))?;
        token.revoked = true;
        touched.push(StateKey::JoinToken(id.to_string()));
        Ok(())
    }

    /// Spend one use of a join token on a node the leader admitted, and record the
    /// certificate it issued to it.
    pub(super) fn admit_node(
        &mut self,
        token_id: &str,
        secret_hash: &str,
        certificate: &IssuedCertificate,
        at_ms: i64,
        touched: &mut Vec<StateKey>,
    ) -> Result<(), StateError> {
        self.check_join_token(token_id, secret_hash, at_ms)?;
        if self.trust.retired_nodes.contains(&certificate.node_id) {
            return Err(StateError::Conflict(format!(
                "node id {} belonged to a removed node and is not handed out again",
                certificate.node_id
            )));
        }
        let token = self
            .trust
            .join_tokens
            .get_mut(token_id)
            .expect("checked above");
        token.uses += 1;
        touched.push(StateKey::JoinToken(token_id.to_string()));
        self.record_certificate(certificate, at_ms, touched)
    }

    pub(super) fn record_certificate(
        &mut self,
        certificate: &IssuedCertificate,
        at_ms: i64,
        touched: &mut Vec<StateKey>,
    ) -> Result<(), StateError> {
        if self.trust.retired_nodes.contains(&certificate.node_id) {
            return Err(StateError::Forbidden(format!(
                "node {} was removed from the cluster",
                certificate.node_id
            )));
        }
        if self.trust.certificates.contains_key(&certificate.serial) {
            return Err(StateError::Conflict(format!(
                "certificate {} is already recorded",
                certificate.serial
            )));
        }
        // Expired certificates are refused by TLS anyway; their records only take space.
        let expired: Vec<String> = self
            .trust
            .certificates
            .values()
            .filter(|c| c.not_after_ms < at_ms)
            .map(|c| c.serial.clone())
            .collect();
        for serial in expired {
            self.trust.certificates.remove(&serial);
            touched.push(StateKey::Certificate(serial));
        }
        self.trust.certificates.insert(
            certificate.serial.clone(),
            CertRecord {
                serial: certificate.serial.clone(),
                node_id: certificate.node_id,
                issued_ms: at_ms,
                not_after_ms: certificate.not_after_ms,
                revoked: false,
            },
        );
        touched.push(StateKey::Certificate(certificate.serial.clone()));
        Ok(())
    }

    /// A removed node: its id is retired and every certificate it holds is revoked. Whether
    /// the id was not retired before.
    pub(super) fn retire_node(&mut self, id: u64, touched: &mut Vec<StateKey>) -> bool {
        for cert in self.trust.certificates.values_mut() {
            if cert.node_id == id && !cert.revoked {
                cert.revoked = true;
                touched.push(StateKey::Certificate(cert.serial.clone()));
            }
        }
        let newly = self.trust.retired_nodes.insert(id);
        if newly {
            touched.push(StateKey::RetiredNode(id));
        }
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(max_uses: Option<u32>) -> JoinTokenRecord {
        JoinTokenRecord {
            id: "t1".into(),
            secret_hash: "h".into(),
            created_ms: 0,
            expires_ms: 1000,
            max_uses,
            uses: 0,
            revoked: false,
            created_by: None,
        }
    }

    fn cert(node_id: u64, serial: &str) -> IssuedCertificate {
        IssuedCertificate {
            node_id,
            serial: serial.into(),
            not_after_ms: 10_000,
        }
    }

    #[test]
    fn a_join_token_says_why_it_no_longer_admits() {
        let mut state = State::default();
        let mut touched = Vec::new();
        state
            .create_join_token(token(Some(1)), &mut touched)
            .unwrap();
        let refusal = |s: &State, hash: &str, now: i64| {
            s.check_join_token("t1", hash, now).unwrap_err().to_string()
        };
        assert!(refusal(&state, "wrong", 1).contains("not valid for this cluster"));
        assert!(refusal(&state, "h", 1000).contains("expired"));
        state
            .admit_node("t1", "h", &cert(2, "s2"), 5, &mut touched)
            .unwrap();
        assert!(refusal(&state, "h", 6).contains("used up (1 of 1 uses)"));
        state.revoke_join_token("t1", &mut touched).unwrap();
        assert!(refusal(&state, "h", 6).contains("revoked"));
        // The refused admission changed nothing.
        assert!(state
            .admit_node("t1", "h", &cert(3, "s3"), 7, &mut touched)
            .is_err());
        assert!(!state.trust.certificates.contains_key("s3"));
    }

    #[test]
    fn a_removed_node_is_refused_whatever_certificate_it_shows() {
        let mut state = State::default();
        let mut touched = Vec::new();
        state
            .record_certificate(&cert(2, "s2"), 0, &mut touched)
            .unwrap();
        assert_eq!(state.certificate_refusal(2, "s2"), None);
        // A serial issued after this state was built is not refused for being unknown.
        assert_eq!(state.certificate_refusal(2, "later"), None);
        assert!(state.certificate_refusal(3, "s2").is_some());
        state.retire_node(2, &mut touched);
        assert!(state
            .certificate_refusal(2, "s2")
            .unwrap()
            .contains("removed"));
        assert!(state.certificate_refusal(2, "later").is_some());
        assert_eq!(state.highest_node_id_used(), Some(2));
        assert!(state
            .record_certificate(&cert(2, "s4"), 1, &mut touched)
            .is_err());
    }
}
