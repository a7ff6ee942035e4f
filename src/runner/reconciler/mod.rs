//! The reconciler: makes this node's vLLM processes match the committed slots placed here.
//!
//! It never acts on a request, only on applied state (plus a tick to watch its processes):
//! launch what is placed here and not running, restart what crashed (with exponential
//! backoff), stop what moved away or was deleted, and report each slot's state back into the
//! replicated state. A slot that failed because its model is gated is retried at once when
//! the token that applies to it changes. A node out of touch with the quorum stops every
//! slot (the fence, `fence.rs`) and starts them again once back, from the caught-up state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::fence::{Fence, Fenced, Verdict};
use super::gated::looks_gated;
use super::launch::{cuda_visible_devices, pick_port, vllm_argv};
use super::process::{kill_strays, log_tail, LaunchSpec, VllmProcess};
use super::report::{report_slots, Report};
use super::tokens::{TokenChoice, Tokens};
use crate::cluster::{Cluster, Consistency};
use crate::config::RunnerTuning;
use crate::metrics::names;
use crate::state::{Command, Model, SlotState, SlotStatus};

mod supervise;

/// How often processes are checked between state changes.
const TICK: Duration = Duration::from_millis(250);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A process that ran this long before failing starts its backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

pub struct Reconciler {
    cluster: Cluster,
    tokens: Tokens,
    vllm_command: Vec<String>,
    /// `DATA_DIR/slots`: one folder per slot, with `vllm.log` and `pid`.
    slots_dir: PathBuf,
    tuning: RunnerTuning,
    local: BTreeMap<String, LocalSlot>,
    /// Slot reports, written to the cluster by a separate task so a slow write never
    /// delays process supervision.
    reports: mpsc::UnboundedSender<Report>,
    unsent: Option<mpsc::UnboundedReceiver<Report>>,
    fence: Fence,
    /// What the fence holds, for `/readyz`.
    fenced: Fenced,
}

/// This node's knowledge of one slot placed here.
struct LocalSlot {
    generation: u64,
    process: Option<VllmProcess>,
    status: SlotStatus,
    launched_at: Option<Instant>,
    /// Earliest time of the next launch after a failure.
    retry_at: Option<Instant>,
    consecutive_failures: u32,
    /// The token choice the current (or last) process was launched with.
    launched_with: Option<TokenChoice>,
    /// Set when the last failure was a gated model: the token choice it failed with.
    /// Retried when the choice for it changes.
    gated_with: Option<TokenChoice>,
    /// What the running process was launched with, to notice a model update.
    launched: Option<LaunchedModel>,
}

/// The parts of a model that shape its command line.
#[derive(Debug, Clone, PartialEq)]
struct LaunchedModel {
    runtime_args: Vec<String>,
    context_length: Option<u64>,
}

impl LaunchedModel {
    fn of(model: &Model) -> LaunchedModel {
        LaunchedModel {
            runtime_args: model.runtime_args.clone(),
            context_length: model.context_length,
        }
    }
}

/// What the committed state places on this node.
struct Desired {
    generation: u64,
    model: Model,
    gpu_indices: Vec<u32>,
    restarts: u32,
}

impl Reconciler {
    pub fn new(
        cluster: Cluster,
        tokens: Tokens,
        vllm_command: Vec<String>,
        data_dir: PathBuf,
        tuning: RunnerTuning,
        fenced: Fenced,
    ) -> Reconciler {
        let (tx, rx) = mpsc::unbounded_channel();
        Reconciler {
            cluster,
            tokens,
            vllm_command,
            slots_dir: data_dir.join("slots"),
            local: BTreeMap::new(),
            reports: tx,
            unsent: Some(rx),
            fence: Fence::new(tuning.fence_after),
            fenced,
            tuning,
        }
    }

