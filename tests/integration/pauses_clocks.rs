//! Issue 15, part 6: pauses and clocks. Every node SIGSTOPped in turn under steady writers
//! (the leader first, then the followers) loses no acknowledged write and leaves one leader
//! each time; a leader whose wall clock jumps a day ahead and back (the debug build's clock
//! offset, see `src/test_faults.rs`) keeps its lease and term (Raft's timers are monotonic),
//! and moves the cluster's time, which join token expiry, key use and audit times read, by
//! no more than the jump lasted.

use std::sync::{Arc, Mutex};

use helix::test_faults::CLOCK_OFFSET_FILE;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::common::disk::FaultFile;
use crate::common::writer::{assert_no_acknowledged_write_lost, WriteLog, Writers};
use crate::common::*;

fn acked(log: &Mutex<WriteLog>) -> usize {
    log.lock().unwrap().acked.len()
}

/// Each node is stopped (SIGSTOP) in turn, longer than any election timeout, while writers
/// write through the other two: writes go on (a new leader when the leader was stopped),
/// and once it runs again the three agree on one leader. Extends `cluster_core.rs`'s single
/// stalls to every role under load.
#[test]
fn pausing_each_node_in_turn_under_steady_writers_loses_no_acknowledged_write() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    let first = c.wait_leader(&all);
    let order: Vec<usize> = std::iter::once(first)
        .chain(all.into_iter().filter(|&k| k != first))
        .collect();
    let log = Arc::new(Mutex::new(WriteLog::default()));

    for (round, &k) in order.iter().enumerate() {
        let leader = c.wait_leader(&all);
        let role = if k == leader {
            "the leader"
        } else {
            "a follower"
        };
        let others: Vec<usize> = all.into_iter().filter(|&o| o != k).collect();
        eprintln!("round {round}: stopping node{k}, {role}; writing through {others:?}");
        let before = acked(&log);
        let writers = Writers::start(&c, &others, &format!("pause/r{round}"), &log);
        wait_until(WAIT, "writers get writes acknowledged", || {
            acked(&log) >= before + 6
        });

        c.pause(k);
        let at_pause = acked(&log);
        if k == leader {
            c.wait_leader(&others);
        }
        wait_until(
            WAIT,
            &format!("round {round}: writes go on while node{k} ({role}) is stopped"),
            || acked(&log) >= at_pause + 6,
        );
        c.resume(k);
        c.wait_leader(&all);
        writers.stop();
    }
    assert_no_acknowledged_write_lost(&c, &all, &log);
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn parse_ms(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    (OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unix_timestamp_nanos()
        / 1_000_000) as i64
}

/// The leader's wall clock jumps a day ahead, it takes writes, and jumps back. Its lease is
/// monotonic time: it stays leader, in the same term. The times it stamped moved with the
/// monotonic clock, not a day ahead: a join token with an hour to live, made before, still
/// admits a node; a key's last use and the audit entries are not in tomorrow; the audit log
/// stays in commit order.
#[test]
fn a_leader_whose_clock_jumps_a_day_ahead_and_back_keeps_its_lease_tokens_and_audit_order() {
    let faults = tempfile::tempdir().unwrap();
    let clocks: Vec<FaultFile> = (1..=3)
        .map(|k| FaultFile::new(faults.path(), &format!("node{k}-clock-offset-ms")))
        .collect();
    // Longer election timeouts than the defaults, so that only a clock that touched the
    // lease, not this machine's load, could move the leader.
    let mut builder = Cluster::builder()
        .raft("heartbeat_ms = 100")
        .raft("election_timeout_min_ms = 500")
        .raft("election_timeout_max_ms = 1000")
        .server("key_use_report_ms = 200");
    for clock in &clocks {
        builder =
            builder.node(NodeSpec::none().env(CLOCK_OFFSET_FILE, clock.path.to_str().unwrap()));
    }
    let mut c = builder.start();
    let all = [1, 2, 3];
    let leader = c.wait_leader(&all);
    let term = c.term(leader).unwrap();
    let admin = c.client(leader);
    let token = admin.expect(
        "POST",
        "/api/v1/cluster/join-tokens",
        Some(&json!({"ttl": "1h"})),
        200,
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let user = create_user(&admin, json!({"name": "before-the-jump"}));

    clocks[leader - 1].set_ms(DAY_MS);
    create_org(&admin, "while-a-day-ahead");
    let as_user = c.caller(leader, Some(&user.key), "before-the-jump");
    as_user.expect("GET", &format!("{USERS}/me"), None, 200);
    wait_for(WAIT, "the key's use while a day ahead is recorded", || {
        let keys = admin.poll_json(&format!("{USERS}/{}/api-keys", user.id))?;
        keys.as_array()
            .and_then(|l| l.iter().find(|k| k["id"] == json!(user.key_id)))
            .filter(|k| k["last_used"].is_string())
            .map(|k| parse_ms(&k["last_used"]))
            .ok_or_else(|| format!("{keys}"))
    });
    clocks[leader - 1].set_ms(0);
    create_org(&admin, "after-the-clock-went-back");

    assert_eq!(c.wait_leader(&all), leader, "the leader changed");
    for k in all {
        assert_eq!(c.term(k).unwrap(), term, "node{k}: the term moved");
    }

    let keys = admin.get_ok(&format!("{USERS}/{}/api-keys", user.id));
    let key = keys
        .as_array()
        .and_then(|l| l.iter().find(|k| k["id"] == json!(user.key_id)))
        .unwrap_or_else(|| panic!("the key is listed: {keys}"));
    assert!(
        parse_ms(&key["last_used"]) < now_ms() + HOUR_MS,
        "the key's last use is not in tomorrow: {key}"
    );
    as_user.expect("GET", &format!("{USERS}/me"), None, 200);

    // The token made before the jump, with an hour to live, still admits a node.
    let k = c.add_node(NodeSpec::none());
    c.spawn_join(k, leader, &token);
    c.wait_ready(k);

    let audit = admin.get_ok("/api/v1/audit");
    let entries = audit.as_array().expect("the audit log is a list");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "listed in commit order: {seqs:?}"
    );
    let times: Vec<i64> = entries.iter().map(|e| parse_ms(&e["at"])).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times never go back along the commit order: {audit}"
    );
    let latest = *times.last().unwrap();
    assert!(
        latest < now_ms() + HOUR_MS,
        "no audit time is in tomorrow: {audit}"
    );
    assert!(
        entries.iter().any(|e| e["kind"] == json!("node_admitted")),
        "the join is in the audit log: {audit}"
    );
    assert!(
        c.log(leader).contains("the wall clock stepped ahead"),
        "the leader warns of the step"
    );
}
