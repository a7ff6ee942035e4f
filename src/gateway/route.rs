//! Which replica answers a request: the pure part of routing. Candidates are the committed
//! placement's slots of the model that are ready on live nodes; a request with a session key
//! goes to the same replica while it stays a candidate (rendezvous hashing), any other to
//! the less loaded of two picked at random. The order returned is the order of tries: a
//! replica that fails before answering is followed by the next, each tried once.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::state::{Model, SlotState, State};

/// What a replica is doing now, as its node last gossiped it, plus this gateway's own
/// requests in flight to it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub waiting: f64,
    pub running: f64,
    /// 0.0 to 1.0.
    pub kv_cache: f64,
    pub in_flight: u64,
}

impl Load {
    /// Requests ahead of a new one.
    fn queue(&self) -> f64 {
        self.waiting + self.running + self.in_flight as f64
    }

    fn lighter_than(&self, other: &Load) -> bool {
        (self.queue(), self.kv_cache) < (other.queue(), other.kv_cache)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub slot_id: String,
    pub node_id: u64,
    pub load: Load,
}

/// Why no replica of a model can answer now, and when to try again (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    pub reason: String,
    pub retry_after: u64,
}

/// What routing needs to know beyond the committed state: which nodes are alive and which
/// replicas ready, as gossip says, and their load.
pub trait Liveness {
    fn node_alive(&self, node_id: u64) -> bool;
    fn slot_ready(&self, node_id: u64, slot_id: &str) -> bool;
    fn load(&self, node_id: u64, slot_id: &str) -> Load;
}

/// The model's replicas that can take a request now, or why none can.
pub fn candidates(
    state: &State,
    model: &Model,
    live: &impl Liveness,
) -> Result<Vec<Candidate>, NotReady> {
    let slots: Vec<_> = state
        .slots
        .values()
        .filter(|s| s.model_id == model.id)
        .collect();
    let ready: Vec<Candidate> = slots
        .iter()
        .filter(|s| s.status.state == SlotState::Running)
        .filter_map(|s| {
            let node_id = s.placement.as_ref()?.node_id;
            let usable = live.node_alive(node_id) && live.slot_ready(node_id, &s.id);
            usable.then(|| Candidate {
                slot_id: s.id.clone(),
                node_id,
                load: live.load(node_id, &s.id),
            })
        })
        .collect();
    if !ready.is_empty() {
        return Ok(ready);
    }
    let not_ready = |reason: String, retry_after| {
        Err(NotReady {
            reason,
            retry_after,
        })
    };
    if !model.enabled {
        return not_ready(format!("model {:?} is disabled", model.id), 60);
    }
    if slots.is_empty() {
        return match model.prewarm {
            false => not_ready(
                format!("model {:?} is not prewarm, so no replica runs it", model.id),
                60,
            ),
            true => not_ready("no replica is placed yet".into(), 5),
        };
    }
    let mut reasons: Vec<String> = slots
        .iter()
        .map(|s| match (&s.placement, s.status.state) {
            (None, _) => format!(
                "pending: {}",
                s.pending_reason.as_deref().unwrap_or("not placed yet")
            ),
            (Some(_), SlotState::Starting | SlotState::Pending) => "starting".into(),
            (Some(_), SlotState::Failed) => format!(
                "failed: {}",
                s.status.last_error.as_deref().unwrap_or("no reason given")
            ),
            (Some(p), SlotState::Running) if !live.node_alive(p.node_id) => {
                format!("its node {} is not reachable", p.node_id)
            }
            (Some(p), SlotState::Running) => format!("not ready on node {}", p.node_id),
            (Some(_), SlotState::Stopped) => "stopped".into(),
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    let starting = reasons.iter().any(|r| r == "starting");
    not_ready(
        format!("no replica is ready ({})", reasons.join("; ")),
        if starting { 5 } else { 15 },
    )
}

/// The order in which to try `candidates`: the chosen one first.
pub fn order(candidates: &[Candidate], session: Option<&str>, rng: &mut impl Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    if let Some(key) = session {
        // Rendezvous hashing: each replica's score depends only on the key and the replica,
        // so a session keeps its replica while that one stays, whatever others come and go.
        order.sort_by_key(|&i| std::cmp::Reverse(score(key, &candidates[i].slot_id)));
        return order;
    }
    order.shuffle(rng);
    // The power of two choices: of two at random, the lighter goes first.
    if order.len() >= 2
        && candidates[order[1]]
            .load
            .lighter_than(&candidates[order[0]].load)
    {
        order.swap(0, 1);
    }
    // Should it fail, the others from the lightest.
    order[1..].sort_by(|&a, &b| {
        let (a, b) = (&candidates[a].load, &candidates[b].load);
        (a.queue(), a.kv_cache)
            .partial_cmp(&(b.queue(), b.kv_cache))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

/// The same on every node and in every build, so each gateway sends a session alike.
fn score(key: &str, slot_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update([0])
        .chain_update(slot_id.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn candidate(slot: &str, waiting: f64) -> Candidate {
        Candidate {
            slot_id: slot.into(),
            node_id: 1,
            load: Load {
                waiting,
                ..Load::default()
            },
        }
    }

    #[test]
    fn the_lighter_of_two_goes_first() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cands = [candidate("a", 50.0), candidate("b", 0.0)];
        for _ in 0..100 {
            assert_eq!(order(&cands, None, &mut rng), vec![1, 0]);
        }
    }

    #[test]
    fn equal_replicas_share_the_requests() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cands = [candidate("a", 0.0), candidate("b", 0.0)];
        let first_a = (0..1000)
            .filter(|_| order(&cands, None, &mut rng)[0] == 0)
            .count();
        assert!((400..=600).contains(&first_a), "{first_a} of 1000 to a");
    }

    #[test]
    fn a_session_keeps_its_replica_while_it_stays() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cands = [
            candidate("a", 0.0),
            candidate("b", 0.0),
            candidate("c", 0.0),
        ];
        let first = order(&cands, Some("alice"), &mut rng)[0];
        for _ in 0..20 {
            assert_eq!(order(&cands, Some("alice"), &mut rng)[0], first);
        }
        // Another replica going away does not move it.
        let kept: Vec<Candidate> = cands
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == first || *i == (first + 1) % 3)
            .map(|(_, c)| c.clone())
            .collect();
        let again = order(&kept, Some("alice"), &mut rng)[0];
        assert_eq!(kept[again].slot_id, cands[first].slot_id);
        // Sessions spread over the replicas.
        let spread: std::collections::BTreeSet<usize> = (0..50)
            .map(|i| order(&cands, Some(&format!("user-{i}")), &mut rng)[0])
            .collect();
        assert_eq!(spread.len(), 3);
    }
}
