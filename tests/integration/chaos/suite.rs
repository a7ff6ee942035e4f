//! The chaos suite: five nodes in a lab of network namespaces, writers and readers on every
//! node, and faults one after another — a `kill -9` of the leader every other time, and in
//! between each of the partitions, losses and pauses of [`ROTATION`] in turn. At the end the
//! system token changes while two nodes are cut off, the cut heals, and then:
//!
//! - every key's history is linearizable and no acknowledged write is lost;
//! - every node's runner holds the last token (the settings it applied are the leader's);
//! - the one model never ran on two nodes at once.
//!
//! CI runs [`a_short_run_of_every_fault_keeps_every_promise`] (about two minutes of faults);
//! `scripts/chaos.sh` runs [`the_full_run`] (about twenty) and writes `docs/reliability.md`.
//! Both take `HELIX_CHAOS_SECONDS`, `HELIX_CHAOS_SEED`, and `HELIX_CHAOS_REPORT` (where the
//! report goes; the history goes beside it as JSON lines).

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::faults::{inject, Fault, Injected, ROTATION};
use super::linearizability::check;
use super::overlap::OverlapWatch;
use super::report::Report;
use super::stalls::Stalls;
use super::workload::{Workload, WorkloadSpec};
use crate::common::{hf_token, model_json, wait_for, Cluster, NodeSpec, CONFIG, SETTINGS, WAIT};

/// The model whose vLLM processes are watched: it must run on one node at a time.
const WATCHED_MODEL: &str = "chaos-runs-once";

/// One run's length and where its results go.
struct RunSpec {
    faults_for: Duration,
    seed: u64,
    report: Option<PathBuf>,
}

impl RunSpec {
    fn from_env(default_seconds: u64) -> RunSpec {
        let seconds = std::env::var("HELIX_CHAOS_SECONDS")
            .ok()
            .map(|s| {
                s.parse()
                    .expect("HELIX_CHAOS_SECONDS is a number of seconds")
            })
            .unwrap_or(default_seconds);
        let seed = std::env::var("HELIX_CHAOS_SEED")
            .ok()
            .map(|s| s.parse().expect("HELIX_CHAOS_SEED is a number"))
            .unwrap_or_else(|| rand::thread_rng().gen());
        RunSpec {
            faults_for: Duration::from_secs(seconds),
            seed,
            report: std::env::var_os("HELIX_CHAOS_REPORT").map(PathBuf::from),
        }
    }
}

#[test]
fn a_short_run_of_every_fault_keeps_every_promise() {
    run(RunSpec::from_env(100));
}

#[test]
#[ignore = "about twenty minutes: scripts/chaos.sh runs it"]
fn the_full_run() {
    run(RunSpec::from_env(20 * 60));
}

