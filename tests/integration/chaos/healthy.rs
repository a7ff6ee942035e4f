//! The workload against a healthy cluster: its history is linearizable, no acknowledged write
//! is lost, and it holds plenty of successful operations through every node.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{check, Workload, WorkloadSpec};
use crate::common::{wait_for, Cluster, WAIT};

#[test]
fn records_a_linearizable_history_on_a_healthy_cluster() {
    let c = Cluster::new(3);
    let endpoints = c.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let spec = WorkloadSpec {
        // Paced, so that six clients leave room on a loaded 2-core machine.
        pause_between_ops: Duration::from_millis(10),
        ..WorkloadSpec::default()
    };
    let workload = Workload::start(endpoints, c.admin_key.clone(), spec);
    wait_for(WAIT, "the clients have 300 writes acknowledged", || {
        let acked = workload.acked_writes();
        if acked >= 300 {
            Ok(())
        } else {
            Err(format!("{acked} so far"))
        }
    });
    let (end, keys) = (workload.now(), workload.keys().to_vec());
    let history = workload.finish(WAIT);
    let counts = history.counts();
    let verdict = check(&history);
    let gap = history.longest_write_gap(Duration::ZERO, end);
    let report = format!("{counts}\nlongest write gap: {gap:?}\n{verdict}");
    assert!(
        verdict.linearizable() && verdict.lost_acks() == 0,
        "{report}"
    );
    println!("{report}");
    // Healthy: every node answers, no write is left in doubt.
    assert!(counts.writes.ok >= 300, "{counts}");
    assert_eq!(
        (counts.writes.fail, counts.writes.unknown),
        (0, 0),
        "{counts}"
    );
    assert!(
        counts.reads.ok >= 20 && counts.stale_reads.ok >= 10,
        "{counts}"
    );
    // The final reads: every key read back after the clients stopped.
    assert_eq!(history.keys().len(), keys.len());
    for key in keys {
        let last = history.ops.iter().rfind(|op| op.key == key).unwrap();
        assert!(last.is_linearizable_read() && last.is_ok(), "{last}");
    }
    let nodes: BTreeSet<usize> = history.ops.iter().map(|op| op.node).collect();
    assert_eq!(nodes.len(), 3, "writes and reads go through every node");
}
