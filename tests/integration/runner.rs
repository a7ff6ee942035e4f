//! Issue 3, the runners, as a user sees them: real `helix` nodes with declared GPUs
//! (`--gpus 80GB,80GB`) that launch the vLLM test double (`examples/fake_vllm.rs`) for the
//! slots the committed state places on them. The double records every launch; `/proc` shows
//! which of its processes live.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const QWEN: &str = "Qwen/Qwen2.5-VL-7B-Instruct";

/// Exactly the seed's `model.json`.
fn seed_model_json() -> Value {
    serde_json::from_str(
        r#"{
  "id": "Qwen/Qwen2.5-VL-7B-Instruct",
  "name": "Qwen 2.5 VL 7B",
  "type": "chat",
  "runtime": "vllm",
  "memory": "39GB",
  "context_length": 32768,
  "description": "Multi-modal vision-language model from Alibaba",
  "enabled": true,
  "auto_pull": true,
  "prewarm": true,
  "runtime_args": [
    "--trust-remote-code",
    "--max-model-len", "32768",
    "--limit-mm-per-prompt", "{\"image\":10}",
    "--enforce-eager",
    "--max-num-seqs", "64"
  ]
}"#,
    )
    .unwrap()
}

/// The slot's id.
fn slot_id(slot: &Value) -> String {
    slot["id"]
        .as_str()
        .unwrap_or_else(|| panic!("slot without id: {slot}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The seed's steps: where a launch's token comes from.

/// Steps 1–3: the cluster-wide token, set through one node, reaches the launch on another,
/// in the environment only; the runner logs that a token was provided, not which.
#[test]
fn the_seed_model_runs_with_the_system_token_in_its_environment_only() {
    let c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB,80GB"))
        .start();
    let token = secret("seed");
    c.set_system_token(2, &token);
    c.create_model(1, &seed_model_json());

    let qwen = c.wait_running(1, QWEN);
    assert_eq!(c.node_of(&qwen), 2, "only node2 has GPUs: {qwen}");
    let gpus = qwen["gpu_indices"].as_array().unwrap().clone();
    assert_eq!(gpus.len(), 1, "39 GB fits one 80 GB GPU: {qwen}");
    assert_eq!(qwen["hf_token_source"], "system", "{qwen}");
    assert_eq!(qwen["restarts"], 0, "{qwen}");

    let launch = c.only_launch(&slot_id(&qwen));
    c.assert_launch_is_slot(&launch, &qwen);
    assert_eq!(launch["hf_token_present"], true, "{launch}");
    assert_eq!(
        launch["hf_token_sha256"],
        json!(sha256_hex(&token)),
        "{launch}"
    );
    let argv = str_vec(&launch["argv"]);
    assert!(
        argv.iter().all(|a| !a.contains(&token)),
        "the token is in argv: {argv:?}"
    );
    assert_eq!(
        argv[0],
        fake_vllm().display().to_string(),
        "argv[0] is the --vllm-command"
    );
    let runtime_args = str_vec(&seed_model_json()["runtime_args"]);
    assert_eq!(
        argv[1..],
        contract_argv(
            QWEN,
            qwen["port"].as_u64().unwrap(),
            32768,
            None,
            &runtime_args
        )[..],
        "argv does not follow the contract"
    );
    assert_eq!(
        launch["cuda_visible_devices"],
        json!(gpus[0].as_u64().unwrap().to_string()),
        "CUDA_VISIBLE_DEVICES is the one assigned GPU index: {launch}"
    );

    assert!(
        c.log(2).lines().any(|l| l.contains("NewVLLMRuntime received args")
            && l.contains(QWEN)
            && l.contains("hf_token_provided=true")),
        "node2's log has no `NewVLLMRuntime received args model={QWEN} hf_token_provided=true` line"
    );
    c.assert_no_leaks(&[&token]);
}

/// Step 4: with the token cleared, a newly started model gets no `HF_TOKEN` at all.
#[test]
fn a_model_started_after_the_token_is_cleared_gets_no_hf_token() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB")).start();
    let token = secret("cleared");
    c.set_system_token(1, &token);
    c.set_system_token(1, "");

    let public = "acme/public-model";
    c.create_model(1, &model_json(public, "39GB", &[]));
    let p = c.wait_running(1, public);
    assert_eq!(p["hf_token_source"], "none", "{p}");
    let pl = c.only_launch(&slot_id(&p));
    c.assert_launch_is_slot(&pl, &p);
    assert_eq!(pl["hf_token_present"], false, "{pl}");
    assert_eq!(pl["hf_token_sha256"], Value::Null, "{pl}");
    assert_eq!(
        str_vec(&pl["argv"])[1..],
        contract_argv(public, p["port"].as_u64().unwrap(), 8192, None, &[])[..]
    );
    c.assert_no_leaks(&[&token]);
}

/// Step 4, continued: a node started with its own `HF_TOKEN` launches with that one.
#[test]
fn a_node_with_its_own_hf_token_launches_with_it_when_no_level_is_set() {
    let env_token = secret("nodeenv");
    let c = Cluster::builder()
        .node(NodeSpec::gpus("80GB"))
        .node(NodeSpec::gpus("100GB").env("HF_TOKEN", &env_token))
        .start();
    let envm = "acme/env-token-model";
    c.create_model(1, &model_json(envm, "90GB", &[]));
    let e = c.wait_running(1, envm);
    assert_eq!(
        c.node_of(&e),
        2,
        "only node2 has a GPU of 90 GB or more: {e}"
    );
    assert_eq!(e["hf_token_source"], "environment", "{e}");
    let el = c.only_launch(&slot_id(&e));
    c.assert_launch_is_slot(&el, &e);
    assert_eq!(el["hf_token_present"], true, "{el}");
    assert_eq!(el["hf_token_sha256"], json!(sha256_hex(&env_token)), "{el}");
    assert!(str_vec(&el["argv"]).iter().all(|a| !a.contains(&env_token)));
    c.assert_no_leaks(&[&env_token]);
}

/// Step 5: a changed token reaches the next launch; a model already running keeps running
/// undisturbed through every token change.
#[test]
fn a_changed_token_reaches_the_next_launch_and_leaves_running_models_alone() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB,80GB")).start();
    let (first, second) = (secret("first"), secret("second"));
    c.set_system_token(1, &first);
    c.create_model(1, &seed_model_json());
    let qwen = c.wait_running(1, QWEN);
    let qwen_slot = slot_id(&qwen);
    let qwen_pid = pid_of(&c.only_launch(&qwen_slot));

    c.set_system_token(1, "");
    c.set_system_token(1, &second);
    let next = "acme/next-model";
    c.create_model(1, &model_json(next, "39GB", &[]));
    let n = c.wait_running(1, next);
    assert_eq!(n["hf_token_source"], "system", "{n}");
    let nl = c.only_launch(&slot_id(&n));
    c.assert_launch_is_slot(&nl, &n);
    assert_eq!(nl["hf_token_sha256"], json!(sha256_hex(&second)), "{nl}");
    assert!(str_vec(&nl["argv"]).iter().all(|a| !a.contains(&second)));

    let q = c.wait_running(1, QWEN);
    assert_eq!(q["restarts"], 0, "{q}");
    assert_eq!(q["node_id"], qwen["node_id"], "{q}");
    assert_eq!(
        pid_of(&c.only_launch(&qwen_slot)),
        qwen_pid,
        "the Qwen slot was relaunched"
    );
    assert_eq!(c.live_fakes(&qwen_slot), vec![qwen_pid]);
    c.assert_no_leaks(&[&first, &second]);
}

// ---------------------------------------------------------------------------------------------
// Placement

#[test]
fn a_model_too_big_for_the_gpus_stays_pending_with_a_reason() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB,80GB")).start();
    let big = "acme/too-big";
    c.create_model(1, &model_json(big, "200GB", &[]));
    let b = c.wait_slot(1, big, WAIT, "is pending with a reason", |s| {
        s["state"] == "pending"
            && s["pending_reason"]
                .as_str()
                .is_some_and(|t| t.contains("needs"))
    });
    assert_eq!(b["node_id"], Value::Null, "{b}");
    let reason = b["pending_reason"].as_str().unwrap();
    assert!(
        reason.contains("200 GB"),
        "the reason names the size: {reason}"
    );

    // Once the runner has launched a model that fits, the big one is still pending and
    // was never launched.
    let small = "acme/fits";
    c.create_model(1, &model_json(small, "10GB", &[]));
    c.wait_running(1, small);
    let b = c.slot(1, big).unwrap().expect("the big model's slot");
    assert_eq!(b["state"], "pending", "{b}");
    assert!(
        b["pending_reason"]
            .as_str()
            .is_some_and(|t| t.contains("needs")),
        "{b}"
    );
    assert!(c.launches(&slot_id(&b)).is_empty());
}

