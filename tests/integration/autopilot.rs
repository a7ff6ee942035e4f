//! Autopilot: the first five members to join vote, and a voter that stays unreachable for
//! `raft.autopilot_dead_after_ms` is replaced by a healthy learner, in the audit log and on
//! the status page.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::*;

/// (voters, learners) as node `k` reports them.
fn roles(c: &Cluster, k: usize) -> Result<(BTreeSet<u64>, BTreeSet<u64>), String> {
    let status = c.status(k)?;
    let members = status["members"]
        .as_array()
        .ok_or_else(|| format!("no members: {status}"))?;
    let ids = |voter: bool| {
        members
            .iter()
            .filter(|m| m["voter"] == json!(voter))
            .filter_map(|m| m["id"].as_u64())
            .collect()
    };
    Ok((ids(true), ids(false)))
}

#[test]
fn the_first_five_vote_and_a_dead_voter_is_replaced_by_the_learner() {
    let mut c = Cluster::builder()
        .raft("autopilot_dead_after_ms = 5000")
        .nodes(6)
        .start();
    let ids: Vec<u64> = (1..=6).map(|k| c.id(k)).collect();
    let (voters, learners) = roles(&c, 1).expect("status");
    assert_eq!(
        voters,
        ids[..5].iter().copied().collect(),
        "the first five to join vote"
    );
    assert_eq!(learners, BTreeSet::from([ids[5]]), "the sixth learns");
    // Readiness says which: both serve, a load balancer may send to either.
    for (k, role) in [(1, "voter"), (6, "learner")] {
        let ready = Client::new(&c.node(k).api_addr).get("/readyz");
        assert_eq!(ready.json()["role"], role, "node{k}: {}", ready.text());
    }

    // A voter dies for good (not the leader: its death costs an election besides).
    let leader = c.wait_leader(&[1, 2, 3, 4, 5, 6]);
    let dead = (1..=5).find(|&k| k != leader).unwrap();
    let (dead_id, learner_id) = (c.id(dead), ids[5]);
    c.kill9(dead);
    wait_for(
        WAIT,
        "autopilot promotes the learner and demotes the dead voter",
        || {
            let (voters, learners) = roles(&c, leader)?;
            if voters.contains(&learner_id) && learners.contains(&dead_id) && voters.len() == 5 {
                Ok(())
            } else {
                Err(format!("voters {voters:?}, learners {learners:?}"))
            }
        },
    );
    c.client(leader).create_model_acked("autopilot/after", WAIT);

    wait_for(WAIT, "the audit log records both changes", || {
        let audit = c.client(leader).poll_json("/api/v1/audit?actor=cluster")?;
        let target_of = |kind: &str| {
            audit
                .as_array()
                .and_then(|a| a.iter().find(|e| e["kind"] == kind))
                .map(|e| e["target"].clone())
        };
        if target_of("autopilot_promoted") == Some(json!(learner_id.to_string()))
            && target_of("autopilot_demoted") == Some(json!(dead_id.to_string()))
        {
            Ok(())
        } else {
            Err(audit.to_string())
        }
    });

    let status: Value = c.status(leader).expect("status");
    let autopilot = &status["autopilot"];
    assert_eq!(autopilot["dead_after_ms"], 5000, "{status}");
    assert_eq!(
        autopilot["last_action"]["kind"], "autopilot_demoted",
        "{status}"
    );
    assert_eq!(autopilot["last_action"]["node_id"], dead_id, "{status}");
    let dead_member = status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == dead_id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(dead_member["reachable"], false, "{dead_member}");
    let out = c.cli(leader, &["cluster", "status"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("last demoted node {dead_id}")),
        "{said}"
    );
}
