//! A node's life without traps: a refused join leaves nothing behind, a restart with other
//! addresses is refused, `/readyz` says why a node cannot serve, a removed node stops its
//! slots, and `helix node leave` takes a follower or the leader out gracefully.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// `GET /readyz` on node `k`: its status and body.
fn readyz(c: &Cluster, k: usize) -> Result<(u16, Value), String> {
    let r = c
        .caller(k, None, "probe")
        .timeout(Duration::from_secs(2))
        .try_send("GET", "/readyz", None)
        .map_err(|e| e.to_string())?;
    Ok((r.status, r.json()))
}

/// Waits until node `k`'s `/readyz` answers 503 with an error containing `why`.
fn wait_not_ready(c: &Cluster, k: usize, why: &str) -> String {
    wait_for(WAIT, &format!("node{k}'s /readyz says {why:?}"), || {
        let (status, body) = readyz(c, k)?;
        let error = body["error"].as_str().unwrap_or_default().to_string();
        if status == 503 && error.contains(why) {
            Ok(error)
        } else {
            Err(format!("{status} {body}"))
        }
    })
}

fn wait_ready_200(c: &Cluster, k: usize) {
    wait_for(
        WAIT,
        &format!("node{k}'s /readyz answers 200"),
        || match readyz(c, k)? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    );
}

#[test]
fn a_refused_join_leaves_nothing_that_stops_the_next_one() {
    let mut c = Cluster::new(1);
    let k = c.add_node(NodeSpec::none());
    // The right token's id with another secret: the cluster refuses it.
    let mut parts: Vec<String> = c.join_token.split('.').map(str::to_string).collect();
    parts[2] = "0".repeat(32);
    c.spawn_join(k, 1, &parts.join("."));
    let status = c.wait_gone(k, WAIT);
    assert_eq!(status.code(), Some(1), "a refused join exits 1: {status}");
    assert!(
        c.log(k).contains("not valid for this cluster"),
        "{}",
        c.log(k)
    );
    // The same data dir with the right token: it joins and serves.
    c.join(k, 1);
    wait_ready_200(&c, k);
    c.wait_members_settled();
}

