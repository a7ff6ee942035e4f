//! Issue 2, the cluster core, as a user sees it: real `helix` processes, each node on its
//! own 127.0.0.N, driven over the HTTP API.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::membership::members;
use crate::common::writer::{assert_has_all, assert_no_acknowledged_write_lost, WriteLog, Writers};
use crate::common::*;
use serde_json::{json, Value};

fn settings_ok(c: &Cluster, k: usize) -> Value {
    c.client(k).get_ok(SETTINGS)
}

fn assert_settings_shape(v: &Value, token_set: bool) {
    assert_eq!(v["id"], "system", "settings: {v}");
    for field in ["created", "updated"] {
        assert!(
            v[field].as_str().is_some_and(|s| !s.is_empty()),
            "settings.{field}: {v}"
        );
    }
    assert_eq!(
        v["huggingface_token_set"],
        json!(token_set),
        "settings: {v}"
    );
    let src = if token_set { "database" } else { "none" };
    assert_eq!(v["huggingface_token_source"], json!(src), "settings: {v}");
}

// ---------------------------------------------------------------------------------------------
// Membership and the shared token

#[test]
fn a_node_may_join_through_any_member_and_all_become_ready_voters() {
    let mut c = Cluster::new(2);
    let k = c.add_node(NodeSpec::none());
    // Through node 2, not the one that bootstrapped.
    c.join(k, 2);

    for k in 1..=3 {
        let anon = c.caller(k, None, "anonymous");
        let r = anon.get("/readyz");
        assert_eq!(r.status, 200, "readyz on node{k}: {}", r.text());
        let r = anon.get("/healthz");
        assert_eq!(r.status, 200, "healthz on node{k}: {}", r.text());
    }
    let ids: BTreeSet<u64> = (1..=3).map(|k| c.id(k)).collect();
    assert_eq!(ids.len(), 3, "node ids must be distinct: {ids:?}");
    for k in 1..=3 {
        wait_for(
            WAIT,
            &format!("node{k} lists the three members as voters"),
            || {
                let st = c.status(k)?;
                let m = members(&st)?;
                if m.ids == ids && m.voters == 3 && st["leader_id"].is_u64() {
                    Ok(())
                } else {
                    Err(st.to_string())
                }
            },
        );
    }
    let nodes = c.client(1).get_ok("/api/v1/nodes");
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
}

#[test]
fn a_token_set_through_one_node_is_seen_by_every_node_and_never_shown() {
    let c = Cluster::new(3);
    let token = secret("shared");

    // Nothing is set yet.
    assert_settings_shape(&settings_ok(&c, 1), false);
    for k in 1..=3 {
        c.wait_token_set(k, false);
    }

    let r = c.client(3).put(SETTINGS, &hf_token(&token));
    assert_eq!(r.status, 200, "PUT settings on node3: {}", r.text());
    assert!(!r.text().contains(&token), "PUT response leaks the token");
    assert_settings_shape(&r.json(), true);

    for k in 1..=3 {
        c.wait_token_set(k, true);
        assert_settings_shape(&settings_ok(&c, k), true);
        let cfg = c.client(k).get_ok(CONFIG);
        assert_eq!(
            cfg["node_id"].as_u64(),
            Some(c.id(k)),
            "system/config node_id on node{k}"
        );
    }

    // A partial update without the field leaves the token alone.
    let r = c.client(1).put(SETTINGS, &json!({}));
    assert_eq!(r.status, 200, "PUT {{}}: {}", r.text());
    assert_settings_shape(&r.json(), true);
    for k in 1..=3 {
        c.wait_token_set(k, true);
    }

    // Not in any file under any data dir, any node output, or any response.
    c.assert_no_leaks(&[&token]);
}

#[test]
fn a_token_cleared_through_another_node_is_unset_everywhere() {
    let c = Cluster::new(2);
    let token = secret("cleared");
    c.set_system_token(1, &token);
    for k in 1..=2 {
        c.wait_token_set(k, true);
    }

    let r = c.client(2).put(SETTINGS, &hf_token(""));
    assert_eq!(r.status, 200, "clear on node2: {}", r.text());
    assert_settings_shape(&r.json(), false);
    for k in 1..=2 {
        c.wait_token_set(k, false);
        assert_settings_shape(&settings_ok(&c, k), false);
    }
    c.assert_no_leaks(&[&token]);
}

