//! `helix operator compact` on this node: when the applied state's request count grows,
//! snapshot and purge the Raft log, so replaced tokens leave this node's log now rather
//! than after the next automatic snapshot.

use tokio::sync::watch;

use crate::cluster::Cluster;

pub async fn follow_requests(cluster: Cluster, mut shutdown: watch::Receiver<bool>) {
    let view = cluster.replica().clone();
    let mut changes = view.subscribe();
    // Requests applied before this start are done or moot: a restarted node replays no
    // request, and one that was away has caught up by snapshot or will purge normally.
    let mut seen = view.read(|s| s.compactions);
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let requested = view.read(|s| s.compactions);
        if requested <= seen {
            continue;
        }
        seen = requested;
        match cluster.compact_log().await {
            Ok(purged) => {
                tracing::info!(purged_through = ?purged, "compacted the Raft log on request")
            }
            Err(e) => tracing::warn!(error = %e, "could not compact the Raft log"),
        }
    }
}