fn run(spec: RunSpec) {
    eprintln!(
        "chaos: seed {} (HELIX_CHAOS_SEED repeats the fault schedule), faults for {:?}",
        spec.seed, spec.faults_for
    );
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut builder = Cluster::builder().in_lab();
    for _ in 0..5 {
        builder = builder.node(NodeSpec::gpus("80GB"));
    }
    let mut c = builder.start();
    c.create_model(1, &model_json(WATCHED_MODEL, "40GB", &[]));
    let slot = c.wait_running(1, WATCHED_MODEL);
    let watch = OverlapWatch::start(
        c.root().to_path_buf(),
        slot["id"].as_str().expect("a slot id").to_string(),
    );

    let ca = std::fs::read(c.node(1).data_dir.join("ca.pem")).expect("the cluster CA");
    let workload = Workload::start(
        c.nodes.iter().map(|n| n.api_addr.clone()).collect(),
        c.admin_key.clone(),
        WorkloadSpec {
            tls_ca: Some(ca),
            ..WorkloadSpec::default()
        },
    );
    // Instants of the faults on the history's clock.
    let (base, base_on_clock) = (Instant::now(), workload.now());
    let on_clock = |t: Instant| base_on_clock + (t - base);

    let started = Instant::now();
    let mut faults: Vec<Injected> = Vec::new();
    let mut rotation = ROTATION.iter().copied().cycle();
    let mut tokens_set = 0;
    while started.elapsed() < spec.faults_for {
        let fault = if faults.len().is_multiple_of(2) {
            Fault::KillLeader
        } else {
            rotation.next().expect("a cycle never ends")
        };
        let injected = inject(&mut c, fault, &mut rng);
        eprintln!(
            "chaos: {:>4} s  {} ({}): healed after {} ms, one leader {} ms later; {} writes acknowledged",
            started.elapsed().as_secs(),
            fault.name(),
            injected.detail,
            (injected.healed - injected.started).as_millis(),
            (injected.recovered - injected.healed).as_millis(),
            workload.acked_writes(),
        );
        faults.push(injected);
        // Now and then the token changes between faults: the runners must follow it.
        if faults.len() % 7 == 3 {
            let k = rng.gen_range(1..=c.nodes.len());
            tokens_set += 1;
            let _ = c.client(k).try_send(
                "PUT",
                SETTINGS,
                Some((
                    "application/json",
                    hf_token(&format!("hf_chaos_{tokens_set}"))
                        .to_string()
                        .as_bytes(),
                )),
            );
        }
        thread::sleep(Duration::from_millis(rng.gen_range(200..800)));
    }

    // The last token is set while two nodes cannot hear it.
    let (minority, majority) = ([1, 2], [3, 4, 5]);
    c.partition(&minority, &majority);
    let leader = c.wait_leader(&majority);
    let settings = wait_for(WAIT, "the last token is set through the majority", || {
        let r = c
            .client(leader)
            .try_send(
                "PUT",
                SETTINGS,
                Some((
                    "application/json",
                    hf_token("hf_chaos_last").to_string().as_bytes(),
                )),
            )
            .map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(format!("status {}: {}", r.status, r.text()))
        }
    });
    c.heal();
    let healed = Instant::now();
    c.wait_leader(&[1, 2, 3, 4, 5]);
    let converged = token_converged(&c, &settings["updated"]);
    let token_after = converged - healed;

    let history = workload.finish(WAIT);
    let overlaps = watch.stop();
    let verdict = check(&history);
    let stalls = Stalls::logged(&c);
    let report = Report {
        seed: spec.seed,
        faults_for: started.elapsed(),
        nodes: c.nodes.len(),
        faults: &faults,
        on_clock: &on_clock,
        history: &history,
        verdict: &verdict,
        overlaps: &overlaps,
        token_converged_after: token_after,
        stalls: &stalls,
    };
    let text = report.markdown();
    eprintln!("{text}");
    if let Some(path) = &spec.report {
        std::fs::write(path, &text).expect("write the chaos report");
        history
            .write_jsonl(&path.with_extension("history.jsonl"))
            .expect("write the history");
    }

    assert_eq!(
        verdict.lost_acks(),
        0,
        "acknowledged writes were lost:\n{verdict}"
    );
    assert!(
        verdict.linearizable(),
        "a history is not linearizable:\n{verdict}"
    );
    assert_eq!(
        overlaps.stretches, 0,
        "{WATCHED_MODEL} ran on two nodes at once ({overlaps:?})"
    );
}

/// Waits until every node applied the last token write (the `updated` stamp the leader
/// answered with) and its runner can open the token; returns when that was.
fn token_converged(c: &Cluster, updated: &serde_json::Value) -> Instant {
    for k in 1..=c.nodes.len() {
        let client = c.client(k);
        wait_for(
            WAIT,
            &format!("node{k}'s runner holds the last token"),
            || {
                let applied = client.poll_json(&format!("{SETTINGS}?stale=true"))?;
                let runner = client.poll_json(CONFIG)?;
                let seen = (&applied["updated"], &runner["huggingface_token_set"]);
                if seen == (updated, &json!(true)) {
                    Ok(())
                } else {
                    Err(format!("settings {applied}, runner {runner}"))
                }
            },
        );
    }
    Instant::now()
}
