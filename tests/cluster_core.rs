//! Issue 2, the cluster core, as a user sees it: real `helix` processes, each node on its
//! own 127.0.0.N, driven over the HTTP API.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SETTINGS: &str = "/api/v1/system/settings";
const CONFIG: &str = "/api/v1/system/config";
const MODELS: &str = "/api/v1/helix-models";

fn settings_ok(c: &Cluster, k: usize) -> Value {
    let r = c.get(k, SETTINGS);
    assert_eq!(r.status, 200, "GET settings on node{k}: {}", r.text());
    r.json()
}

fn assert_settings_shape(v: &Value, token_set: bool) {
    assert_eq!(v["id"], "system", "settings: {v}");
    assert!(
        v["created"].as_str().is_some_and(|s| !s.is_empty()),
        "settings.created: {v}"
    );
    assert!(
        v["updated"].as_str().is_some_and(|s| !s.is_empty()),
        "settings.updated: {v}"
    );
    assert_eq!(
        v["huggingface_token_set"],
        json!(token_set),
        "settings: {v}"
    );
    let src = if token_set { "database" } else { "none" };
    assert_eq!(v["huggingface_token_source"], json!(src), "settings: {v}");
}

/// Asserts no file under any node's data dir contains `needle`.
fn assert_not_on_disk(c: &Cluster, needle: &str) {
    let mut scanned = 0;
    for n in &c.nodes {
        for f in files_under(&n.data_dir) {
            let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
            scanned += 1;
            assert!(
                !contains_bytes(&bytes, needle.as_bytes()),
                "the plaintext token was found in {}",
                f.display()
            );
        }
    }
    assert!(scanned > 0, "no files found under the data dirs");
}

