//! The Raft log on disk: what a node acknowledged survives `kill -9` at any moment, and a
//! record a crash tore at the end of the log is cut on restart, never served.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rand::Rng;

use crate::common::*;

/// Kills in the crash test: each at a different point of the write stream.
const KILLS: usize = 15;

/// Writes `crash/<seq>` models one after another until `stop`, recording each id once it is
/// acknowledged (201, or 409 after an attempt that may have committed before a crash). A
/// write the node died under is retried with the same id once it answers again.
fn steady_writer(client: Client, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    let mut seq = 0usize;
    let mut attempted = false;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("crash-{seq}");
        match client.try_create_model(&id) {
            Ok(r) if r.status == 201 || (r.status == 409 && attempted) => {
                acked.lock().unwrap().push(id);
                seq += 1;
                attempted = false;
            }
            Ok(r) => {
                assert!(
                    r.status == 503 || r.status == 502,
                    "{id}: status {}: {}",
                    r.status,
                    r.text()
                );
                attempted = true;
                // The node is starting: ask again shortly.
                thread::sleep(Duration::from_millis(50));
            }
            Err(_) => {
                // The node is down: ask again shortly.
                attempted = true;
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A single node (every write waits for its own `fdatasync` only) under a steady writer is
/// killed with SIGKILL at random points of the write stream, again and again; after each
/// restart every write it had acknowledged is there.
#[test]
fn acknowledged_writes_survive_kill_9_at_any_moment() {
    let mut c = Cluster::new(1);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (client, stop, acked) = (c.client(1), stop.clone(), acked.clone());
        thread::spawn(move || steady_writer(client, stop, acked))
    };
    let mut rng = rand::thread_rng();
    for kill in 1..=KILLS {
        let before = acked.lock().unwrap().len();
        let more = rng.gen_range(1..=12);
        wait_until(
            WAIT,
            &format!("kill {kill}: {more} more writes are acknowledged"),
            || acked.lock().unwrap().len() >= before + more,
        );
        c.kill9(1);
        // Nothing is acknowledged once the process is gone: this is all it ever acknowledged.
        let promised: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
        c.restart(1);
        c.wait_models_present(1, &promised);
        eprintln!(
            "kill {kill}: all {} acknowledged writes survived",
            promised.len()
        );
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer panicked");
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let have = c.client(1).model_ids(false).unwrap();
    let lost: Vec<&String> = acked.difference(&have).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

/// The segment of node `k`'s Raft log written last.
fn last_segment(c: &Cluster, k: usize) -> PathBuf {
    let dir = c.node(k).data_dir.join("sled").join("raft-log");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap_or_else(|| panic!("no segment in {}", dir.display()))
}

fn cut_short(file: &Path, by: u64) {
    let len = fs::metadata(file).unwrap().len();
    assert!(len > by, "{} holds only {len} bytes", file.display());
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len - by)
        .unwrap();
}

/// A crash tore the last record of a stopped member's log (its end is missing): the node
/// starts, says it cut the record, gets the entry again from the leader, and serves every
/// acknowledged write and the ones after.
#[test]
fn a_torn_last_record_is_cut_on_restart_and_replicated_again() {
    let mut c = Cluster::new(3);
    let before: BTreeSet<String> = (0..5).map(|i| format!("torn-before-{i}")).collect();
    for id in &before {
        c.client(1).create_model_acked(id, WAIT);
    }
    for k in 1..=3 {
        c.wait_models_present(k, &before);
    }
    c.stop(3);
    // Fewer bytes than a record's header: the record is cut inside, whatever its size.
    cut_short(&last_segment(&c, 3), 5);
    c.restart(3);
    assert!(
        c.log(3)
            .contains("cut a torn record off the end of the Raft log"),
        "node3 should say it cut the torn record:\n{}",
        c.log_tails(30)
    );
    c.wait_models_present(3, &before);
    let after: BTreeSet<String> = (0..3).map(|i| format!("torn-after-{i}")).collect();
    for id in &after {
        c.client(3).create_model_acked(id, WAIT);
    }
    let all: BTreeSet<String> = before.union(&after).cloned().collect();
    for k in 1..=3 {
        c.wait_models_present(k, &all);
    }
    let have = c.client(3).model_ids(false).unwrap();
    assert!(all.is_subset(&have), "node3 serves {have:?}");
}
