//! A runner's reports on its slots, written into the replicated state: the latest per slot,
//! retried until written, so a report is never lost to a leader change.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cluster::Cluster;
use crate::state::{Command, SlotStatus};

#[derive(Debug, Clone)]
pub(super) struct Report {
    pub slot_id: String,
    pub generation: u64,
    pub status: SlotStatus,
}

/// Write slot reports into the replicated state, latest per slot, retrying failed writes.
pub(super) async fn report_slots(
    cluster: Cluster,
    mut reports: mpsc::UnboundedReceiver<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: BTreeMap<String, Report> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            tokio::select! {
                r = reports.recv() => match r {
                    Some(r) => { pending.insert(r.slot_id.clone(), r); }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
        while let Ok(r) = reports.try_recv() {
            pending.insert(r.slot_id.clone(), r);
        }
        let batch: Vec<Report> = pending.values().cloned().collect();
        for report in batch {
            let written = cluster
                .propose_system(Command::ReportSlot {
                    slot_id: report.slot_id.clone(),
                    node_id: cluster.node_id(),
                    generation: report.generation,
                    status: report.status.clone(),
                })
                .await;
            match written {
                Ok(_) => {
                    // Keep a newer report that arrived meanwhile.
                    if pending
                        .get(&report.slot_id)
                        .is_some_and(|p| p.status == report.status)
                    {
                        pending.remove(&report.slot_id);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "slot report not written yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => return,
                    }
                    break;
                }
            }
        }
    }
}
