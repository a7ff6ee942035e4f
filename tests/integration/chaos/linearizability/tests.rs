use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::chaos::history::OpKind;

const MS: Duration = Duration::from_millis(1);

fn op(process: usize, kind: OpKind, at: (u64, u64), outcome: Outcome) -> Op {
    Op {
        process,
        node: 0,
        key: "k".into(),
        kind,
        invoke: MS * at.0 as u32,
        complete: MS * at.1 as u32,
        outcome,
    }
}

fn write(process: usize, value: &str, at: (u64, u64), outcome: Outcome) -> Op {
    let value = value.to_string();
    op(process, OpKind::Write { value }, at, outcome)
}

fn acked(process: usize, value: &str, at: (u64, u64)) -> Op {
    write(process, value, at, Outcome::Ok(None))
}

fn unknown(process: usize, value: &str, at: (u64, u64)) -> Op {
    write(process, value, at, Outcome::Unknown("timeout".into()))
}

fn read(process: usize, seen: &str, at: (u64, u64)) -> Op {
    let outcome = Outcome::Ok(Some(seen.to_string()));
    op(process, OpKind::Read { stale: false }, at, outcome)
}

fn verdict(ops: Vec<Op>) -> Verdict {
    check(&History::new(ops))
}

fn violation(v: &Verdict) -> &str {
    match &v.keys[0].result {
        KeyResult::Violation(why) => why,
        other => panic!("expected a violation, got {other:?}\n{v}"),
    }
}

#[test]
fn a_sequential_history_is_linearizable() {
    let v = verdict(vec![
        read(0, "init", (0, 1)),
        acked(0, "a", (2, 3)),
        read(1, "a", (4, 5)),
        acked(1, "b", (6, 7)),
        read(0, "b", (8, 9)),
    ]);
    assert!(v.linearizable() && v.lost_acks() == 0, "{v}");
    assert_eq!(v.keys[0].ops_checked, 5);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in ["init", "a"] {
        let v = verdict(vec![acked(0, "a", (0, 10)), read(1, seen, (2, 5))]);
        assert!(v.linearizable(), "{seen}: {v}");
    }
}

/// The search's answer alone, without the direct checks.
fn searched(ops: &[Op]) -> Search {
    let refs: Vec<&Op> = ops.iter().collect();
    let (search_ops, _) = KeyOps::new(&refs).to_search();
    search(&search_ops, DEFAULT_SEARCH_STEPS).0
}

#[test]
fn a_value_read_after_it_was_overwritten_is_a_violation() {
    let ops = vec![
        acked(0, "a", (0, 1)),
        acked(0, "b", (2, 3)),
        read(1, "a", (4, 5)),
    ];
    let v = verdict(ops.clone());
    let why = violation(&v);
    assert!(
        why.contains("overwritten before the read began by p0 write \"b\""),
        "{why}"
    );
    // The search on its own finds no order either.
    assert!(matches!(searched(&ops), Search::Stuck { .. }));
}

#[test]
fn a_value_nobody_wrote_or_a_failed_write_wrote_is_a_violation() {
    let v = verdict(vec![acked(0, "a", (0, 1)), read(1, "z", (2, 3))]);
    assert!(violation(&v).ends_with("a value no write wrote"), "{v}");
    let refused = write(0, "a", (0, 1), Outcome::Fail("400: bad".into()));
    let v = verdict(vec![refused, read(1, "a", (2, 3))]);
    assert!(violation(&v).contains("the value of a failed write"), "{v}");
}

#[test]
fn a_read_cannot_see_a_write_invoked_after_it_completed() {
    let v = verdict(vec![read(1, "a", (0, 1)), unknown(0, "a", (2, 3))]);
    assert!(violation(&v).contains("written only later"), "{v}");
}