/// Asserts no node log (the process's stdout and stderr) contains `needle`.
fn assert_not_in_logs(c: &Cluster, needle: &str) {
    for n in &c.nodes {
        let bytes = std::fs::read(&n.log_path).unwrap_or_default();
        assert!(
            !contains_bytes(&bytes, needle.as_bytes()),
            "the plaintext token was found in node{}'s output {}",
            n.k,
            n.log_path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Three nodes, the HF token set through one node, seen by all, cleared through another.

#[test]
fn three_nodes_share_the_hf_token() {
    let mut c = Cluster::new(1);
    c.add_node();
    c.join(2, 1);
    c.add_node();
    // A join may go through any member, not only the one that bootstrapped.
    c.join(3, 2);

    // Everyone is ready, knows the leader and sees three voters.
    for k in 1..=3 {
        let r = Client::new(&c.node(k).api_addr, None)
            .get("/readyz")
            .unwrap();
        assert_eq!(r.status, 200, "readyz on node{k}: {}", r.text());
        let r = Client::new(&c.node(k).api_addr, None)
            .get("/healthz")
            .unwrap();
        assert_eq!(r.status, 200, "healthz on node{k}: {}", r.text());
    }
    let ids: BTreeSet<u64> = c.nodes.iter().map(|n| n.id.unwrap()).collect();
    assert_eq!(ids.len(), 3, "node ids must be distinct: {ids:?}");
    for k in 1..=3 {
        wait_for(
            WAIT,
            &format!("node{k} lists the three members as voters"),
            || {
                let st = c.status(k)?;
                let members = st["members"].as_array().ok_or("no members")?;
                let got: BTreeSet<u64> = members.iter().filter_map(|m| m["id"].as_u64()).collect();
                let voters = members.iter().filter(|m| m["voter"] == json!(true)).count();
                if got == ids && voters == 3 && st["leader_id"].as_u64().is_some() {
                    Ok(())
                } else {
                    Err(st.to_string())
                }
            },
        );
    }
    let nodes = c.client(1).get_json_ok("/api/v1/nodes").unwrap();
    let arr = nodes.as_array().expect("nodes is an array");
    assert_eq!(arr.len(), 3, "GET /api/v1/nodes: {nodes}");
    assert_eq!(
        arr.iter().filter(|n| n["leader"] == json!(true)).count(),
        1,
        "one leader: {nodes}"
    );
    for n in arr {
        for f in ["id", "voter", "leader", "reachable", "applied_index"] {
            assert!(n.get(f).is_some(), "node entry lacks {f}: {n}");
        }
    }

    // Nothing is set yet.
    assert_settings_shape(&settings_ok(&c, 1), false);
    for k in 1..=3 {
        c.wait_token_set(k, false);
    }

    // Set through node 3.
    let token = "hf_itest_Zq8sV3pLrN0wXy7TbK4mJd2";
    let r = c.put_json(3, SETTINGS, &json!({ "huggingface_token": token }));
    assert_eq!(r.status, 200, "PUT settings on node3: {}", r.text());
    assert!(
        !r.text().contains(token),
        "PUT response leaks the token: {}",
        r.text()
    );
    assert_settings_shape(&r.json(), true);

    for k in [1, 2, 3] {
        c.wait_token_set(k, true);
    }
    for k in 1..=3 {
        let r = c.get(k, SETTINGS);
        assert_eq!(r.status, 200);
        assert!(
            !r.text().contains(token),
            "GET settings on node{k} leaks the token"
        );
        assert_settings_shape(&r.json(), true);
        let cfg = c.get(k, CONFIG);
        assert!(
            !cfg.text().contains(token),
            "system/config on node{k} leaks the token"
        );
        assert_eq!(
            cfg.json()["node_id"].as_u64(),
            c.node(k).id,
            "system/config node_id on node{k}"
        );
    }

    // A partial update without the field leaves the token alone.
    let r = c.put_json(1, SETTINGS, &json!({}));
    assert_eq!(r.status, 200, "PUT {{}}: {}", r.text());
    assert_settings_shape(&r.json(), true);
    for k in 1..=3 {
        c.wait_token_set(k, true);
    }

    // The plaintext token is in no file under any data dir and in no node output.
    assert_not_on_disk(&c, token);
    assert_not_in_logs(&c, token);

    // Clear through node 2: unset everywhere.
    let r = c.put_json(2, SETTINGS, &json!({ "huggingface_token": "" }));
    assert_eq!(r.status, 200, "clear on node2: {}", r.text());
    assert_settings_shape(&r.json(), false);
    for k in 1..=3 {
        c.wait_token_set(k, false);
        let r = c.get(k, SETTINGS);
        assert!(!r.text().contains(token));
        assert_settings_shape(&r.json(), false);
    }
    assert_not_on_disk(&c, token);
    assert_not_in_logs(&c, token);
}

// ---------------------------------------------------------------------------------------------
// 2. Kill -9 the leader while clients write to the other nodes, five rounds.

#[derive(Default)]
struct WriteLog {
    acked: Vec<String>,
    /// Answers that break the contract (anything but 201/409/503-with-Retry-After,
    /// or no answer within the client timeout).
    violations: Vec<String>,
    failures: usize,
}

/// Writes distinct models through `client` until `stop` (or `max_ops` attempts), retrying a
/// failed id until it is acknowledged: 201, or 409 once an earlier attempt may have committed.
fn writer(
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
        match client.create_model(&id) {
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
                if e.kind() == std::io::ErrorKind::TimedOut {
                    l.violations.push(format!("{id} via {}: {e}", client.addr));
                }
                drop(l);
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    let log = Arc::new(Mutex::new(WriteLog::default()));

    for round in 1..=5 {
        let leader = c.wait_leader(&all);
        let others: Vec<usize> = all.iter().copied().filter(|&k| k != leader).collect();
        eprintln!("round {round}: leader is node{leader}, writing through {others:?}");

        let stop = Arc::new(AtomicBool::new(false));
        let before = log.lock().unwrap().acked.len();
        let handles: Vec<_> = others
            .iter()
            .map(|&k| {
                let (client, stop, log) = (c.client(k), stop.clone(), log.clone());
                let prefix = format!("kill/r{round}-n{k}");
                thread::spawn(move || writer(client, prefix, stop, log, 20_000))
            })
            .collect();

        wait_until(
            WAIT,
            &format!("round {round}: writers get some writes acknowledged"),
            || log.lock().unwrap().acked.len() >= before + 6,
        );

        c.kill9(leader);
        let at_kill = log.lock().unwrap().acked.len();

        // Writes succeed again: a fresh write through a survivor is acknowledged...
        let probe = format!("kill/probe-r{round}");
        c.client(others[0]).create_model_acked(&probe, WAIT);
        log.lock().unwrap().acked.push(probe);
        // ...and the writers make progress after the kill.
        wait_until(
            WAIT,
            &format!("round {round}: writers make progress after the leader was killed"),
            || log.lock().unwrap().acked.len() >= at_kill + 6,
        );

        c.restart(leader);
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().expect("writer thread panicked");
        }
    }

    let log = log.lock().unwrap();
    let acked: BTreeSet<String> = log.acked.iter().cloned().collect();
    eprintln!(
        "acknowledged {} writes, {} failed attempts, {} violations",
        acked.len(),
        log.failures,
        log.violations.len()
    );
    assert_eq!(acked.len(), log.acked.len(), "an id was acknowledged twice");

    // Every acknowledged write is on every node: the local copy, once caught up...
    for k in all {
        c.wait_models_present(k, &acked, WAIT);
    }
    // ...and a linearizable read through every node.
    for k in all {
        let have = c.client(k).model_ids(false).unwrap();
        let missing: Vec<_> = acked.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "node{k} (linearizable read) lacks {missing:?}"
        );
    }
    assert!(
        log.violations.is_empty(),
        "answers outside the contract during failover: {:#?}",
        log.violations
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Quorum: one of three down → writes go on; two down → 503 promptly; back → all there.

#[test]
fn writes_need_a_quorum_and_nothing_is_lost() {
    let mut c = Cluster::new(3);
    let mut acked = BTreeSet::new();
    for i in 0..5 {
        let id = format!("quorum/before-{i}");
        let r = c.post_json(1 + i % 3, MODELS, &json!({ "id": id, "name": id }));
        assert_eq!(r.status, 201, "create {id}: {}", r.text());
        acked.insert(id);
    }

    // One of three down: writes go on, through both survivors.
    c.kill9(3);
    for k in [1, 2] {
        let id = format!("quorum/one-down-via-{k}");
        c.client(k).create_model_acked(&id, WAIT);
        acked.insert(id);
    }

    // Two of three down: a write answers 503 with Retry-After, promptly.
    c.kill9(2);
    let slow = c.client(1).with_timeout(Duration::from_secs(30));
    for i in 0..2 {
        let id = format!("quorum/no-quorum-{i}");
        let t = Instant::now();
        let r = slow
            .create_model(&id)
            .unwrap_or_else(|e| panic!("write without quorum: {e}"));
        let took = t.elapsed();
        eprintln!("write without quorum answered {} in {took:?}", r.status);
        assert_eq!(r.status, 503, "write without quorum: {}", r.text());
        assert!(
            r.header("retry-after").is_some(),
            "503 without Retry-After: {:?}",
            r.headers
        );
        r.error_message();
        assert!(
            took < Duration::from_secs(15),
            "write without quorum took {took:?}"
        );
    }
    // A (linearizable) read has no quorum either, and says so; a stale read still answers.
    let t = Instant::now();
    let r = slow.get(MODELS).unwrap();
    assert_eq!(
        r.status,
        503,
        "linearizable read without quorum: {}",
        r.text()
    );
    assert!(
        r.header("retry-after").is_some(),
        "503 without Retry-After: {:?}",
        r.headers
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "read without quorum took {:?}",
        t.elapsed()
    );
    // (Only the early writes: the survivor may not have learned that the very last ones
    // committed before their leader died.)
    let stale = c.client(1).model_ids(true).unwrap();
    let early: BTreeSet<String> = acked
        .iter()
        .filter(|i| i.starts_with("quorum/before-"))
        .cloned()
        .collect();
    assert!(
        stale.is_superset(&early),
        "stale read on the survivor lacks {:?}",
        early.difference(&stale).collect::<Vec<_>>()
    );

    // Restart both: writes succeed again, nothing is lost.
    c.restart(2);
    c.restart(3);
    for k in [1, 2, 3] {
        let id = format!("quorum/after-via-{k}");
        c.client(k).create_model_acked(&id, WAIT);
        acked.insert(id);
    }
    for k in [1, 2, 3] {
        c.wait_models_present(k, &acked, WAIT);
        let have = c.client(k).model_ids(false).unwrap();
        assert!(
            have.is_superset(&acked),
            "node{k} lacks {:?}",
            acked.difference(&have).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Stop (SIGTERM) and restart all nodes: state, membership and the token survive.

/// A follower that stalls (here: SIGSTOP, longer than any election timeout) and comes back
/// follows its leader again: the term does not move and the leader is not deposed.
#[test]
fn a_stalled_follower_does_not_depose_the_leader() {
    // Longer timeouts than the defaults, so that only the stall, not this machine's load
    // during the test run, leaves a member without a leader for an election timeout.
    let config = "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";
    let mut c = Cluster::with_config(3, Some(config));
    let all = [1, 2, 3];
    let leader = c.wait_leader(&all);
    let term = |c: &Cluster, k: usize| c.status(k).map(|s| s["term"].as_u64().unwrap());
    let term_before = term(&c, leader).unwrap();
    let follower = all.into_iter().find(|&k| k != leader).unwrap();
    let follower_id = c.node(follower).id.unwrap();

    c.pause(follower);
    // The leader stops hearing from it (it reports a member unreachable after four election
    // timeouts), and writes still commit with the other two.
    wait_until(
        WAIT,
        "the leader reports the paused follower unreachable",
        || {
            c.status(leader).is_ok_and(|s| {
                s["members"].as_array().unwrap().iter().any(|m| {
                    m["id"].as_u64() == Some(follower_id) && m["reachable"] == json!(false)
                })
            })
        },
    );
    c.client(leader)
        .create_model_acked("stall/written-while-paused", WAIT);
    c.resume(follower);

    // Once it runs again it has heard from no leader for far longer than its timeout: it
    // asks for a pre-vote (unless the leader's next append reaches it first), is refused,
    // and catches up with the leader it already had.
    c.wait_models_present(
        follower,
        &BTreeSet::from(["stall/written-while-paused".to_string()]),
        WAIT,
    );
    assert_eq!(c.wait_leader(&all), leader, "the leader was deposed");
    for k in all {
        assert_eq!(term(&c, k).unwrap(), term_before, "node{k}: the term moved");
    }
}

/// A leader that stops answering altogether (SIGSTOP: it cannot veto) is replaced by the
/// other two, and when it runs again it follows the new leader and catches up.
#[test]
fn a_stopped_leader_is_replaced_and_follows_when_it_resumes() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    let old = c.wait_leader(&all);
    let others: Vec<usize> = all.into_iter().filter(|&k| k != old).collect();

    c.pause(old);
    let new = c.wait_leader(&others);
    c.client(new)
        .create_model_acked("stall/written-after-the-leader-stopped", WAIT);
    c.resume(old);

    assert_eq!(
        c.wait_leader(&all),
        new,
        "the resumed leader took over again"
    );
    c.wait_models_present(
        old,
        &BTreeSet::from(["stall/written-after-the-leader-stopped".to_string()]),
        WAIT,
    );
}

#[test]
fn full_restart_keeps_state_membership_and_token() {
    let mut c = Cluster::new(3);
    let token = "hf_itest_restart_Q1w2E3r4T5y6U7i8";
    let r = c.put_json(2, SETTINGS, &json!({ "huggingface_token": token }));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ids = BTreeSet::new();
    for i in 0..10 {
        let id = format!("restart/m-{i}");
        let r = c.post_json(
            1 + i % 3,
            MODELS,
            &json!({ "id": id, "name": format!("model {i}") }),
        );
        assert_eq!(r.status, 201, "create {id}: {}", r.text());
        ids.insert(id);
    }
    for k in 1..=3 {
        c.wait_token_set(k, true);
        c.wait_models_present(k, &ids, WAIT);
    }
    let members_before = c.member_ids(1).unwrap();
    assert_eq!(members_before.len(), 3);
    let settings_before = settings_ok(&c, 1);
    let model_before = c.get(1, "/api/v1/helix-models/restart/m-3").json();

    for k in [3, 2, 1] {
        c.stop(k);
    }
    // Stopped cleanly: the plaintext token is in no file the nodes left behind.
    assert_not_on_disk(&c, token);
    assert_not_in_logs(&c, token);

    // All three come back (none can be ready before a quorum is up, so start them together).
    for k in 1..=3 {
        c.spawn_restart(k);
    }
    for k in 1..=3 {
        c.wait_ready(k);
    }

    for k in 1..=3 {
        wait_for(
            WAIT,
            &format!("node{k} reports the same three members and a leader"),
            || {
                let st = c.status(k)?;
                let got = c.member_ids(k)?;
                if got == members_before && st["leader_id"].as_u64().is_some() {
                    Ok(())
                } else {
                    Err(st.to_string())
                }
            },
        );
        c.wait_token_set(k, true);
        let have = c.client(k).model_ids(false).unwrap();
        assert_eq!(have, ids, "models on node{k} after the restart");
        let s = settings_ok(&c, k);
        assert_settings_shape(&s, true);
        assert_eq!(
            s["created"], settings_before["created"],
            "settings.created changed"
        );
        assert_eq!(
            s["updated"], settings_before["updated"],
            "settings.updated changed"
        );
    }
    let r = c.get(3, "/api/v1/helix-models/restart/m-3");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), model_before, "a model changed across the restart");

    // And the cluster still takes writes.
    c.client(3).create_model_acked("restart/after", WAIT);
}

// ---------------------------------------------------------------------------------------------
// 5. New nodes catch up by snapshot after the log was purged.

#[test]
fn new_nodes_catch_up_from_a_snapshot() {
    // openraft's own info lines show the purge and the snapshot install (openraft is pinned
    // at 0.9.25, so their wording is stable).
    let mut c = Cluster::with_env(
        3,
        Some("[raft]\nsnapshot_every = 50\n"),
        &[("RUST_LOG", "info,openraft=info")],
    );
    let log_of =
        |c: &Cluster, k: usize| std::fs::read_to_string(&c.node(k).log_path).unwrap_or_default();

    // 150 writes through the three nodes: three snapshots' worth.
    let handles: Vec<_> = (1..=3)
        .map(|k| {
            let client = c.client(k);
            thread::spawn(move || {
                for i in 0..50 {
                    client.create_model_acked(&format!("snap/n{k}-{i}"), WAIT);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer panicked");
    }
    let expected = c.client(1).model_ids(false).unwrap();
    assert_eq!(expected.len(), 150, "models after 150 writes");
    // The log is purged behind a snapshot on the members before the new nodes join.
    let leader = c.wait_leader(&[1, 2, 3]);
    wait_until(
        WAIT,
        &format!("node{leader} (leader) purged its log behind a snapshot"),
        || log_of(&c, leader).contains("purge_log"),
    );

    for k in [4, 5] {
        c.add_node();
        c.join(k, 1);
    }
    for k in [4, 5] {
        wait_for(
            WAIT,
            &format!("node{k} serves the same models from its local copy"),
            || {
                let have = c.client(k).model_ids(true)?;
                if have == expected {
                    Ok(())
                } else {
                    Err(format!("{} of {} models", have.len(), expected.len()))
                }
            },
        );
        let r = c.get(k, "/api/v1/helix-models/snap/n2-17?stale=true");
        assert_eq!(
            r.status,
            200,
            "stale GET of one model on node{k}: {}",
            r.text()
        );
        assert_eq!(r.json()["id"], "snap/n2-17");
    }
    // The first five members are voters.
    let ids: BTreeSet<u64> = c.nodes.iter().map(|n| n.id.unwrap()).collect();
    assert_eq!(ids.len(), 5);
    wait_for(WAIT, "node5 reports five members, all voters", || {
        let st = c.status(5)?;
        let members = st["members"].as_array().ok_or("no members")?;
        let got: BTreeSet<u64> = members.iter().filter_map(|m| m["id"].as_u64()).collect();
        let voters = members.iter().filter(|m| m["voter"] == json!(true)).count();
        if got == ids && voters == 5 {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    // They caught up by installing a snapshot, not by replaying the (purged) log.
    for k in [4, 5] {
        let log = log_of(&c, k);
        assert!(
            log.contains("install_full_snapshot") || log.contains("install_snapshot"),
            "node{k} shows no snapshot install in {}",
            c.node(k).log_path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Without the join token or the cluster secret a process can neither join nor talk Raft.

#[test]
fn wrong_token_cannot_join_or_send_raft_messages() {
    let mut c = Cluster::new(1);

    // A join with a wrong token fails, exits 1 and never says `ready`.
    let k = c.add_node();
    let mut wrong = c.join_token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    c.spawn_join(k, 1, &wrong);
    let st = c.wait_exit(k, Duration::from_secs(60));
    let out = c.node(k).stdout_lines();
    assert!(!st.success(), "a join with a wrong token succeeded: {st}");
    assert_eq!(st.code(), Some(1), "exit status of a refused join: {st}");
    assert!(
        !c.node(k).printed_ready(),
        "a refused join printed ready: {out:?}"
    );
    let members = c.member_ids(1).unwrap();
    assert_eq!(
        members.len(),
        1,
        "the refused node became a member: {members:?}"
    );

    // Raw Raft messages without the cluster secret: 401.
    let peer = c.node(1).peer_addr.clone();
    let admin = format!("Bearer {}", c.admin_key);
    let join = format!("Bearer {}", c.join_token);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no Authorization", vec![]),
        (
            "a wrong secret",
            vec![("Authorization", "Bearer not-the-cluster-secret")],
        ),
        ("the admin API key", vec![("Authorization", admin.as_str())]),
        ("the join token", vec![("Authorization", join.as_str())]),
    ];
    for path in ["/raft/vote", "/raft/append"] {
        for (what, hdrs) in &cases {
            let mut h = hdrs.clone();
            h.push(("Content-Type", "application/octet-stream"));
            let r = http_request(
                &peer,
                "POST",
                path,
                &h,
                Some(b"\x01\x02\x03 not a raft message"),
                REQ_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("POST {path} with {what}: {e}"));
            assert_eq!(
                r.status,
                401,
                "POST {path} with {what}: {} {}",
                r.status,
                r.text()
            );
        }
    }

    // The refused attempts are logged on the node that refused them.
    let refused = |line: &str| {
        let l = line.to_lowercase();
        [
            "reject",
            "refus",
            "unauthori",
            "denied",
            "invalid",
            "not valid",
        ]
        .iter()
        .any(|w| l.contains(w))
    };
    wait_for(
        WAIT,
        "node1 logs the refused join and Raft requests",
        || {
            let log = std::fs::read_to_string(&c.node(1).log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| refused(l)).collect();
            let join = lines.iter().any(|l| l.to_lowercase().contains("join"));
            let vote = lines.iter().any(|l| l.contains("/raft/vote"));
            let append = lines.iter().any(|l| l.contains("/raft/append"));
            if join && vote && append {
                Ok(())
            } else {
                Err(format!(
                    "join logged: {join}, vote: {vote}, append: {append}"
                ))
            }
        },
    );

    // The node is unharmed: still the leader of its one-node cluster, still taking writes.
    c.client(1).create_model_acked("auth/still-works", WAIT);
    let st = c.status(1).unwrap();
    assert_eq!(st["leader_id"].as_u64(), c.node(1).id, "{st}");
}

// ---------------------------------------------------------------------------------------------
// 7. Bad input gets a clear 4xx and changes nothing.

#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let c = Cluster::new(1);
    let token = "hf_itest_badinput_1234567890";
    let r = c.put_json(1, SETTINGS, &json!({ "huggingface_token": token }));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.post_json(
        1,
        MODELS,
        &json!({ "id": "bad/existing", "name": "existing" }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let settings_before = settings_ok(&c, 1);
    let models_before = c.client(1).model_ids(false).unwrap();

    let client = c.client(1);
    let expect_400 = |method: &str, path: &str, body: &str, names: &[&str]| {
        let r = client
            .request(method, path, Some(body.as_bytes()))
            .unwrap_or_else(|e| panic!("{method} {path} {body}: {e}"));
        assert_eq!(
            r.status,
            400,
            "{method} {path} with {body}: {} {}",
            r.status,
            r.text()
        );
        let msg = r.error_message();
        for n in names {
            assert!(
                msg.contains(n),
                "{method} {path} with {body}: the error {msg:?} should name {n:?}"
            );
        }
    };

    // Settings.
    expect_400("PUT", SETTINGS, r#"{"huggingface_token": "#, &[]);
    expect_400("PUT", SETTINGS, "not json at all", &[]);
    expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_tokn": "hf_x"}"#,
        &["huggingface_tokn"],
    );
    expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_token": 42}"#,
        &["huggingface_token"],
    );
    expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_token": ["hf_x"]}"#,
        &["huggingface_token"],
    );

    // Models.
    expect_400("POST", MODELS, r#"{"id": "bad/a", "name": "#, &[]);
    expect_400(
        "POST",
        MODELS,
        r#"{"id": "bad/a", "name": "a", "bogus_field": 1}"#,
        &["bogus_field"],
    );
    expect_400(
        "POST",
        MODELS,
        r#"{"id": "bad/a", "name": "a", "context_length": "long"}"#,
        &["context_length"],
    );
    expect_400(
        "POST",
        MODELS,
        r#"{"id": "bad/a", "name": "a", "runtime_args": "--x"}"#,
        &["runtime_args"],
    );
    expect_400(
        "POST",
        MODELS,
        r#"{"id": "bad/a", "name": "a", "enabled": "yes"}"#,
        &["enabled"],
    );
    expect_400("POST", MODELS, r#"{"id": 7, "name": "a"}"#, &[]);
    expect_400(
        "POST",
        MODELS,
        r#"{"id": "bad/a", "name": "a", "memory": "lots"}"#,
        &["memory"],
    );

    // A 10 MB body: 413.
    let big_token = format!(
        r#"{{"huggingface_token": "hf_{}"}}"#,
        "A".repeat(10 * 1024 * 1024)
    );
    let r = client
        .with_timeout(Duration::from_secs(30))
        .put_raw(SETTINGS, big_token.as_bytes())
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "10 MB settings body: {} {}",
        r.status,
        r.text()
    );
    r.error_message();
    let big_model = format!(
        r#"{{"id": "bad/big", "name": "big", "description": "{}"}}"#,
        "d".repeat(10 * 1024 * 1024)
    );
    let r = client
        .with_timeout(Duration::from_secs(30))
        .post_raw(MODELS, big_model.as_bytes())
        .unwrap();
    assert_eq!(r.status, 413, "10 MB model body: {} {}", r.status, r.text());
    r.error_message();

    // Nothing changed.
    let settings_after = settings_ok(&c, 1);
    assert_eq!(
        settings_after, settings_before,
        "settings changed after bad input"
    );
    c.wait_token_set(1, true);
    let models_after = c.client(1).model_ids(false).unwrap();
    assert_eq!(
        models_after, models_before,
        "models changed after bad input"
    );
    for id in ["bad/a", "bad/big"] {
        let r = c.get(1, &format!("{MODELS}/{id}"));
        assert_eq!(r.status, 404, "GET {id}: {}", r.text());
        r.error_message();
    }
    // A duplicate id is a conflict, and also changes nothing.
    let r = c.post_json(1, MODELS, &json!({ "id": "bad/existing", "name": "other" }));
    assert_eq!(r.status, 409, "{}", r.text());
    r.error_message();
    let r = c.get(1, &format!("{MODELS}/bad/existing"));
    assert_eq!(r.json()["name"], "existing");

    // A JSON array is not a settings object or a model (serde would happily read a struct
    // from a sequence, field by field). Checked last: when it is wrongly accepted it changes
    // the state, which would hide the checks above.
    expect_400("PUT", SETTINGS, r#"["hf_from_an_array"]"#, &[]);
    expect_400("POST", MODELS, r#"["bad/array", "array"]"#, &[]);
    assert_eq!(
        settings_ok(&c, 1),
        settings_before,
        "settings changed by an array body"
    );
    assert_eq!(
        c.client(1).model_ids(false).unwrap(),
        models_before,
        "models changed by an array body"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Authentication.

#[test]
fn requests_need_a_known_key() {
    let c = Cluster::new(1);
    let anon = Client::new(&c.node(1).api_addr, None);
    let unknown = Client::new(&c.node(1).api_addr, Some("helix-not-a-real-key-0123456789"));

    // Health endpoints are open.
    assert_eq!(anon.get("/healthz").unwrap().status, 200);
    assert_eq!(anon.get("/readyz").unwrap().status, 200);

    for cl in [&anon, &unknown] {
        let who = if cl.key.is_some() {
            "an unknown key"
        } else {
            "no key"
        };
        let cases = [
            cl.get(SETTINGS),
            cl.put_json(SETTINGS, &json!({ "huggingface_token": "hf_evil" })),
            cl.get(CONFIG),
            cl.get(MODELS),
            cl.post_json(MODELS, &json!({ "id": "auth/x", "name": "x" })),
            cl.get("/api/v1/cluster/status"),
            cl.get("/api/v1/nodes"),
        ];
        for (i, r) in cases.into_iter().enumerate() {
            let r = r.unwrap();
            assert_eq!(
                r.status,
                401,
                "request #{i} with {who}: {} {}",
                r.status,
                r.text()
            );
            r.error_message();
        }
    }
    // A malformed Authorization header is no better.
    let r = http_request(
        &c.node(1).api_addr,
        "GET",
        SETTINGS,
        &[("Authorization", c.admin_key.as_str())],
        None,
        REQ_TIMEOUT,
    )
    .unwrap();
    assert_eq!(r.status, 401, "key without `Bearer `: {}", r.text());

    // Nothing was changed by the refused requests; the admin key works.
    assert_settings_shape(&settings_ok(&c, 1), false);
    c.wait_token_set(1, false);
    assert_eq!(c.get(1, &format!("{MODELS}/auth/x")).status, 404);
}
