//! Issue 10, trust between nodes, as an attacker on the same network and an operator see it:
//! the peer port speaks only mutual TLS with certificates from the cluster CA, `apply`
//! refuses what a stolen member certificate forges, a removed node's certificate is refused,
//! join tokens expire, run out and can be revoked, each refusal saying which, and the API
//! can be served over TLS that the CLI verifies with the cluster CA.

use std::process::Command;
use std::time::Duration;

use helix::peer::{ClusterError, PreVoteRequest, TransportError, Written};
use helix::state::{Command as StateCommand, NewUser, Proposal};
use serde_json::{json, Value};

use crate::common::peer::*;
use crate::common::*;

const JOIN_TOKENS: &str = "/api/v1/cluster/join-tokens";

fn ca_pem(c: &Cluster, k: usize) -> String {
    std::fs::read_to_string(c.node(k).data_dir.join("ca.pem")).expect("ca.pem")
}

fn user_count(c: &Cluster) -> usize {
    c.client(1)
        .get_ok("/api/v1/users")
        .as_array()
        .map_or(0, Vec::len)
}

/// The node index of the current leader, as node `k` sees it.
fn leader(c: &Cluster, k: usize) -> usize {
    let id = wait_for(WAIT, "a leader", || {
        let st = c.status(k)?;
        st["leader_id"]
            .as_u64()
            .ok_or_else(|| format!("no leader in {st}"))
    });
    c.index_of(id).expect("the leader is one of ours")
}

#[test]
fn without_a_cluster_certificate_the_peer_port_gives_no_answer() {
    let c = Cluster::new(1);
    let addr = c.node(1).peer_addr.clone();
    let users = user_count(&c);

    // Plain HTTP, as a byte-for-byte replay of a captured write would be: no HTTP answer.
    let replay = b"POST /raft/write HTTP/1.1\r\nhost: x\r\n\
                   content-type: application/octet-stream\r\ncontent-length: 3\r\n\r\n\x01\x02\x03";
    let answer = raw_exchange(&addr, replay);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // TLS that trusts the cluster CA but shows no client certificate: refused.
    let ca = ca_pem(&c, 1);
    let refused = tls_probe(&addr, &ca, c.id(1), None);
    assert!(
        refused.is_err(),
        "no client certificate was let in: {refused:?}"
    );

    // A certificate for the same node id from another CA: refused.
    let now = helix::time::now_ms();
    let other_ca = helix::tls::ClusterCa::generate(now).unwrap();
    let key = helix::tls::NodeKey::generate().unwrap();
    let forged = other_ca
        .sign(
            &key.csr_pem().unwrap(),
            &helix::tls::CertRequest {
                node_id: c.id(1),
                names: vec![],
                lifetime: Duration::from_secs(3600),
            },
            now,
        )
        .unwrap();
    let refused = tls_probe(
        &addr,
        &ca,
        c.id(1),
        Some((&forged.cert_pem, &key.key_pem())),
    );
    assert!(
        refused.is_err(),
        "another CA's certificate was let in: {refused:?}"
    );

    assert_eq!(user_count(&c), users, "something changed the users");
    c.client(1).create_model_acked("trust/still-works", WAIT);
}

