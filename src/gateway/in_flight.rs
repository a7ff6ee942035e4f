//! Requests this gateway has in flight to each replica: part of a replica's load as routing
//! sees it, and, gossiped, as other gateways see it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::names;

#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, u64>>>);

impl InFlight {
    pub fn get(&self, slot_id: &str) -> u64 {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(slot_id).copied().unwrap_or(0)
    }

    /// Count one request to `slot_id` until the returned guard is dropped.
    pub fn enter(&self, slot_id: &str) -> InFlightGuard {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(slot_id.to_string()).or_default() += 1;
        ::metrics::gauge!(names::GATEWAY_IN_FLIGHT).increment(1.0);
        InFlightGuard {
            counts: self.clone(),
            slot_id: slot_id.to_string(),
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

pub struct InFlightGuard {
    counts: InFlight,
    slot_id: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        ::metrics::gauge!(names::GATEWAY_IN_FLIGHT).decrement(1.0);
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.slot_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.slot_id);
            }
        }
    }
}