// ---------------------------------------------------------------------------------------------
// Failover: kill -9 the leader while clients write to the other nodes, five rounds.

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    let log = Arc::new(Mutex::new(WriteLog::default()));

    for round in 1..=5 {
        let leader = c.wait_leader(&all);
        let others: Vec<usize> = all.iter().copied().filter(|&k| k != leader).collect();
        eprintln!("round {round}: leader is node{leader}, writing through {others:?}");

        let before = log.lock().unwrap().acked.len();
        let writers = Writers::start(&c, &others, &format!("kill/r{round}"), &log);

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
        writers.stop();
    }

    assert_no_acknowledged_write_lost(&c, &all, &log);
}

// ---------------------------------------------------------------------------------------------
// Quorum

/// Creates `quorum/before-0..5` through the three nodes in turn.
fn write_early_models(c: &Cluster) -> BTreeSet<String> {
    (0..5)
        .map(|i| {
            let id = format!("quorum/before-{i}");
            c.create_model(1 + i % 3, &json!({ "id": id, "memory": "1GB", "name": id }));
            id
        })
        .collect()
}

/// The longest test here (three write timeouts); libtest starts tests in name order.
#[test]
fn a_cluster_without_a_quorum_answers_503_promptly_and_still_serves_stale_reads() {
    let mut c = Cluster::new(3);
    let early = write_early_models(&c);
    c.kill9(3);
    c.kill9(2);

    // A write answers 503 with Retry-After, promptly.
    let slow = c.client(1).timeout(Duration::from_secs(30));
    for i in 0..2 {
        let id = format!("quorum/no-quorum-{i}");
        let t = Instant::now();
        let r = slow
            .try_create_model(&id)
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
    let r = slow.get(MODELS);
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
    let stale = c.client(1).model_ids(true).unwrap();
    assert_has_all(&stale, &early, "stale read on the survivor");
}

#[test]
fn acknowledged_writes_survive_losing_and_regaining_the_quorum() {
    let mut c = Cluster::new(3);
    let mut acked = write_early_models(&c);

    // One of three down: writes go on, through both survivors.
    c.kill9(3);
    for k in [1, 2] {
        let id = format!("quorum/one-down-via-{k}");
        c.client(k).create_model_acked(&id, WAIT);
        acked.insert(id);
    }
    c.kill9(2);

    // Both back: writes succeed again, nothing is lost.
    c.restart(2);
    c.restart(3);
    for k in [1, 2, 3] {
        let id = format!("quorum/after-via-{k}");
        c.client(k).create_model_acked(&id, WAIT);
        acked.insert(id);
    }
    for k in [1, 2, 3] {
        c.wait_models_present(k, &acked);
        let have = c.client(k).model_ids(false).unwrap();
        assert_has_all(&have, &acked, &format!("node{k}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Stalls

/// A follower that stalls (here: SIGSTOP, longer than any election timeout) and comes back
/// follows its leader again: the term does not move and the leader is not deposed.
#[test]
fn a_stalled_follower_does_not_depose_the_leader() {
    // Longer timeouts than the defaults, so that only the stall, not this machine's load
    // during the test run, leaves a member without a leader for an election timeout.
    let mut c = Cluster::builder()
        .raft("heartbeat_ms = 100")
        .raft("election_timeout_min_ms = 500")
        .raft("election_timeout_max_ms = 1000")
        .nodes(3)
        .start();
    let all = [1, 2, 3];
    let leader = c.wait_leader(&all);
    let term_before = c.term(leader).unwrap();
    let follower = all.into_iter().find(|&k| k != leader).unwrap();
    let follower_id = c.id(follower);

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
    );
    assert_eq!(c.wait_leader(&all), leader, "the leader was deposed");
    for k in all {
        assert_eq!(c.term(k).unwrap(), term_before, "node{k}: the term moved");
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
    );
}

// ---------------------------------------------------------------------------------------------
// Restart and catch-up

/// Stop (SIGTERM) and restart all nodes: state, membership and the token survive.
#[test]
fn full_restart_keeps_state_membership_and_token() {
    let mut c = Cluster::new(3);
    let token = secret("restart");
    c.set_system_token(2, &token);
    let mut ids = BTreeSet::new();
    for i in 0..10 {
        let id = format!("restart/m-{i}");
        c.create_model(
            1 + i % 3,
            &json!({ "id": id, "memory": "1GB", "name": format!("model {i}") }),
        );
        ids.insert(id);
    }
    for k in 1..=3 {
        c.wait_token_set(k, true);
        c.wait_models_present(k, &ids);
    }
    let members_before = c.member_ids(1).unwrap();
    assert_eq!(members_before.len(), 3);
    let settings_before = settings_ok(&c, 1);
    let model_before = c.client(1).get_ok(&format!("{MODELS}/restart/m-3"));

    for k in [3, 2, 1] {
        c.stop(k);
    }
    // Stopped cleanly: the plaintext token is in no file the nodes left behind.
    c.assert_no_leaks(&[&token]);

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
                if members(&st)?.ids == members_before && st["leader_id"].is_u64() {
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
    let r = c.client(3).get_ok(&format!("{MODELS}/restart/m-3"));
    assert_eq!(r, model_before, "a model changed across the restart");

    // And the cluster still takes writes.
    c.client(3).create_model_acked("restart/after", WAIT);
}

#[test]
fn new_nodes_catch_up_from_a_snapshot() {
    // openraft's own info lines show the purge and the snapshot install (openraft is pinned
    // at 0.9.25, so their wording is stable).
    let mut c = Cluster::builder()
        .raft("snapshot_every = 50")
        .env("RUST_LOG", "info,openraft=info")
        .nodes(3)
        .start();

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
        || c.log(leader).contains("purge_log"),
    );

    for _ in [4, 5] {
        let k = c.add_node(NodeSpec::none());
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
        let m = c
            .client(k)
            .get_ok(&format!("{MODELS}/snap/n2-17?stale=true"));
        assert_eq!(m["id"], "snap/n2-17", "stale GET of one model on node{k}");
    }
    // The first five members are voters.
    let ids: BTreeSet<u64> = (1..=5).map(|k| c.id(k)).collect();
    assert_eq!(ids.len(), 5);
    wait_for(WAIT, "node5 reports five members, all voters", || {
        let st = c.status(5)?;
        let m = members(&st)?;
        if m.ids == ids && m.voters == 5 {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    // They caught up by installing a snapshot, not by replaying the (purged) log.
    for k in [4, 5] {
        let log = c.log(k);
        assert!(
            log.contains("install_full_snapshot") || log.contains("install_snapshot"),
            "node{k} shows no snapshot install in {}",
            c.node(k).log_path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input gets a clear 4xx and changes nothing.

/// A one-node cluster with a token and a model, and what it holds before the bad input.
struct BadInput {
    c: Cluster,
    settings: Value,
    models: BTreeSet<String>,
}

impl BadInput {
    fn start() -> BadInput {
        let c = Cluster::new(1);
        c.set_system_token(1, &secret("badinput"));
        c.create_model(
            1,
            &json!({ "id": "bad/existing", "memory": "1GB", "name": "existing" }),
        );
        let settings = settings_ok(&c, 1);
        let models = c.client(1).model_ids(false).unwrap();
        BadInput {
            c,
            settings,
            models,
        }
    }

    /// Sends `body` as JSON and expects 400 with an error that names each of `names`.
    fn expect_400(&self, method: &str, path: &str, body: &str, names: &[&str]) {
        let r = self
            .c
            .client(1)
            .send_raw(method, path, Some(body.as_bytes()));
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
    }

    /// Settings and models are as they were; `absent` models were not created.
    fn assert_unchanged(&self, absent: &[&str]) {
        assert_eq!(
            settings_ok(&self.c, 1),
            self.settings,
            "settings changed after bad input"
        );
        self.c.wait_token_set(1, true);
        assert_eq!(
            self.c.client(1).model_ids(false).unwrap(),
            self.models,
            "models changed after bad input"
        );
        for id in absent {
            let r = self.c.client(1).get(&format!("{MODELS}/{id}"));
            assert_eq!(r.status, 404, "GET {id}: {}", r.text());
            r.error_message();
        }
    }
}

#[test]
fn malformed_settings_get_400_naming_the_field_and_change_nothing() {
    let b = BadInput::start();
    b.expect_400("PUT", SETTINGS, r#"{"huggingface_token": "#, &[]);
    b.expect_400("PUT", SETTINGS, "not json at all", &[]);
    b.expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_tokn": "hf_x"}"#,
        &["huggingface_tokn"],
    );
    b.expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_token": 42}"#,
        &["huggingface_token"],
    );
    b.expect_400(
        "PUT",
        SETTINGS,
        r#"{"huggingface_token": ["hf_x"]}"#,
        &["huggingface_token"],
    );
    b.assert_unchanged(&[]);
}

#[test]
fn malformed_models_get_400_naming_the_field_and_change_nothing() {
    let b = BadInput::start();
    b.expect_400("POST", MODELS, r#"{"id": "bad/a", "name": "#, &[]);
    for (body, field) in [
        (
            r#"{"id": "bad/a", "name": "a", "bogus_field": 1}"#,
            "bogus_field",
        ),
        (
            r#"{"id": "bad/a", "name": "a", "context_length": "long"}"#,
            "context_length",
        ),
        (
            r#"{"id": "bad/a", "name": "a", "runtime_args": "--x"}"#,
            "runtime_args",
        ),
        (
            r#"{"id": "bad/a", "name": "a", "enabled": "yes"}"#,
            "enabled",
        ),
        (
            r#"{"id": "bad/a", "name": "a", "memory": "lots"}"#,
            "memory",
        ),
    ] {
        b.expect_400("POST", MODELS, body, &[field]);
    }
    b.expect_400("POST", MODELS, r#"{"id": 7, "name": "a"}"#, &[]);
    b.assert_unchanged(&["bad/a"]);
}

#[test]
fn bodies_over_the_size_limit_get_413_and_change_nothing() {
    let b = BadInput::start();
    // The server answers before it has read the body, and closes the connection.
    let client = b.c.client(1).timeout(Duration::from_secs(30));
    let big_token = format!(
        r#"{{"huggingface_token": "hf_{}"}}"#,
        "A".repeat(10 * 1024 * 1024)
    );
    let r = client.send_oversized("PUT", SETTINGS, big_token.into_bytes());
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
    let r = client.send_oversized("POST", MODELS, big_model.into_bytes());
    assert_eq!(r.status, 413, "10 MB model body: {} {}", r.status, r.text());
    r.error_message();
    b.assert_unchanged(&["bad/big"]);
}

#[test]
fn a_duplicate_model_id_is_a_conflict_and_changes_nothing() {
    let b = BadInput::start();
    let r = b.c.client(1).post(
        MODELS,
        &json!({ "id": "bad/existing", "memory": "1GB", "name": "other" }),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    r.error_message();
    let m = b.c.client(1).get_ok(&format!("{MODELS}/bad/existing"));
    assert_eq!(m["name"], "existing");
    b.assert_unchanged(&[]);
}

/// serde would happily read a struct from a sequence, field by field.
#[test]
fn a_json_array_is_neither_settings_nor_a_model() {
    let b = BadInput::start();
    b.expect_400("PUT", SETTINGS, r#"["hf_from_an_array"]"#, &[]);
    b.expect_400("POST", MODELS, r#"["bad/array", "array"]"#, &[]);
    b.assert_unchanged(&["bad/array"]);
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[test]
fn requests_need_a_known_key() {
    let c = Cluster::new(1);
    let anon = c.caller(1, None, "no key");
    let unknown = c.caller(1, Some("helix-not-a-real-key-0123456789"), "an unknown key");

    // Health endpoints are open.
    assert_eq!(anon.get("/healthz").status, 200);
    assert_eq!(anon.get("/readyz").status, 200);

    for cl in [&anon, &unknown] {
        let cases = [
            cl.get(SETTINGS),
            cl.put(SETTINGS, &hf_token("hf_evil")),
            cl.get(CONFIG),
            cl.get(MODELS),
            cl.post(
                MODELS,
                &json!({ "id": "auth/x", "memory": "1GB", "name": "x" }),
            ),
            cl.get("/api/v1/cluster/status"),
            cl.get("/api/v1/nodes"),
        ];
        for (i, r) in cases.into_iter().enumerate() {
            assert_eq!(
                r.status,
                401,
                "request #{i} with {}: {} {}",
                cl.who,
                r.status,
                r.text()
            );
            r.error_message();
        }
    }
    // A malformed Authorization header (the key without `Bearer `) is no better.
    let r = anon.clone().authorization(&c.admin_key).get(SETTINGS);
    assert_eq!(r.status, 401, "key without `Bearer `: {}", r.text());

    // Nothing was changed by the refused requests; the admin key works.
    assert_settings_shape(&settings_ok(&c, 1), false);
    c.wait_token_set(1, false);
    assert_eq!(c.client(1).get(&format!("{MODELS}/auth/x")).status, 404);
}