#[test]
fn a_model_bigger_than_one_gpu_runs_on_two_with_tensor_parallelism() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB,80GB")).start();
    let tp = "acme/two-gpus";
    c.create_model(1, &model_json(tp, "120GB", &["--trust-remote-code"]));
    let t = c.wait_running(1, tp);
    assert_eq!(t["gpu_indices"], json!([0, 1]), "{t}");
    let l = c.only_launch(&slot_id(&t));
    c.assert_launch_is_slot(&l, &t);
    assert_eq!(l["cuda_visible_devices"], "0,1", "{l}");
    assert_eq!(
        str_vec(&l["argv"])[1..],
        contract_argv(
            tp,
            t["port"].as_u64().unwrap(),
            8192,
            Some(2),
            &["--trust-remote-code".to_string()]
        )[..]
    );
}

// ---------------------------------------------------------------------------------------------
// Failover

/// Kill -9 of the node that runs a model: it moves; the restarted node runs nothing twice.
#[test]
fn kill9_of_the_runner_node_moves_its_model_and_nothing_runs_twice() {
    // Node 1 (the leader) has no GPU, so the model runs on node 2 or 3.
    let mut c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB,80GB"))
        .node(NodeSpec::gpus("80GB,80GB"))
        .start();
    let m = "acme/failover-model";
    c.create_model(1, &model_json(m, "39GB", &[]));
    let s = c.wait_running(1, m);
    let slot = slot_id(&s);
    let from = c.node_of(&s);
    assert_ne!(from, 1, "node1 has no GPU: {s}");
    let to = if from == 2 { 3 } else { 2 };
    let first = c.only_launch(&slot);
    c.assert_launch_is_slot(&first, &s);
    let old_pid = pid_of(&first);

    c.kill9(from);
    let t0 = Instant::now();
    // Its vLLM process dies with it (parent-death signal).
    wait_until(
        Duration::from_secs(15),
        &format!("the vLLM process {old_pid} of the killed node{from} is gone"),
        || !pid_alive(old_pid),
    );

    // Within node_lost_after plus a few seconds, it runs on the other node.
    let to_id = c.id(to);
    let moved = c.wait_slot(
        1,
        m,
        Duration::from_millis(NODE_LOST_AFTER_MS) + Duration::from_secs(40),
        &format!("runs on node{to}"),
        |s| s["node_id"] == json!(to_id) && s["state"] == "running",
    );
    eprintln!(
        "the model ran again on node{to} {:.1}s after node{from} was killed (node_lost_after {NODE_LOST_AFTER_MS} ms)",
        t0.elapsed().as_secs_f64()
    );
    let launches = c.launches(&slot);
    assert_eq!(
        launches.len(),
        2,
        "one launch per placement: {}",
        pretty(&launches)
    );
    let second = &launches[1];
    c.assert_launch_is_slot(second, &moved);
    let new_pid = pid_of(second);
    assert_ne!(new_pid, old_pid);
    assert_eq!(c.live_fakes(&slot), vec![new_pid]);

    // Restart the killed node: its old process stays gone and nothing runs twice.
    let from_launches_before = c.records(from).len();
    c.restart(from);
    wait_for(
        WAIT,
        &format!("the restarted node{from} sees the slot on node{to} (stale read)"),
        || {
            let v = c.client(from).poll_json(&format!("{SLOTS}?stale=true"))?;
            let s = v
                .as_array()
                .and_then(|a| a.iter().find(|s| s["model_id"] == json!(m)).cloned())
                .ok_or_else(|| format!("no slot in {v}"))?;
            if s["node_id"] == json!(to_id) {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    let not_relaunched = || {
        let after = c.records(from);
        if after.len() == from_launches_before {
            Ok(())
        } else {
            Err(format!(
                "the restarted node{from} launched the slot again although it runs on node{to}: {}",
                pretty(&after[from_launches_before.min(after.len())..])
            ))
        }
    };
    // A few ticks of the restarted node's reconciler: still one process, the same one.
    assert_holds_for(
        Duration::from_secs(2),
        &format!("exactly one vLLM process runs the slot, the one on node{to}"),
        || {
            not_relaunched()?;
            if c.is_fake_of(old_pid, &slot) {
                return Err("the old process came back".into());
            }
            let live = c.live_fakes(&slot);
            if live == vec![new_pid] {
                Ok(())
            } else {
                Err(format!("live processes {live:?}"))
            }
        },
    );
    let s = c.wait_running(1, m);
    assert_eq!(s["node_id"], json!(to_id), "{s}");
    assert_eq!(c.launches(&slot).len(), 2);
}

/// Kill -9 of the leader that runs no model: every vLLM process elsewhere keeps its PID.
#[test]
fn kill9_of_a_leader_without_models_keeps_every_vllm_pid() {
    let mut c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .node(NodeSpec::gpus("80GB"))
        .start();
    // 70 GB each: one per 80 GB GPU, so one on node 2 and one on node 3.
    let models = ["acme/keep-a", "acme/keep-b"];
    for m in models {
        c.create_model(1, &model_json(m, "70GB", &[]));
    }
    let before: Vec<Value> = models.iter().map(|m| c.wait_running(1, m)).collect();
    let nodes: BTreeSet<usize> = before.iter().map(|s| c.node_of(s)).collect();
    assert_eq!(nodes, BTreeSet::from([2, 3]), "{}", pretty(&before));
    let pids: Vec<(String, u32)> = before
        .iter()
        .map(|s| {
            let slot = slot_id(s);
            let l = c.only_launch(&slot);
            c.assert_launch_is_slot(&l, s);
            (slot, pid_of(&l))
        })
        .collect();

    let leader = c.wait_leader(&[1, 2, 3]);
    assert_eq!(
        leader, 1,
        "test setup: the bootstrap node (no GPU) should still lead; an election moved it"
    );
    c.kill9(1);
    let new_leader = c.wait_leader(&[2, 3]);
    eprintln!("node{new_leader} leads after node1 was killed");

    // Watch for the new leader's full node_lost_after and more: nothing moves or restarts.
    let unchanged = || {
        for (slot, pid) in &pids {
            let live = c.live_fakes(slot);
            if live != vec![*pid] {
                return Err(format!("the vLLM process of {slot} changed: {live:?}"));
            }
            let n = c.launches(slot).len();
            if n != 1 {
                return Err(format!("{slot} was launched {n} times"));
            }
        }
        Ok(())
    };
    assert_holds_for(
        Duration::from_millis(NODE_LOST_AFTER_MS + 3000),
        "after the leader was killed, every vLLM process stays as it was",
        unchanged,
    );
    for (i, m) in models.iter().enumerate() {
        let s = c.wait_running(new_leader, m);
        assert_eq!(s["node_id"], before[i]["node_id"], "{m} moved: {s}");
        assert_eq!(s["restarts"], 0, "{m} restarted: {s}");
    }
    unchanged().unwrap_or_else(|e| panic!("at the end: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Supervision

#[test]
fn a_crashing_vllm_is_restarted_with_backoff_and_counted() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB")).start();
    let m = "acme/crashy-model";
    c.create_model(1, &model_json(m, "10GB", &["--fake-crash-after-ms", "300"]));
    let s = c.wait_slot(1, m, WAIT, "has restarts >= 2", |s| {
        s["restarts"].as_u64().is_some_and(|n| n >= 2)
    });
    let slot = slot_id(&s);
    c.wait_slot(1, m, WAIT, "reports the crash", |s| {
        s["state"] == "failed"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("code 3"))
    });
    let launches = wait_for(WAIT, "three launches are recorded", || {
        let l = c.launches(&slot);
        if l.len() >= 3 {
            Ok(l)
        } else {
            Err(format!("{} launches", l.len()))
        }
    });
    let t: Vec<u64> = launches
        .iter()
        .map(|l| l["started_ms"].as_u64().unwrap())
        .collect();
    let (gap1, gap2) = (t[1] - t[0], t[2] - t[1]);
    eprintln!("gaps between launches: {gap1} ms, {gap2} ms");
    // Each process serves 300 ms before crashing; then a backoff of 1 s, then 2 s.
    assert!(gap1 >= 1200, "relaunched without backoff: {gap1} ms");
    assert!(
        gap2 >= gap1 + 300,
        "the backoff did not grow: {gap1} ms then {gap2} ms"
    );
    let s = c.slot(1, m).unwrap().unwrap();
    assert!(s["restarts"].as_u64().unwrap() >= 2, "{s}");
}

#[test]
fn deleting_a_model_stops_its_process_everywhere() {
    let c = Cluster::builder()
        .node(NodeSpec::gpus("80GB"))
        .node(NodeSpec::gpus("80GB"))
        .start();
    let (gone, stays) = ("acme/delete-me", "acme/stays");
    c.create_model(1, &model_json(gone, "70GB", &[]));
    c.create_model(1, &model_json(stays, "70GB", &[]));
    let g = c.wait_running(1, gone);
    let s = c.wait_running(1, stays);
    assert_ne!(c.node_of(&g), c.node_of(&s), "one model per node: {g} {s}");
    let (g_slot, s_slot) = (slot_id(&g), slot_id(&s));
    let g_pid = pid_of(&c.only_launch(&g_slot));
    let s_pid = pid_of(&c.only_launch(&s_slot));

    // Delete through the node that does not run it.
    let via = if c.node_of(&g) == 1 { 2 } else { 1 };
    let delete = |id: &str| {
        let r = c.client(via).delete(&format!("{MODELS}/{id}"));
        assert!(
            r.status == 200 || r.status == 204,
            "DELETE {id} on node{via}: {} {}",
            r.status,
            r.text()
        );
    };
    delete(gone);
    wait_until(
        WAIT,
        &format!("the vLLM process {g_pid} of {gone} is gone"),
        || c.live_fakes(&g_slot).is_empty() && !pid_alive(g_pid),
    );
    for k in [1, 2] {
        wait_until(WAIT, &format!("node{k} lists no slot for {gone}"), || {
            c.slot(k, gone).is_ok_and(|s| s.is_none())
        });
    }
    // The other model is untouched.
    assert_eq!(c.live_fakes(&s_slot), vec![s_pid]);
    let s2 = c.wait_running(1, stays);
    assert_eq!(s2["node_id"], s["node_id"]);
    assert_eq!(c.launches(&s_slot).len(), 1);
    assert_eq!(c.launches(&g_slot).len(), 1, "{gone} was launched again");

    // And the other one too, on the other node.
    delete(stays);
    wait_until(
        WAIT,
        &format!("the vLLM process {s_pid} of {stays} is gone"),
        || c.live_fakes(&s_slot).is_empty() && !pid_alive(s_pid),
    );
    wait_until(WAIT, "no slot is listed", || {
        c.slots(1).is_ok_and(|s| s.is_empty())
    });
}

// ---------------------------------------------------------------------------------------------
// Gated models

/// A one-GPU node whose vLLM double lets a gated model through only with `good`.
fn gated_cluster(good: &str) -> Cluster {
    Cluster::builder()
        .env("FAKE_VLLM_GATED_TOKEN_SHA256", &sha256_hex(good))
        .node(NodeSpec::gpus("80GB"))
        .start()
}

#[test]
fn a_gated_model_fails_until_the_right_token_is_set() {
    let (good, wrong) = (secret("good"), secret("wrong"));
    let c = gated_cluster(&good);
    let m = "acme/gated-model";
    c.create_model(1, &model_json(m, "10GB", &["--fake-gated"]));

    // No token: it fails, and says the model is gated.
    let s = c.wait_failed_gated(1, m);
    assert_eq!(s["hf_token_source"], "none", "{s}");
    let slot = slot_id(&s);
    let l = c.launches(&slot);
    assert!(!l.is_empty());
    assert!(
        l.iter().all(|l| l["hf_token_present"] == false),
        "{}",
        pretty(&l)
    );
    let tries_without = l.len();

    // A wrong token: retried with it, fails again as gated.
    c.set_system_token(1, &wrong);
    let l = wait_for(WAIT, "a launch with the wrong token", || {
        let l = c.launches(&slot);
        match l.last() {
            Some(last)
                if l.len() > tries_without
                    && last["hf_token_sha256"] == json!(sha256_hex(&wrong)) =>
            {
                Ok(l)
            }
            _ => Err(pretty(&l)),
        }
    });
    let tries_wrong = l.len();
    c.wait_slot(1, m, WAIT, "fails as gated with the system token", |s| {
        s["state"] == "failed"
            && s["hf_token_source"] == "system"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains("gated"))
    });

    // The right token: retried at once, and it runs.
    let t0 = Instant::now();
    c.set_system_token(1, &good);
    let s = c.wait_running(1, m);
    eprintln!(
        "the gated model ran {:.1}s after the token was set",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(s["hf_token_source"], "system", "{s}");
    assert_eq!(s["last_error"], Value::Null, "{s}");
    let l = c.launches(&slot);
    assert!(l.len() > tries_wrong, "{}", pretty(&l));
    let last = l.last().unwrap();
    assert_eq!(last["hf_token_sha256"], json!(sha256_hex(&good)), "{last}");
    c.assert_launch_is_slot(last, &s);
    c.assert_no_leaks(&[&good, &wrong]);
}

/// Real vLLM takes seconds to reach Hugging Face's 401: a token set meanwhile must still
/// bring a retry once that attempt fails, with the new token.
#[test]
fn a_gated_model_whose_token_is_set_while_it_starts_is_retried_with_it() {
    let good = secret("good");
    let c = gated_cluster(&good);
    let m = "acme/slow-gated-model";
    // The first attempt fails only when the test says so: after the token is set.
    let gate = tempfile::tempdir().expect("tempdir");
    let fail_now = gate.path().join("fail-now");
    c.create_model(
        1,
        &model_json(
            m,
            "10GB",
            &[
                "--fake-gated",
                "--fake-gated-after",
                &fail_now.display().to_string(),
            ],
        ),
    );
    let first = wait_for(WAIT, "the first attempt is launched", || {
        c.launches_of_model(m)
            .pop()
            .ok_or_else(|| "no launch yet".to_string())
    });
    assert_eq!(first["hf_token_present"], false, "{first}");

    c.set_system_token(1, &good);
    assert!(
        pid_alive(pid_of(&first)),
        "the first attempt ended before it was told to fail"
    );
    std::fs::write(&fail_now, b"").expect("open the gate");

    let s = c.wait_running(1, m);
    assert_eq!(s["hf_token_source"], "system", "{s}");
    let l = c.launches(&slot_id(&s));
    assert!(l.len() >= 2, "{}", pretty(&l));
    let last = l.last().unwrap();
    assert_eq!(last["hf_token_sha256"], json!(sha256_hex(&good)), "{last}");
    c.assert_launch_is_slot(last, &s);
    c.assert_no_leaks(&[&good]);
}
