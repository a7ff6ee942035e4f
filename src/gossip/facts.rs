//! The facts gossip spreads: each node's replicas (ready or not, and their load as their
//! vLLM reports it) and its gateway's requests in flight per replica, as a versioned
//! broadcast that a newer one from the same node replaces. Ephemeral: nothing here is
//! stored, and a restarted node starts from nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// A replica as its node last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotFacts {
    /// Its vLLM answers `/metrics`.
    pub ready: bool,
    pub waiting: f64,
    pub running: f64,
    /// 0.0 to 1.0.
    pub kv_cache: f64,
}

impl SlotFacts {
    /// The load vLLM reports on its `/metrics` (Prometheus text), summed over label sets.
    pub fn from_metrics(text: &str) -> SlotFacts {
        let mut facts = SlotFacts {
            ready: true,
            ..SlotFacts::default()
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let Some(value) = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            else {
                continue;
            };
            match name {
                "vllm:num_requests_waiting" => facts.waiting += value,
                "vllm:num_requests_running" => facts.running += value,
                "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => {
                    facts.kv_cache = facts.kv_cache.max(value)
                }
                _ => {}
            }
        }
        facts
    }
}

/// What one node says about its replicas and its gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    pub slots: BTreeMap<String, SlotFacts>,
    pub in_flight: BTreeMap<String, u64>,
}

/// Identifies one node's broadcast; a newer version replaces an older one in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsKey {
    pub node: u64,
    /// The publishing node's clock (ms); it only grows there.
    pub version: u64,
}

impl foca::Invalidates for FactsKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.version > other.version
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    pub key: FactsKey,
    pub facts: NodeFacts,
}

#[derive(Debug, thiserror::Error)]
#[error("a gossip broadcast that does not decode: {0}")]
pub struct BadBroadcast(String);

/// The latest facts of every node that gossiped them; shared with whoever reads them, as
/// foca owns the handler.
#[derive(Default, Clone)]
pub struct FactsBook {
    pub latest: Arc<Mutex<BTreeMap<u64, Broadcast>>>,
}

impl<T> foca::BroadcastHandler<T> for FactsBook {
    type Key = FactsKey;
    type Error = BadBroadcast;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<FactsKey>, BadBroadcast> {
        let broadcast: Broadcast =
            postcard::from_bytes(data).map_err(|e| BadBroadcast(e.to_string()))?;
        let key = broadcast.key;
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let newer = latest
            .get(&key.node)
            .is_none_or(|known| known.key.version < key.version);
        if !newer {
            return Ok(None);
        }
        latest.insert(key.node, broadcast);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    #[test]
    fn vllm_metrics_become_facts() {
        let text = "# TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{model_name=\"m\"} 3\n\
            vllm:num_requests_waiting{model_name=\"m\"} 12\n\
            vllm:kv_cache_usage_perc{model_name=\"m\"} 0.375\n\
            other_metric 99\n";
        assert_eq!(
            SlotFacts::from_metrics(text),
            SlotFacts {
                ready: true,
                waiting: 12.0,
                running: 3.0,
                kv_cache: 0.375
            }
        );
    }

    #[test]
    fn only_newer_facts_replace_and_spread() {
        let mut book = FactsBook::default();
        let broadcast = |version| Broadcast {
            key: FactsKey { node: 2, version },
            facts: NodeFacts::default(),
        };
        let bytes = |b: &Broadcast| postcard::to_allocvec(b).unwrap();
        let mut receive = |b: &Broadcast| {
            BroadcastHandler::<()>::receive_item(&mut book, &bytes(b), None).unwrap()
        };
        assert!(receive(&broadcast(5)).is_some());
        assert!(receive(&broadcast(5)).is_none(), "seen: not spread again");
        assert!(receive(&broadcast(4)).is_none(), "older: ignored");
        assert!(receive(&broadcast(6)).is_some());
    }
}