#[test]
fn an_unknown_write_may_take_effect_late_or_never() {
    // Seen long after its request timed out.
    let seen_later = verdict(vec![
        unknown(0, "a", (0, 5)),
        read(1, "init", (6, 7)),
        read(1, "a", (8, 9)),
        read(1, "a", (10, 11)),
    ]);
    assert!(seen_later.linearizable(), "{seen_later}");
    let never_seen = verdict(vec![
        unknown(0, "a", (0, 5)),
        acked(0, "b", (6, 7)),
        read(1, "b", (8, 9)),
    ]);
    assert!(never_seen.linearizable(), "{never_seen}");
    // Left out of the search: nothing saw it.
    assert_eq!(never_seen.keys[0].ops_checked, 2);
}

#[test]
fn two_reads_cannot_flip_back_between_concurrent_writes() {
    // Either order of the writes is fine, but not a then b then a again: only the search
    // sees that, every read on its own is possible.
    let v = verdict(vec![
        acked(0, "a", (0, 20)),
        acked(1, "b", (0, 20)),
        read(2, "a", (1, 2)),
        read(2, "b", (3, 4)),
        read(2, "a", (5, 6)),
    ]);
    let why = violation(&v);
    assert!(
        why.starts_with("no order of the 5 operations fits"),
        "{why}"
    );
    assert!(
        why.contains("p2 read on k via node 0, 0.005-0.006 s: saw \"a\""),
        "{why}"
    );
}

#[test]
fn an_acknowledged_write_the_last_read_misses_is_lost_and_counted() {
    let v = verdict(vec![
        acked(0, "a", (0, 1)),
        acked(0, "b", (2, 3)),
        acked(1, "c", (4, 5)),
        read(2, "a", (6, 7)),
    ]);
    violation(&v);
    let lost: Vec<_> = v.lost.iter().map(|l| l.write.written().unwrap()).collect();
    assert_eq!(lost, ["b", "c"], "{v}");
    assert!(v.to_string().contains("acknowledged writes lost: 2"), "{v}");
    // A write still in flight when the read began may come after it.
    let v = verdict(vec![
        acked(0, "a", (0, 1)),
        acked(0, "b", (2, 9)),
        read(2, "a", (6, 7)),
    ]);
    assert!(v.linearizable() && v.lost_acks() == 0, "{v}");
}

#[test]
fn a_gone_model_loses_every_write_before_the_read() {
    let gone = op(2, OpKind::Read { stale: false }, (6, 7), Outcome::Ok(None));
    let v = verdict(vec![acked(0, "a", (0, 1)), gone]);
    assert!(violation(&v).ends_with("the model is gone"), "{v}");
    assert_eq!(v.lost_acks(), 1);
}

#[test]
fn failed_ops_and_stale_reads_are_not_checked() {
    let stale = op(
        1,
        OpKind::Read { stale: true },
        (4, 5),
        Outcome::Ok(Some("init".into())),
    );
    let failed_read = op(
        1,
        OpKind::Read { stale: false },
        (4, 5),
        Outcome::Fail("503".into()),
    );
    let refused = write(0, "b", (2, 3), Outcome::Fail("409".into()));
    let v = verdict(vec![acked(0, "a", (0, 1)), refused, stale, failed_read]);
    assert!(v.linearizable(), "{v}");
    assert_eq!(v.keys[0].ops_checked, 1);
}

