//! Issue 15, part 5, disk faults in a three-node cluster: a leader whose disk fills up is
//! replaced, answers stale reads meanwhile and catches up once there is room (a full
//! follower: `storage.rs`); a slow disk (the debug build's injected flush delay, see
//! `src/test_faults.rs`) costs no election while its stalls stay under the stall tolerance,
//! and a leader stalled past it is replaced. The full disk is a small tmpfs: root only.

use std::collections::BTreeSet;
use std::fs;
use std::sync::{Arc, Mutex};
use std::thread;

use helix::test_faults::FLUSH_DELAY_FILE;
use serde_json::Value;

use crate::common::disk::{fill, move_to_tmpfs, FaultFile, Tmpfs};
use crate::common::writer::{assert_no_acknowledged_write_lost, WriteLog, Writers};
use crate::common::*;

/// Room for a node's data dir and everything the test writes (every node gets one).
const TMPFS_SIZE: &str = "48m";

fn readyz(c: &Cluster, k: usize) -> Result<(u16, Value), String> {
    let r = c
        .caller(k, None, "anonymous")
        .try_send("GET", "/readyz", None)
        .map_err(|e| e.to_string())?;
    Ok((r.status, r.json()))
}

fn acked(log: &Mutex<WriteLog>) -> usize {
    log.lock().unwrap().acked.len()
}

#[test]
fn a_leader_whose_disk_fills_up_is_replaced_serves_stale_reads_and_recovers_by_itself() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    // Every data dir on a tmpfs, so whichever node leads can have its disk filled.
    let _disks: Vec<Tmpfs> = all
        .iter()
        .map(|&k| move_to_tmpfs(&mut c, k, TMPFS_SIZE))
        .collect();
    let old = c.wait_leader(&all);
    let others: Vec<usize> = all.into_iter().filter(|&k| k != old).collect();
    c.client(old).create_model_acked("full/before", WAIT);

    let log = Arc::new(Mutex::new(WriteLog::default()));
    // Two writers through each follower, so the leader's log soon needs more room.
    let writers = [
        Writers::start(&c, &others, "full/a", &log),
        Writers::start(&c, &others, "full/b", &log),
    ];
    wait_until(WAIT, "writes are acknowledged", || acked(&log) >= 6);
    let filler = fill(&c.node(old).data_dir.clone());

    let (_, ready) = wait_for(WAIT, "the full leader's storage fails", || {
        match readyz(&c, old)? {
            (503, v)
                if v["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("storage failed")) =>
            {
                Ok((503, v))
            }
            other => Err(format!("{other:?}")),
        }
    });
    let reason = ready["error"].as_str().unwrap();
    assert!(reason.contains("No space left on device"), "{ready}");
    // Its Raft has stopped: the other two elect a leader and writes go on.
    c.wait_leader(&others);
    let at_failure = acked(&log);
    wait_until(WAIT, "writes go on with the new leader", || {
        acked(&log) >= at_failure + 6
    });

    // The full node refuses writes with the reason, and still answers stale reads.
    let r = c
        .client(old)
        .try_create_model("full/through-the-full-node")
        .unwrap();
    assert_eq!(r.status, 503, "a write through the full node: {}", r.text());
    assert!(r.header("retry-after").is_some(), "503 says when to retry");
    assert!(
        r.error_message().contains("No space left on device"),
        "{}",
        r.text()
    );
    let stale = c
        .client(old)
        .model_ids(true)
        .expect("a stale read on the full node");
    assert!(stale.contains("full/before"), "{stale:?}");

    fs::remove_file(&filler).unwrap();
    wait_until(WAIT, "the old leader is ready again by itself", || {
        readyz(&c, old).is_ok_and(|(status, _)| status == 200)
    });
    assert!(
        c.log(old)
            .contains("storage is healthy again; restarting in place"),
        "it recovered by restarting in place"
    );
    for w in writers {
        w.stop();
    }
    c.wait_leader(&all);
    // No acknowledged write is lost and the recovered node has every one: its store came
    // through the failure whole.
    assert_no_acknowledged_write_lost(&c, &all, &log);
}

/// The election timeouts of the slow-disk test: its stall tolerance is 4 × 1000 ms.
const ELECTION_MIN_MS: u64 = 500;
const ELECTION_MAX_MS: u64 = 1000;
const STALL_TOLERANCE_MS: i64 = 4 * ELECTION_MAX_MS as i64;

#[test]
fn flush_stalls_under_the_stall_tolerance_keep_the_leader_and_longer_ones_replace_it() {
    let faults = tempfile::tempdir().unwrap();
    let delays: Vec<FaultFile> = (1..=3)
        .map(|k| FaultFile::new(faults.path(), &format!("node{k}-flush-delay-ms")))
        .collect();
    let mut builder = Cluster::builder()
        .raft("heartbeat_ms = 100")
        .raft(&format!("election_timeout_min_ms = {ELECTION_MIN_MS}"))
        .raft(&format!("election_timeout_max_ms = {ELECTION_MAX_MS}"));
    for delay in &delays {
        builder =
            builder.node(NodeSpec::none().env(FLUSH_DELAY_FILE, delay.path.to_str().unwrap()));
    }
    let c = builder.start();
    let all = [1, 2, 3];
    let leader = c.wait_leader(&all);
    let term = c.term(leader).unwrap();

    // Each flush on the leader stalls longer than any election timeout (the leader sends
    // nothing meanwhile), but well under the tolerance: no election, the term stays.
    delays[leader - 1].set_ms(STALL_TOLERANCE_MS * 3 / 8);
    let mut written = BTreeSet::new();
    for n in 0..4 {
        let id = format!("slow/within-{n}");
        c.client(leader).create_model_acked(&id, WAIT);
        written.insert(id);
    }
    assert!(
        c.log(leader)
            .contains("slow disk: a flush of the Raft log took long"),
        "the leader warns of its slow disk"
    );
    assert_eq!(c.wait_leader(&all), leader, "the slow leader was deposed");
    for k in all {
        assert_eq!(c.term(k).unwrap(), term, "node{k}: the term moved");
    }

    // A flush that stalls three times the tolerance: the leader's core answers nothing
    // for that long, it cannot veto, and the other two elect one of them.
    delays[leader - 1].set_ms(STALL_TOLERANCE_MS * 3);
    let stalled = {
        let client = c.client(leader);
        thread::spawn(move || client.try_create_model("slow/past-the-tolerance"))
    };
    let others: Vec<usize> = all.into_iter().filter(|&k| k != leader).collect();
    let new = c.wait_leader(&others);
    assert!(c.term(new).unwrap() > term, "a new term");
    delays[leader - 1].set_ms(0);
    c.client(new).create_model_acked("slow/after", WAIT);
    written.insert("slow/after".to_string());
    if stalled.join().unwrap().is_ok_and(|r| r.status == 201) {
        written.insert("slow/past-the-tolerance".to_string());
    }
    // Once its disk is fast again the old leader follows the new one and has every write.
    assert_eq!(c.wait_leader(&all), new);
    for k in all {
        c.wait_models_present(k, &written);
    }
}
