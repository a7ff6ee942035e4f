//! Steady writers under faults: threads that create distinct models through given nodes and
//! record which writes were acknowledged, and every answer outside the contract.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::cluster::Cluster;
use super::http::Client;

/// Panics naming what `have` lacks of `want`.
pub fn assert_has_all(have: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    let missing: Vec<&String> = want.difference(have).collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}");
}

#[derive(Default)]
pub struct WriteLog {
    pub acked: Vec<String>,
    /// Answers that break the contract (anything but 201/409/503-with-Retry-After,
    /// or no answer within the client timeout).
    pub violations: Vec<String>,
    pub failures: usize,
}

/// Writers running through some nodes, into a shared log, until [`Writers::stop`].
pub struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Writers {
    /// One writer through each of `nodes`, writing `{prefix}-n{k}-{seq}`.
    pub fn start(
        c: &Cluster,
        nodes: &[usize],
        prefix: &str,
        log: &Arc<Mutex<WriteLog>>,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = nodes
            .iter()
            .map(|&k| {
                let (client, stop, log) = (c.client(k), stop.clone(), log.clone());
                let prefix = format!("{prefix}-n{k}");
                thread::spawn(move || writer(client, prefix, stop, log, 20_000))
            })
            .collect();
        Writers { stop, threads }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("writer thread panicked");
        }
    }
}

/// Writes distinct models through `client` until `stop` (or `max_ops` attempts), retrying a
/// failed id until it is acknowledged: 201, or 409 once an earlier attempt may have committed.
pub fn writer(
    client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
    max_ops: usize,
) {
    let mut seq = 0usize;
    let mut attempted = false;
    for _ in 0..max_ops {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let id = format!("{prefix}-{seq}");
        match client.try_create_model(&id) {
            Ok(r) if r.status == 201 || (r.status == 409 && attempted) => {
                log.lock().unwrap().acked.push(id);
                seq += 1;
                attempted = false;
                // Leave the machine some air (CI has two cores and three nodes).
                thread::sleep(Duration::from_millis(20));
            }
            Ok(r) if r.status == 409 => {
                let mut l = log.lock().unwrap();
                l.violations
                    .push(format!("{id}: 409 on the first attempt: {}", r.text()));
                l.acked.push(id);
                seq += 1;
            }
            Ok(r) => {
                attempted = true;
                let mut l = log.lock().unwrap();
                l.failures += 1;
                if r.status != 503 || r.header("retry-after").is_none() {
                    l.violations.push(format!(
                        "{id} via {}: status {} retry-after {:?}: {}",
                        client.addr,
                        r.status,
                        r.header("retry-after"),
                        r.text()
                    ));
                }
                drop(l);
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                attempted = true;
                let mut l = log.lock().unwrap();
                l.failures += 1;
                if e.timed_out {
                    l.violations.push(e.to_string());
                }
                drop(l);
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Every write in `log` acknowledged is on every node of `nodes` (the local copy once
/// caught up, and a linearizable read through each), none was acknowledged twice, and
/// every answer was within the contract.
pub fn assert_no_acknowledged_write_lost(c: &Cluster, nodes: &[usize], log: &Mutex<WriteLog>) {
    let log = log.lock().unwrap();
    let acked: BTreeSet<String> = log.acked.iter().cloned().collect();
    eprintln!(
        "acknowledged {} writes, {} failed attempts, {} violations",
        acked.len(),
        log.failures,
        log.violations.len()
    );
    assert_eq!(acked.len(), log.acked.len(), "an id was acknowledged twice");
    for &k in nodes {
        c.wait_models_present(k, &acked);
    }
    for &k in nodes {
        let have = c.client(k).model_ids(false).unwrap();
        assert_has_all(&have, &acked, &format!("node{k} (linearizable read)"));
    }
    assert!(
        log.violations.is_empty(),
        "answers outside the contract under faults: {:#?}",
        log.violations
    );
}
