//! Gossip: members find each other and spread their replicas' load; a forged datagram is
//! refused and counted; routing follows the load; a node killed with SIGKILL is declared
//! down within seconds, and requests go around it meanwhile.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

fn gossip_of(c: &Cluster, k: usize) -> Result<Value, String> {
    Ok(c.client(k).poll_json(CONFIG)?["gossip"].clone())
}

fn ids(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn wait_gossip_sees(c: &Cluster, k: usize, expected: &[u64]) {
    wait_for(WAIT, &format!("node{k}'s gossip sees {expected:?}"), || {
        let gossip = gossip_of(c, k)?;
        match ids(&gossip["live_nodes"]) == expected {
            true => Ok(()),
            false => Err(gossip.to_string()),
        }
    });
}

/// Every member sees every other through gossip; datagrams that do not carry the keyring's
/// tag (plain junk, a forged header) change nothing and are counted.
#[test]
fn members_gossip_and_refuse_forged_datagrams() {
    let c = Cluster::new(3);
    let all: Vec<u64> = (1..=3).map(|k| c.id(k)).collect();
    for k in 1..=3 {
        wait_gossip_sees(&c, k, &all);
    }
    let before = gossip_of(&c, 1).unwrap()["dropped_datagrams"]
        .as_u64()
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = &c.node(1).peer_addr;
    let mut forged = b"hxg1".to_vec();
    forged.extend_from_slice(&[0, 0, 0, 1]);
    forged.extend_from_slice(&[0; 20]);
    forged.extend_from_slice(b"a packet that claims to be from a member");
    forged.extend_from_slice(&[0; 16]);
    for datagram in [b"junk".to_vec(), forged] {
        sender.send_to(&datagram, target).unwrap();
    }
    wait_for(WAIT, "node1 counts both datagrams as dropped", || {
        let gossip = gossip_of(&c, 1)?;
        match gossip["dropped_datagrams"].as_u64() {
            Some(n) if n >= before + 2 => Ok(()),
            _ => Err(gossip.to_string()),
        }
    });
    assert_eq!(ids(&gossip_of(&c, 1).unwrap()["live_nodes"]), all);
}

/// Two replicas on two nodes; one node's vLLM reports 50 requests waiting. Once gossip has
/// carried that, requests through a third node go to the idle replica.
#[test]
fn a_replica_with_a_long_queue_gets_few_requests() {
    let model = "acme/queued";
    let (c, slots) = Cluster::with_two_replicas(
        model,
        &[],
        NodeSpec::gpus("80GB").env("FAKE_VLLM_QUEUE", "50"),
    );
    let busy = slots
        .into_iter()
        .find(|s| s["node_id"].as_u64() == Some(c.id(3)))
        .and_then(|s| s["id"].as_str().map(str::to_string))
        .expect("a replica on the busy node");
    let client = c.client(1);
    let send = || {
        let answer = client.post(
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.header("x-helix-slot").unwrap().to_string()
    };
    // Gossip carries the queue within a couple of seconds; until then the split is even.
    wait_for(WAIT, "routing avoids the busy replica", || {
        let to_busy = (0..10).filter(|_| send() == busy).count();
        match to_busy {
            0 => Ok(()),
            n => Err(format!("{n} of 10 to the busy replica")),
        }
    });
    let to_busy = (0..100).filter(|_| send() == busy).count();
    assert!(
        to_busy <= 5,
        "{to_busy} of 100 went to the replica with 50 waiting"
    );
}

/// 8 clients send requests through node 1 to a model with replicas on nodes 2 and 3; node 3
/// is killed with SIGKILL. No request that starts after the kill fails (one that fails on
/// node 3 before its answer starts is retried on node 2), gossip declares node 3 down within
/// seconds, and from then on no request is even tried there.
#[test]
fn requests_go_around_a_killed_node() {
    let model = "acme/resilient";
    let (mut c, _) =
        Cluster::with_two_replicas(model, &["--fake-token-ms", "5"], NodeSpec::gpus("80GB"));
    let all: Vec<u64> = (1..=3).map(|k| c.id(k)).collect();
    wait_gossip_sees(&c, 1, &all);

    let stop = AtomicBool::new(false);
    // (started, succeeded) of every request.
    let outcomes = Mutex::new(Vec::new());
    let node3 = c.id(3);
    let watcher = c.client(1);
    let log_of_node1 = c.node(1).log_path.clone();
    let retries = || {
        std::fs::read_to_string(&log_of_node1)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("replica failed before answering"))
            .count()
    };
    let senders: Vec<Client> = (0..8)
        .map(|_| c.client(1).timeout(Duration::from_secs(20)))
        .collect();
    let count = || outcomes.lock().unwrap().len();
    let killed_at = std::thread::scope(|scope| {
        for client in senders {
            let (stop, outcomes) = (&stop, &outcomes);
            scope.spawn(move || {
                let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}]})
                    .to_string();
                // Bounded: the test stops the loop, and no client sends more than this.
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let ok = client
                        .try_send(
                            "POST",
                            "/v1/chat/completions",
                            Some(("application/json", body.as_bytes())),
                        )
                        .is_ok_and(|r| r.status == 200);
                    outcomes.lock().unwrap().push((started, ok));
                }
            });
        }
        wait_for(WAIT, "requests flow", || match count() {
            n if n >= 40 => Ok(()),
            n => Err(format!("{n} so far")),
        });
        c.kill9(3);
        let killed_at = Instant::now();
        wait_for(WAIT, "node1's gossip declares node 3 down", || {
            let gossip = watcher.poll_json(CONFIG)?["gossip"].clone();
            match ids(&gossip["down_nodes"]).contains(&node3) {
                true => Ok(()),
                false => Err(gossip.to_string()),
            }
        });
        let detected_after = killed_at.elapsed();
        eprintln!("node 3 declared down {detected_after:?} after the kill");
        let retries_before = retries();
        let after_detection = count();
        wait_for(WAIT, "more requests after the detection", || {
            match count() {
                n if n >= after_detection + 80 => Ok(()),
                n => Err(format!("{n} so far")),
            }
        });
        stop.store(true, Ordering::Relaxed);
        assert!(
            detected_after < Duration::from_secs(8),
            "node 3 declared down only {detected_after:?} after the kill"
        );
        assert_eq!(
            retries(),
            retries_before,
            "a request was still tried on node 3 after gossip declared it down"
        );
        killed_at
    });
    let outcomes = outcomes.into_inner().unwrap();
    let failed_after_kill: Vec<_> = outcomes
        .iter()
        .filter(|(started, ok)| !ok && *started >= killed_at)
        .collect();
    assert!(
        failed_after_kill.is_empty(),
        "{} requests that started after the kill failed",
        failed_after_kill.len()
    );
    let in_flight_failures = outcomes.iter().filter(|(_, ok)| !ok).count();
    assert!(
        in_flight_failures <= 8,
        "{in_flight_failures} failed in all"
    );
}
