//! Which API keys this node saw in use. Noted on every authenticated request and reported
//! through Raft at most once per interval (`server.key_use_report_ms`, a minute by default):
//! a write per request would cost a consensus round each, so "last used" is that coarse.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Cluster;
use crate::state::{Command, TOUCHED_KEYS_MAX};

/// The key hashes seen since the last report.
#[derive(Clone, Default)]
pub struct KeyUse(Arc<Mutex<BTreeSet<String>>>);

impl KeyUse {
    pub fn note(&self, key_hash: &str) {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.contains(key_hash) {
            seen.insert(key_hash.to_owned());
        }
    }

    fn take(&self) -> Vec<String> {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *seen).into_iter().collect()
    }

    /// Report every `every` until `stop`; what could not be reported waits for the next.
    pub async fn report(self, cluster: Cluster, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            for chunk in self.take().chunks(TOUCHED_KEYS_MAX) {
                let key_hashes = chunk.to_vec();
                let command = Command::TouchApiKeys {
                    key_hashes: key_hashes.clone(),
                };
                if let Err(e) = cluster.propose_system(command).await {
                    tracing::debug!(error = %e, "could not report API key use yet");
                    key_hashes.iter().for_each(|h| self.note(h));
                }
            }
        }
    }
}