#[test]
fn a_restart_with_other_addresses_is_refused_naming_the_stored_ones() {
    let mut c = Cluster::new(1);
    c.stop(1);
    let stored_api = c.node(1).api_addr.clone();
    let stored_peer = c.node(1).peer_addr.clone();
    let (ip, _) = stored_peer.split_once(':').unwrap();
    let other_peer = format!("{ip}:{}", free_port_on(ip));
    let args: Vec<String> = c
        .node_args(1)
        .into_iter()
        .map(|a| {
            if a == stored_peer {
                other_peer.clone()
            } else {
                a
            }
        })
        .collect();
    let out = Command::new(helix_bin())
        .args(["node", "start"])
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run helix");
    assert!(!out.status.success(), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    for addr in [&stored_api, &stored_peer, &other_peer] {
        assert!(said.contains(addr.as_str()), "names {addr}: {said}");
    }
    // With its stored addresses it starts as before.
    c.restart(1);
    wait_ready_200(&c, 1);
}

fn free_port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn readyz_says_when_the_leader_cannot_reach_a_node_and_when_it_was_removed() {
    let mut c = Cluster::builder()
        .nodes(2)
        .node(NodeSpec::gpus("80GB"))
        .start();
    let gone = 3;
    for k in 1..=3 {
        wait_ready_200(&c, k);
    }
    // A follower that hears from no leader is not ready, and is again once it does.
    let leader = c.wait_leader(&[1, 2, 3]);
    let followers: Vec<usize> = (1..=3).filter(|&k| k != leader).collect();
    let (lonely, other) = (followers[0], followers[1]);
    c.pause(leader);
    c.pause(other);
    let error = wait_not_ready(&c, lonely, "leader");
    assert!(error.contains("no append"), "{error}");
    c.resume(leader);
    c.resume(other);
    // The resumed leader heard from no quorum while it was stopped, so it steps down and
    // refuses writes until a leader is elected: every node ready again means that is done.
    for k in 1..=3 {
        wait_ready_200(&c, k);
    }

    // A removed node stops its slots and says so.
    let model = "life/removed";
    c.create_model(1, &model_json(model, "39GB", &[]));
    let slot = c.wait_running(1, model);
    let slot_id = slot["id"].as_str().unwrap().to_string();
    assert_eq!(c.node_of(&slot), gone, "{slot}");
    let id = c.id(gone);
    c.client(1)
        .expect("DELETE", &format!("/api/v1/nodes/{id}"), None, 200);
    let error = wait_not_ready(&c, gone, "removed");
    assert!(error.contains("removed from the cluster"), "{error}");
    wait_until(WAIT, "the removed node stops its vLLM", || {
        c.live_fakes(&slot_id).is_empty()
    });
    let status = c.status(gone).expect("the removed node's status");
    assert_eq!(status["ready"], false, "{status}");
    assert!(
        status["not_ready"]
            .as_str()
            .is_some_and(|r| r.contains("removed")),
        "{status}"
    );
    // Said once in its log, when its removal watch next looks (within the stall tolerance).
    wait_until(WAIT, "the removed node says it was removed", || {
        c.log(gone)
            .contains("this node was removed from the cluster")
    });
}

#[test]
fn a_follower_and_then_the_leader_leave_and_the_cluster_keeps_serving() {
    let mut c = Cluster::new(3);
    let leader = c.wait_leader(&[1, 2, 3]);
    let follower = (1..=3).find(|&k| k != leader).unwrap();
    let remaining = (1..=3).find(|&k| k != leader && k != follower).unwrap();

    let leave = |c: &Cluster, k: usize| {
        let id = c.id(k).to_string();
        let out = c.cli(k, &["node", "leave", &id]);
        assert!(out.status.success(), "{}", transcript(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(&format!("node {id} left")), "{said}");
    };
    // The id guards against a URL that reaches another node.
    let wrong = c.cli(follower, &["node", "leave", &c.id(leader).to_string()]);
    assert!(!wrong.status.success(), "{}", transcript(&wrong));

    leave(&c, follower);
    let status = c.wait_gone(follower, WAIT);
    assert_eq!(status.code(), Some(0), "the follower exits 0: {status}");
    let gone = c.id(follower);
    wait_for(WAIT, "the follower is gone from the member list", || {
        let ids = c.member_ids(leader)?;
        if ids.contains(&gone) {
            Err(format!("{ids:?}"))
        } else {
            Ok(())
        }
    });
    c.client(remaining)
        .create_model_acked("life/after-follower", WAIT);

    leave(&c, leader);
    let status = c.wait_gone(leader, WAIT);
    assert_eq!(status.code(), Some(0), "the leader exits 0: {status}");
    assert_eq!(c.wait_leader(&[remaining]), remaining);
    let ids = c.member_ids(remaining).expect("members");
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![c.id(remaining)],
        "only the remaining node is a member"
    );
    let list = c.cli(remaining, &["--output", "json", "node", "list"]);
    assert!(list.status.success(), "{}", transcript(&list));
    let nodes: Value = serde_json::from_slice(&list.stdout).expect("JSON");
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    c.client(remaining)
        .create_model_acked("life/after-leader", WAIT);
    // The new leader forgets both records; their certificates are refused from then on.
    let left: Vec<Value> = [gone, c.id(leader)]
        .iter()
        .map(|id| Value::String(id.to_string()))
        .collect();
    wait_for(WAIT, "both leavers are in the audit log as removed", || {
        let audit = c
            .client(remaining)
            .poll_json("/api/v1/audit?actor=cluster&kind=node_removed")?;
        let targets: Vec<Value> = audit
            .as_array()
            .map(|a| a.iter().map(|e| e["target"].clone()).collect())
            .unwrap_or_default();
        if left.iter().all(|id| targets.contains(id)) {
            Ok(())
        } else {
            Err(audit.to_string())
        }
    });
}