#[test]
fn a_stolen_member_certificate_cannot_forge_an_actorless_admin_or_speak_for_another_node() {
    let c = Cluster::new(2);
    let l = leader(&c, 1);
    let other = if l == 1 { 2 } else { 1 };
    let stolen = identity_of(&c.node(other).data_dir);
    let mallory_key = "hx_mallory_wants_in";

    let forged = Proposal {
        actor: None,
        at_ms: 0,
        command: StateCommand::CreateUser {
            user: NewUser {
                id: "mallory".into(),
                name: "mallory".into(),
                admin: true,
                created_ms: 0,
                organization_id: None,
                org_role: None,
                hf_token: None,
            },
            key_id: "mallory-key".into(),
            key_hash: sha256_hex(mallory_key),
        },
    };
    let answer = peer_call(
        &stolen,
        c.id(l),
        &c.node(l).peer_addr,
        "/raft/write",
        &forged,
    )
    .expect("a member's certificate reaches the leader");
    assert_eq!(answer.status, 200, "{}", answer.text());
    match answer.decode::<Result<Written, ClusterError>>() {
        Ok(written) => assert!(
            written.outcome.is_err(),
            "apply accepted an actor-less CreateUser: {:?}",
            written.outcome
        ),
        Err(e) => assert!(matches!(e, ClusterError::Refused(_)), "{e:?}"),
    }
    for k in [1, 2] {
        c.caller(k, Some(mallory_key), "mallory")
            .expect("GET", "/api/v1/users", None, 401);
    }

    // A Raft message that claims to come from the leader, on the other node's certificate.
    let impersonation = PreVoteRequest {
        candidate: c.id(l),
        last_log: None,
    };
    let answer = peer_call(
        &stolen,
        c.id(l),
        &c.node(l).peer_addr,
        "/raft/pre-vote",
        &impersonation,
    )
    .expect("reaches the leader");
    assert_eq!(answer.status, 403, "{}", answer.text());
    // The same on the link that carries Raft's messages between nodes.
    match link_pre_vote(&stolen, c.id(l), &c.node(l).peer_addr, &impersonation) {
        Err(TransportError::Refused { message, .. }) => {
            assert!(message.contains("not node"), "{message}")
        }
        other => panic!("a pre-vote for the leader on another node's link: {other:?}"),
    }
    c.client(l)
        .create_model_acked("trust/leader-unharmed", WAIT);
}

#[test]
fn a_removed_nodes_certificate_is_refused() {
    let mut c = Cluster::new(3);
    let gone = 3;
    let identity = identity_of(&c.node(gone).data_dir);
    let id = c.id(gone);
    c.client(1)
        .expect("DELETE", &format!("/api/v1/nodes/{id}"), None, 200);
    // The removal is in the audit log, as the cluster's own act.
    let removed = c
        .client(1)
        .get_ok("/api/v1/audit?actor=cluster&kind=node_removed");
    assert_eq!(
        removed[0]["target"],
        serde_json::json!(id.to_string()),
        "{removed}"
    );
    c.stop(gone);
    let l = leader(&c, 1);
    let answer = wait_for(
        WAIT,
        "the leader refuses the removed node's certificate",
        || {
            let a = peer_call(
                &identity,
                c.id(l),
                &c.node(l).peer_addr,
                "/raft/progress",
                &(),
            )?;
            if a.status == 403 {
                Ok(a.text())
            } else {
                Err(format!("answered {}", a.status))
            }
        },
    );
    assert!(answer.contains("removed"), "{answer}");
    // Nor may it speak on the link that carries Raft's messages.
    let pre_vote = PreVoteRequest {
        candidate: id,
        last_log: None,
    };
    match link_pre_vote(&identity, c.id(l), &c.node(l).peer_addr, &pre_vote) {
        Err(TransportError::Refused { message, .. }) => {
            assert!(message.contains("removed"), "{message}")
        }
        other => panic!("a removed node's pre-vote on the link: {other:?}"),
    }
}

/// Node `k` (new) tries to join through node 1 with `token` and fails: its log says why.
fn refused_join(c: &mut Cluster, token: &str) -> String {
    let k = c.add_node(NodeSpec::none());
    c.spawn_join(k, 1, token);
    let status = c.wait_exit(k, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "a refused join: {status}");
    assert!(!c.printed_ready(k), "a refused join printed ready");
    c.log(k)
}

