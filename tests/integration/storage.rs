//! Issue 10, storage failures: a node whose disk fills up leaves service visibly (503 naming
//! the cause, `/readyz` false; stale reads still answer) and comes back by itself once there is room again; SIGTERM
//! ends a node within 10 s, full disk or not. The node's data dir is a small tmpfs, so the
//! tests need root (`mount`).

use std::fs;
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::disk::{fill, move_to_tmpfs, Tmpfs, STOP_WITHIN};
use crate::common::*;

/// Room for a one-node cluster's data dir and some writes.
const TMPFS_SIZE: &str = "16m";

/// A one-node cluster whose data dir lives on a small tmpfs, with organization `before`
/// committed.
fn one_node_on_tmpfs(spec: NodeSpec) -> (Cluster, Tmpfs) {
    let mut c = Cluster::builder().node(spec).start();
    create_org(&c.client(1), "before");
    let tmpfs = move_to_tmpfs(&mut c, 1, TMPFS_SIZE);
    (c, tmpfs)
}

/// Writes organizations through node `via` from a few threads at once (they share log
/// entries, so sled's log reaches the end of the room it has sooner) until `done` makes
/// something of an answer; returns that.
fn write_until<T: Send>(
    c: &Cluster,
    via: usize,
    what: &str,
    done: impl Fn(&Resp) -> Option<T> + Sync,
) -> T {
    let outcome: Mutex<Option<T>> = Mutex::new(None);
    let deadline = Instant::now() + WAIT;
    thread::scope(|s| {
        for t in 0..4 {
            let (admin, outcome, done) = (c.client(via), &outcome, &done);
            s.spawn(move || {
                for n in 0.. {
                    if outcome.lock().unwrap().is_some() || Instant::now() > deadline {
                        return;
                    }
                    let body = json!({ "name": format!("filling-{t}-{n}") }).to_string();
                    let sent =
                        admin.try_send("POST", ORGS, Some(("application/json", body.as_bytes())));
                    if let Some(found) = sent.ok().as_ref().and_then(done) {
                        outcome.lock().unwrap().get_or_insert(found);
                    }
                }
            });
        }
    });
    outcome
        .into_inner()
        .unwrap()
        .unwrap_or_else(|| panic!("not within {WAIT:?} of writing on a full disk: {what}"))
}

/// Writes through node 1 until one is refused: (status, error message).
fn write_until_refused(c: &Cluster) -> (u16, String) {
    write_until(c, 1, "a write is refused", |r| {
        (r.status != 201).then(|| (r.status, r.error_message()))
    })
}

fn readyz(c: &Cluster, k: usize) -> Result<(u16, Value), String> {
    let r = c
        .caller(k, None, "anonymous")
        .try_send("GET", "/readyz", None)
        .map_err(|e| e.to_string())?;
    Ok((r.status, r.json()))
}