/// A register's history: `clients` clients, each running `per_client` operations one
/// after another, every operation taking effect at a random point of its interval (or,
/// for a failed write and half of the unknown ones, never).
fn random_history(seed: u64, clients: usize, per_client: usize) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut planned = Vec::new();
    for process in 0..clients {
        let mut t = rng.gen_range(0..3);
        for i in 0..per_client {
            let invoke = t + rng.gen_range(0..3);
            let effect = invoke + rng.gen_range(0..6);
            let complete = effect + rng.gen_range(1..6);
            t = complete;
            let (kind, outcome, takes_effect) = if rng.gen_bool(0.5) {
                let value = format!("p{process}-w{i}");
                let (outcome, takes_effect) = match rng.gen_range(0..20) {
                    0 => (Outcome::Fail("400".into()), false),
                    1 => (Outcome::Unknown("timeout".into()), rng.gen_bool(0.5)),
                    _ => (Outcome::Ok(None), true),
                };
                (OpKind::Write { value }, outcome, takes_effect)
            } else {
                (OpKind::Read { stale: false }, Outcome::Ok(None), true)
            };
            let op = op(process, kind, (invoke, complete), outcome);
            planned.push((effect, takes_effect, op));
        }
    }
    planned.sort_by_key(|(effect, _, op)| (*effect, op.process));
    let mut register = INITIAL_VALUE.to_string();
    for (_, takes_effect, op) in &mut planned {
        match (&op.kind, *takes_effect) {
            (OpKind::Write { value }, true) => register = value.clone(),
            (OpKind::Read { .. }, _) => op.outcome = Outcome::Ok(Some(register.clone())),
            _ => {}
        }
    }
    planned.into_iter().map(|(_, _, op)| op).collect()
}

#[test]
fn random_register_histories_are_linearizable_in_few_steps() {
    for seed in 0..5 {
        let ops = random_history(seed, 4, 2500);
        let v = verdict(ops);
        let key = &v.keys[0];
        assert!(v.linearizable() && v.lost_acks() == 0, "seed {seed}: {v}");
        assert!(key.ops_checked > 9000, "seed {seed}: {v}");
        // Fast: a handful of steps per operation, nowhere near the limit.
        assert!(key.steps < 10 * key.ops_checked as u64, "seed {seed}: {v}");
    }
}

#[test]
fn a_stale_read_slipped_into_a_random_history_is_caught() {
    let mut ops = random_history(7, 4, 2500);
    let first_acked = ops
        .iter()
        .filter(|op| op.is_write() && op.is_ok())
        .min_by_key(|op| op.complete)
        .unwrap()
        .clone();
    let last_read = ops
        .iter_mut()
        .filter(|op| op.is_linearizable_read())
        .max_by_key(|op| op.invoke)
        .unwrap();
    let old = first_acked.written().unwrap().to_string();
    last_read.outcome = Outcome::Ok(Some(old.clone()));
    let stale = last_read.clone();
    let v = verdict(ops.clone());
    let why = violation(&v);
    assert!(why.starts_with(&stale.to_string()), "{why}");
    assert!(v.lost_acks() > 0, "{v}");
    // The search on its own finds it too.
    assert!(matches!(searched(&ops), Search::Stuck { .. }));
}

#[test]
fn a_search_past_its_limit_is_unknown_not_a_pass() {
    let v = check_with_limit(&History::new(random_history(1, 4, 200)), 50);
    assert!(
        matches!(&v.keys[0].result, KeyResult::Unknown(why) if why == "search limit of 50 steps"),
        "{v}"
    );
    assert!(!v.linearizable());
    assert_eq!(v.unknowns(), 1);
}

#[test]
fn keys_are_checked_apart() {
    let mut other = acked(0, "a", (0, 1));
    other.key = "other".into();
    let v = verdict(vec![other, read(1, "init", (2, 3))]);
    assert!(v.linearizable(), "{v}");
    let keys: Vec<_> = v.keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["k", "other"]);
    // Nothing read "other" back: whether its write survived is unknown, and said so.
    assert_eq!((v.keys[0].final_read, v.keys[1].final_read), (true, false));
    assert_eq!(v.keys_without_final_read(), 1);
    assert!(v.to_string().contains("other: linearizable (1 operations, 1 steps; no read after the last acknowledged write: lost writes unchecked)"), "{v}");
}

#[test]
fn only_a_read_begun_after_the_last_acknowledgement_is_final() {
    let during = verdict(vec![acked(0, "a", (0, 5)), read(1, "a", (4, 6))]);
    assert!(
        during.linearizable() && !during.keys[0].final_read,
        "{during}"
    );
    let after = verdict(vec![acked(0, "a", (0, 5)), read(1, "a", (6, 7))]);
    assert!(after.linearizable() && after.keys[0].final_read, "{after}");
}