fn create_token(admin: &Client, body: Value) -> (String, String) {
    let v = admin.expect("POST", JOIN_TOKENS, Some(&body), 200);
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

#[test]
fn join_tokens_are_refused_when_used_up_revoked_expired_wrong_or_for_another_cluster() {
    let mut c = Cluster::new(1);
    let admin = c.client(1);

    let (_, once) = create_token(&admin, json!({"ttl": "1h", "uses": 1}));
    c.join_token = once.clone();
    let k = c.add_node(NodeSpec::none());
    c.join(k, 1);
    let log = refused_join(&mut c, &once);
    assert!(log.contains("used up"), "{log}");

    let (revoked_id, revoked) = create_token(&admin, json!({"ttl": "1h"}));
    admin.expect("DELETE", &format!("{JOIN_TOKENS}/{revoked_id}"), None, 200);
    let log = refused_join(&mut c, &revoked);
    assert!(log.contains("revoked"), "{log}");

    let (short_id, short) = create_token(&admin, json!({"ttl": "1s"}));
    wait_for(WAIT, "the short token expires", || {
        let list = admin.poll_json(JOIN_TOKENS)?;
        let status = list
            .as_array()
            .and_then(|l| l.iter().find(|t| t["id"] == short_id.as_str()))
            .map(|t| t["status"].clone());
        match status {
            Some(s) if s == "expired" => Ok(()),
            other => Err(format!("status {other:?}")),
        }
    });
    let log = refused_join(&mut c, &short);
    assert!(log.contains("expired"), "{log}");

    // Another secret with the right id: the cluster does not know it.
    let (_, good) = create_token(&admin, json!({"ttl": "1h"}));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[2] = "0".repeat(32);
    let log = refused_join(&mut c, &parts.join("."));
    assert!(log.contains("not valid for this cluster"), "{log}");

    // Another CA fingerprint: the joining node stops before it sends the token.
    let (_, unsent) = create_token(&admin, json!({"ttl": "1h"}));
    let mut parts: Vec<String> = unsent.split('.').map(str::to_string).collect();
    parts[3] = "ab".repeat(32);
    let log = refused_join(&mut c, &parts.join("."));
    assert!(log.contains("not the one the join token is for"), "{log}");
    assert!(
        !c.log(1).contains(&parts[1]),
        "node 1 saw the token id of a join that should have stopped first"
    );

    let list = admin.get_ok(JOIN_TOKENS);
    assert!(
        !list.to_string().contains(&parts[2][..8]),
        "a secret in {list}"
    );
}

#[test]
fn the_cli_verifies_a_tls_api_with_the_cluster_ca() {
    let mut c = Cluster::new(1);
    let k = c.add_node(NodeSpec::none().arg("--api-tls"));
    let token = c.join_token.clone();
    c.spawn_join(k, 1, &token);
    c.wait_ready(k);
    let url = format!("https://{}", c.node(k).api_addr);
    let ca = c.node(k).data_dir.join("ca.pem");
    let helix = |extra: &[&str]| {
        Command::new(helix_bin())
            .args(["--url", &url, "--api-key", &c.admin_key, "--output", "json"])
            .args(extra)
            .env_remove("HELIX_CA_CERT")
            .output()
            .expect("run the CLI")
    };
    let ok = helix(&["--ca-cert", ca.to_str().unwrap(), "cluster", "status"]);
    assert!(
        ok.status.success(),
        "status over TLS: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let status: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );

    let untrusted = helix(&["cluster", "status"]);
    assert!(!untrusted.status.success(), "the CLI trusted an unknown CA");
    let err = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(err.contains("certificate"), "{err}");

    // Plain HTTP to the TLS port gets no API answer.
    let answer = raw_exchange(
        &c.node(k).api_addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served"
    );
}

#[test]
fn certificates_are_renewed_before_they_expire_and_the_cluster_keeps_working() {
    let c = Cluster::builder()
        .config("[tls]\ncertificate_lifetime_s = 12")
        .nodes(2)
        .start();
    let first = identity_of(&c.node(2).data_dir).info().clone();
    // Past the first certificate's end: renewed (at least) twice by then.
    wait_for(
        Duration::from_secs(60),
        "node 2 renews past its first certificate",
        || {
            let now = identity_of(&c.node(2).data_dir).info().clone();
            if now.serial != first.serial && helix::time::now_ms() > first.not_after_ms + 1000 {
                Ok(())
            } else {
                Err(format!(
                    "serial {} valid until {}",
                    now.serial, now.not_after_ms
                ))
            }
        },
    );
    c.client(2).create_model_acked("trust/after-renewal", WAIT);
    c.client(1)
        .create_model_acked("trust/after-renewal-2", WAIT);
    // Each renewal is audited as the cluster's own act.
    let issued = c
        .client(1)
        .get_ok("/api/v1/audit?actor=cluster&kind=certificate_issued");
    let node2 = serde_json::json!(c.id(2).to_string());
    assert!(
        issued
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == node2),
        "{issued}"
    );
}