    /// Run until shutdown, then stop every local vLLM process.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let killed = kill_strays(&self.slots_dir);
        if killed > 0 {
            tracing::warn!(
                killed,
                "stopped vLLM processes left over from an earlier run"
            );
        }
        if let Some(reports) = self.unsent.take() {
            tokio::spawn(report_slots(
                self.cluster.clone(),
                reports,
                shutdown.clone(),
            ));
        }
        // The state on disk may be old: a slot placed here before a crash may have moved
        // since. Launch nothing until this replica has caught up with the leader.
        loop {
            if self.cluster.read(Consistency::Linearizable).await.is_ok() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => return,
            }
        }
        let mut changes = self.cluster.replica().subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            self.reconcile().await;
        }
        let local = std::mem::take(&mut self.local);
        let mut stops = Vec::new();
        let mut stopped = Vec::new();
        for (slot_id, slot) in local {
            if let Some(process) = slot.process {
                stops.push(process.stop(self.tuning.stop_grace));
            }
            stopped.push((slot_id, slot.generation, slot.status));
        }
        futures::future::join_all(stops).await;
        // Say so, if the cluster still listens; a node going down must not wait on it long.
        let cluster = self.cluster.clone();
        let report = async move {
            for (slot_id, generation, status) in stopped {
                let _ = cluster
                    .propose_system(Command::ReportSlot {
                        slot_id,
                        node_id: cluster.node_id(),
                        generation,
                        status: SlotStatus {
                            state: SlotState::Stopped,
                            ..status
                        },
                    })
                    .await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), report).await;
    }

    fn desired(&self) -> BTreeMap<String, Desired> {
        let me = self.cluster.node_id();
        let replica = self.cluster.replica();
        // A node removed from the cluster runs nothing, whatever it last heard (it seldom
        // hears of its removal through Raft: `Cluster::removed`).
        if !replica.is_member(me) || self.cluster.removed().is_some() {
            return BTreeMap::new();
        }
        replica.read(|state| {
            state
                .slots
                .values()
                .filter_map(|slot| {
                    let placement = slot.placement.as_ref().filter(|p| p.node_id == me)?;
                    let model = state.models.get(&slot.model_id)?;
                    Some((
                        slot.id.clone(),
                        Desired {
                            generation: slot.generation,
                            model: model.clone(),
                            gpu_indices: placement.gpu_indices.clone(),
                            restarts: slot.status.restarts,
                        },
                    ))
                })
                .collect()
        })
    }

    async fn reconcile(&mut self) {
        let mut silence = self.cluster.quorum_silence();
        if self.fence.would_fence(silence) {
            // What this node knows may be old (its process was paused): ask the leader first.
            self.cluster.refresh_contact().await;
            silence = self.cluster.quorum_silence();
        }
        match self.fence.look(silence) {
            Verdict::InTouch => {}
            Verdict::Fenced(reason) => return self.fence_slots(&reason),
            Verdict::Rejoining => {
                // The slots may have moved while we were away: only the caught-up state says.
                if self.cluster.read(Consistency::Linearizable).await.is_err() {
                    return;
                }
                self.fence.lift();
                self.fenced.set(None);
                tracing::info!(
                    "back in touch with the quorum and caught up: starting the slots still \
                     placed here"
                );
            }
        }
        let desired = self.desired();

        // Stop what is no longer placed here (or was placed again: a new generation).
        let gone: Vec<String> = self
            .local
            .iter()
            .filter(|(id, s)| {
                desired
                    .get(*id)
                    .is_none_or(|d| d.generation != s.generation)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for slot_id in gone {
            if let Some(mut slot) = self.local.remove(&slot_id) {
                if let Some(process) = slot.process.take() {
                    tracing::info!(slot = %slot_id, pid = process.pid(), "stopping vLLM: slot moved away or was removed");
                    tokio::spawn(process.stop(self.tuning.stop_grace));
                }
            }
        }

        for (slot_id, want) in desired {
            let slot = self
                .local
                .entry(slot_id.clone())
                .or_insert_with(|| LocalSlot {
                    generation: want.generation,
                    process: None,
                    status: SlotStatus {
                        restarts: want.restarts,
                        ..SlotStatus::default()
                    },
                    launched_at: None,
                    retry_at: None,
                    consecutive_failures: 0,
                    launched_with: None,
                    gated_with: None,
                    launched: None,
                });
            let before = slot.status.clone();
            let generation = slot.generation;
            self.supervise(&slot_id, &want).await;
            let slot = &self.local[&slot_id];
            if slot.status != before {
                let _ = self.reports.send(Report {
                    slot_id: slot_id.clone(),
                    generation,
                    status: slot.status.clone(),
                });
            }
        }
        super::metrics::slots(self.local.values().map(|s| s.status.state));
    }

    /// Stops every local process, keeping the slots with state `stopped` and the reason.
    fn fence_slots(&mut self, reason: &str) {
        self.fenced.set(Some(self.local.len()));
        for (slot_id, slot) in &mut self.local {
            if let Some(process) = slot.process.take() {
                tracing::warn!(slot = %slot_id, pid = process.pid(), "stopping vLLM: {reason}");
                tokio::spawn(process.stop(self.tuning.stop_grace));
            }
            slot.retry_at = None;
            // Said once: the reason's silence grows at every look.
            if slot.status.state != SlotState::Stopped {
                slot.status.state = SlotState::Stopped;
                slot.status.last_error = Some(reason.to_string());
                let _ = self.reports.send(Report {
                    slot_id: slot_id.clone(),
                    generation: slot.generation,
                    status: slot.status.clone(),
                });
            }
        }
        super::metrics::slots(self.local.values().map(|s| s.status.state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config gives the fence a tick of slack after `fence_after` (and the lease that
    /// asking the leader takes).
    #[test]
    fn the_fence_looks_within_its_slack() {
        assert!(TICK <= crate::config::FENCE_TICK);
    }
}