fn org_names(c: &Cluster) -> Result<Vec<String>, String> {
    let v = c.client(1).poll_json(ORGS)?;
    Ok(v.as_array()
        .ok_or_else(|| format!("not an array: {v}"))?
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn a_full_disk_takes_the_node_out_of_service_visibly_and_it_recovers_by_itself() {
    let (mut c, _tmpfs) = one_node_on_tmpfs(NodeSpec::gpus("80GB"));
    c.create_model(1, &model_json("m", "10GB", &[]));
    let (launch, slot) = c.wait_launched_and_running(1, "m", 0);
    let slot_id = slot["id"].as_str().expect("slot id").to_string();
    let data = c.node(1).data_dir.clone();
    let filler = fill(&data);

    let (status, message) = write_until_refused(&c);
    assert_eq!(status, 503, "a write on a full disk: {message}");
    assert!(
        message.contains("storage failed") && message.contains("No space left on device"),
        "the refusal names the storage problem: {message}"
    );
    let (status, ready) = readyz(&c, 1).expect("readyz answers");
    assert_eq!(status, 503, "readyz on a full disk: {ready}");
    assert_eq!(ready["ready"], json!(false), "{ready}");
    let reason = ready["error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("storage failed: ") && reason.contains("No space left on device"),
        "readyz gives the reason: {ready}"
    );
    // Reads go on from what the node had applied: stale ones only, which say they may lag.
    let r = c.client(1).get(&format!("{ORGS}?stale=true"));
    assert_eq!(
        r.status,
        200,
        "a stale read on a node whose storage failed: {}",
        r.text()
    );
    assert!(r.text().contains("\"before\""), "{}", r.text());
    let r = c.client(1).get(ORGS);
    assert_eq!(r.status, 503, "a linearizable read there: {}", r.text());
    let message = r.error_message();
    assert!(
        message.contains("storage failed") && message.contains("?stale=true"),
        "it names the failure and the way to read anyway: {message}"
    );
    assert_eq!(
        c.log(1)
            .matches("ERROR helix::daemon::storage: storage failed")
            .count(),
        1,
        "the node logs the failure once, with its cause"
    );

    fs::remove_file(&filler).unwrap();
    wait_for(
        WAIT,
        "the node is ready again by itself",
        || match readyz(&c, 1)? {
            (200, _) => Ok(()),
            (status, v) => Err(format!("{status}: {v}")),
        },
    );
    assert!(
        c.is_running(1),
        "it restarted in place, as the same process"
    );
    assert!(
        c.log(1)
            .contains("storage is healthy again; restarting in place"),
        "the restart is in the log"
    );
    c.client(1).create_model_acked("after-recovery", WAIT);
    let names = org_names(&c).expect("organizations are listed");
    assert!(
        names.iter().any(|n| n == "before"),
        "what was committed before the failure is still there: {names:?}"
    );
    // The vLLM process of before the restart is gone, and one new process serves the slot.
    let (relaunch, _) = c.wait_launched_and_running(1, "m", 1);
    assert!(
        !pid_alive(pid_of(&launch)),
        "the old vLLM process was stopped"
    );
    assert_eq!(c.live_fakes(&slot_id), vec![pid_of(&relaunch)]);
}

#[test]
fn sigterm_ends_a_node_within_10_s_even_on_a_full_disk() {
    let (mut c, _tmpfs) = one_node_on_tmpfs(NodeSpec::none());
    let data = c.node(1).data_dir.clone();
    fill(&data);
    let (status, message) = write_until_refused(&c);
    assert_eq!(status, 503, "{message}");

    let started = Instant::now();
    let st = c.terminate(1, STOP_WITHIN);
    assert!(
        started.elapsed() < STOP_WITHIN,
        "the node exited {:.1}s after SIGTERM ({st})",
        started.elapsed().as_secs_f64()
    );
    assert!(
        st.code().is_some(),
        "it exited by itself, not by a signal: {st}"
    );
}

/// Whether node `leader` shows member `id` as reachable.
fn reachable(c: &Cluster, leader: usize, id: u64) -> Result<bool, String> {
    let st = c.status(leader)?;
    let member = st["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == json!(id)))
        .ok_or_else(|| format!("member {id} not listed: {st}"))?;
    member["reachable"]
        .as_bool()
        .ok_or_else(|| format!("no reachable flag: {member}"))
}

#[test]
fn a_follower_whose_storage_failed_is_unreachable_until_it_recovers_and_catches_up() {
    let mut c = Cluster::new(3);
    let leader = c.wait_leader(&[1, 2, 3]);
    let k = (1..=3).find(|&k| k != leader).unwrap();
    let _tmpfs = move_to_tmpfs(&mut c, k, TMPFS_SIZE);
    let leader = c.wait_leader(&[1, 2, 3]);
    assert_ne!(leader, k, "test setup: the moved node became the leader");
    let id = c.id(k);
    wait_until(WAIT, "the leader reaches the restarted follower", || {
        reachable(&c, leader, id) == Ok(true)
    });

    let filler = fill(&c.node(k).data_dir.clone());
    // Writes go on with the other two; the follower fails when its log needs more room.
    let ready = write_until(&c, leader, "the follower's storage fails", |_| {
        readyz(&c, k).ok().filter(|(status, _)| *status == 503)
    });
    assert!(
        ready.1["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("storage failed: ")),
        "{}",
        ready.1
    );
    // It still answers the leader's messages, with an error: that is no contact.
    wait_until(
        WAIT,
        "the leader shows the failed follower unreachable",
        || reachable(&c, leader, id) == Ok(false),
    );

    create_org(&c.client(leader), "written-while-the-follower-was-full");

    fs::remove_file(&filler).unwrap();
    wait_until(WAIT, "the follower is ready again by itself", || {
        readyz(&c, k).is_ok_and(|(status, _)| status == 200)
    });
    wait_until(WAIT, "the leader reaches the follower again", || {
        reachable(&c, leader, id) == Ok(true)
    });
    // It caught up with what was committed while it was out.
    wait_until(
        WAIT,
        "the follower has the write made while it was full",
        || {
            c.client(k)
                .poll_json(&format!("{ORGS}?stale=true"))
                .is_ok_and(|v| {
                    v.to_string()
                        .contains("written-while-the-follower-was-full")
                })
        },
    );
}
