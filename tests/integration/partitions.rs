//! Real partitions (the lab's network namespaces): a leader cut off from the others steps
//! down and says so, and a node cut off fences its model before the leader starts it
//! elsewhere.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::common::fake_vllm::{live_fakes_under, pid_of};
use crate::common::slots::model_json;
use crate::common::{wait_for, wait_until, Cluster, NodeSpec, MODELS, WAIT};

/// Well under the 3 s write timeout that a request waited out before, and generous for a
/// loaded machine.
const FAST: Duration = Duration::from_secs(2);

/// The isolated leader of three steps down within a few election timeouts and says why; a
/// write and a linearizable read on it fail at once in their own words; the majority elects
/// and writes on; after heal the majority's leader stays, every write is everywhere, and the
/// old leader's log holds no flood of errors.
#[test]
fn an_isolated_leader_steps_down_and_refuses_at_once() {
    let c = Cluster::builder().in_lab().nodes(3).start();
    let all = [1, 2, 3];
    let old = c.wait_leader(&all);
    let others: Vec<usize> = all.iter().copied().filter(|&k| k != old).collect();
    let log_before = c.log(old).len();

    c.isolate(old);
    let cut_at = Instant::now();
    let reason = wait_for(
        Duration::from_secs(15),
        &format!("node{old}'s /readyz says it is cut off"),
        || {
            let r = c.client(old).get("/readyz");
            let body = r.json();
            match (r.status, body["error"].as_str()) {
                (503, Some(e)) if e.contains("cut off") => Ok(e.to_string()),
                _ => Err(format!("{} {body}", r.status)),
            }
        },
    );
    eprintln!(
        "node{old} cut off after {:.1}s: {reason}",
        cut_at.elapsed().as_secs_f64()
    );
    wait_for(
        Duration::from_secs(15),
        &format!("node{old} no longer leads"),
        || {
            let st = c.status(old)?;
            match st["leader_id"].as_u64() {
                Some(l) if Some(l) == c.node(old).id => Err(format!("it still leads: {st}")),
                _ => Ok(()),
            }
        },
    );

    let started = Instant::now();
    let write = c
        .client(old)
        .try_create_model("written-on-the-cut-off-node")
        .expect("the cut-off node answers the test");
    let took = started.elapsed();
    assert_eq!(write.status, 503, "{}", write.text());
    assert!(took < FAST, "the write took {took:?} to fail");
    assert!(
        write.header("retry-after").is_some(),
        "a 503 says when to retry"
    );
    let message = write.error_message();
    assert!(
        message.contains("cut off") && message.contains("write"),
        "{message}"
    );

    let started = Instant::now();
    let read = c.client(old).get(MODELS);
    let took = started.elapsed();
    assert_eq!(read.status, 503, "{}", read.text());
    assert!(took < FAST, "the linearizable read took {took:?} to fail");
    let message = read.error_message();
    assert!(
        message.contains("cut off") && message.contains("read") && !message.contains("write"),
        "{message}"
    );
    // A stale read still answers from its copy.
    c.client(old)
        .model_ids(true)
        .expect("a stale read on the cut-off node");

    let new = c.wait_leader(&others);
    c.client(new)
        .create_model_acked("written-by-the-majority", WAIT);

    c.heal();
    let leader = c.wait_leader(&all);
    assert_eq!(
        leader, new,
        "the old leader stepped down in its own term: healing it deposes nobody"
    );
    let want = BTreeSet::from(["written-by-the-majority".to_string()]);
    for k in all {
        c.wait_models_present(k, &want);
    }
    let log = c.log(old);
    let errors: Vec<&str> = log[log_before..]
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .collect();
    assert!(
        errors.len() <= 10,
        "node{old} logged {} errors while cut off:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// A node cut off from the others fences its model: its vLLM process is gone before the
/// leader starts the model on another node, and after heal exactly one runs.
#[test]
fn a_cut_off_node_stops_its_model_before_it_starts_elsewhere() {
    // Node 1 (the first leader) has no GPU, so the model runs on node 2 or 3.
    let c = Cluster::builder()
        .in_lab()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .node(NodeSpec::gpus("80GB"))
        .start();
    let m = "acme/fenced-model";
    c.create_model(1, &model_json(m, "39GB", &[]));
    let s = c.wait_running(1, m);
    let slot = s["id"].as_str().expect("a slot id").to_string();
    let from = c.node_of(&s);
    let to = if from == 2 { 3 } else { 2 };
    let old_pid = pid_of(&c.only_launch(&slot));

    c.isolate(from);
    let cut_at = Instant::now();
    // Watch both: when the old process was last seen alive, and when the model started
    // elsewhere (its launch record's time). Never two at once.
    let mut old_gone: Option<(u128, Instant)> = None;
    let moved = wait_for(WAIT, &format!("the model starts on node{to}"), || {
        let live = live_fakes_under(c.root(), &slot);
        assert!(
            live.len() <= 1,
            "the model runs twice: processes {live:?} (node{from} cut off {:.1}s ago)",
            cut_at.elapsed().as_secs_f64()
        );
        if old_gone.is_none() && !live.contains(&old_pid) {
            old_gone = Some((now_ms(), Instant::now()));
        }
        match c.launches(&slot).get(1) {
            Some(l) => Ok(l.clone()),
            None => Err(format!("live: {live:?}")),
        }
    });
    let (stopped, stopped_at) = old_gone.expect("the old process stopped before the model moved");
    let started = moved["started_ms"].as_u64().expect("a launch time") as u128;
    assert!(
        stopped <= started,
        "node{from}'s process was still alive {} ms after the model started on node{to}",
        stopped - started
    );
    eprintln!(
        "node{from} fenced {:.1}s after the cut; the model started on node{to} {} ms later",
        (stopped_at - cut_at).as_secs_f64(),
        started - stopped
    );
    // The fenced node says so in its log and its /readyz (its slot report waits for the
    // quorum).
    assert!(
        c.log(from).contains("stopping vLLM: fenced"),
        "node{from}'s log does not say it fenced the slot"
    );
    let ready = c.client(from).get("/readyz");
    let error = ready.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ready.status == 503 && error.contains("fenced its slots (1 stopped"),
        "node{from}'s /readyz: {} {error}",
        ready.status
    );

    c.heal();
    c.wait_leader(&[1, 2, 3]);
    let placed = c.wait_slot(1, m, WAIT, &format!("runs on node{to}"), |s| {
        s["node_id"] == json!(c.id(to)) && s["state"] == "running"
    });
    assert_eq!(c.node_of(&placed), to);
    wait_until(WAIT, "exactly one process of the model runs", || {
        live_fakes_under(c.root(), &slot).len() == 1
    });
    assert_eq!(
        c.launches(&slot).len(),
        2,
        "the healed node did not start the moved model again"
    );
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}
