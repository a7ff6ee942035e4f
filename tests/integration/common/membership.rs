//! What the cluster says about itself: its status, leader, members and their GPUs.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::cluster::Cluster;
use super::wait::{wait_for, WAIT};

impl Cluster {
    /// `GET /api/v1/cluster/status` on node `k`.
    pub fn status(&self, k: usize) -> Result<Value, String> {
        self.client(k).poll_json("/api/v1/cluster/status")
    }

    /// The term node `k` reports.
    pub fn term(&self, k: usize) -> Result<u64, String> {
        let st = self.status(k)?;
        st["term"]
            .as_u64()
            .ok_or_else(|| format!("no term in {st}"))
    }

    /// The member ids node `k` reports.
    pub fn member_ids(&self, k: usize) -> Result<BTreeSet<u64>, String> {
        Ok(members(&self.status(k)?)?.ids)
    }

    /// Waits until every node in `ks` reports the same leader, which is one of `ks`;
    /// returns the leader's index.
    pub fn wait_leader(&self, ks: &[usize]) -> usize {
        wait_for(
            WAIT,
            &format!("nodes {ks:?} agree on a leader among them"),
            || {
                let mut seen = Vec::new();
                for &k in ks {
                    seen.push(self.status(k)?["leader_id"].as_u64());
                }
                let first = seen[0].ok_or_else(|| format!("leaders seen: {seen:?}"))?;
                if seen.iter().any(|l| *l != Some(first)) {
                    return Err(format!("leaders seen: {seen:?}"));
                }
                match self.index_of(first) {
                    Some(k) if ks.contains(&k) => Ok(k),
                    _ => Err(format!("leader id {first} is not one of {ks:?}")),
                }
            },
        )
    }

    /// Waits until every running node reports all started nodes as members, the first five
    /// of them (`raft.max_voters`) as voters, and a leader.
    pub fn wait_members_settled(&mut self) {
        let ids: BTreeSet<u64> = self.nodes.iter().filter_map(|n| n.id).collect();
        let want_voters = ids.len().min(5);
        let running: Vec<usize> = (1..=self.nodes.len())
            .filter(|&k| self.is_running(k))
            .collect();
        for k in running {
            wait_for(
                WAIT,
                &format!(
                    "node{k} reports members {ids:?}, {want_voters} of them voters, and a leader"
                ),
                || {
                    let st = self.status(k)?;
                    let m = members(&st)?;
                    if m.ids == ids && m.voters == want_voters && st["leader_id"].is_u64() {
                        Ok(())
                    } else {
                        Err(st.to_string())
                    }
                },
            );
        }
    }

    /// Waits until `GET /api/v1/nodes` shows every node's declared GPUs (placement needs them).
    pub fn wait_gpus_published(&self) {
        for n in self.nodes.iter().filter(|n| n.spec.has_gpus()) {
            let want = declared_gpu_bytes(&n.spec.gpus);
            let id = self.id(n.k);
            wait_for(
                WAIT,
                &format!(
                    "GET /api/v1/nodes shows node{}'s declared GPUs {} (memory {want:?})",
                    n.k, n.spec.gpus
                ),
                || {
                    let v = self.client(1).poll_json("/api/v1/nodes")?;
                    let node = v
                        .as_array()
                        .and_then(|a| a.iter().find(|n| n["id"] == json!(id)))
                        .ok_or_else(|| format!("node {id} not listed: {v}"))?;
                    let got: Vec<u64> = node["gpus"]
                        .as_array()
                        .map(|g| g.iter().filter_map(|g| g["memory"].as_u64()).collect())
                        .unwrap_or_default();
                    if got == want {
                        Ok(())
                    } else {
                        Err(node.to_string())
                    }
                },
            );
        }
    }
}

/// The members of a cluster status: their ids and how many vote.
pub struct Members {
    pub ids: BTreeSet<u64>,
    pub voters: usize,
}

pub fn members(status: &Value) -> Result<Members, String> {
    let list = status["members"]
        .as_array()
        .ok_or_else(|| format!("no members array in {status}"))?;
    let ids = list
        .iter()
        .map(|m| {
            m["id"]
                .as_u64()
                .ok_or_else(|| format!("member without id: {m}"))
        })
        .collect::<Result<_, _>>()?;
    let voters = list.iter().filter(|m| m["voter"] == json!(true)).count();
    Ok(Members { ids, voters })
}

/// `80GB,80GB` as bytes per GPU.
fn declared_gpu_bytes(list: &str) -> Vec<u64> {
    list.split(',')
        .map(|g| {
            let gb: u64 = g
                .strip_suffix("GB")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("test setup: declare GPUs as NGB, got {g:?}"));
            gb * 1_000_000_000
        })
        .collect()
}
