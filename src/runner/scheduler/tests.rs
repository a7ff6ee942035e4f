//! Placement decisions, on states built by hand.

use super::*;
use crate::state::{Gpu, NodeRecord};

fn node(id: u64, gpus: &[u64]) -> NodeRecord {
    NodeRecord {
        id,
        api_addr: String::new(),
        peer_addr: String::new(),
        joined_ms: 0,
        hf_token_in_env: false,
        gpus: gpus
            .iter()
            .enumerate()
            .map(|(i, m)| Gpu {
                index: i as u32,
                name: "declared".into(),
                uuid: None,
                memory: *m,
            })
            .collect(),
    }
}

fn model(id: &str, memory: u64) -> Model {
    let mut m = Model::new(id.into());
    m.memory = memory;
    m.prewarm = true;
    m
}

const GB: u64 = 1_000_000_000;

fn state(nodes: Vec<NodeRecord>, models: Vec<Model>) -> State {
    let mut s = State::default();
    for n in nodes {
        s.nodes.insert(n.id, n);
    }
    for m in models {
        s.models.insert(m.id.clone(), m);
    }
    s
}

fn apply_all(s: &mut State, changes: Vec<SlotChange>) {
    s.apply(&crate::state::Proposal {
        actor: None,
        at_ms: 1,
        command: Command::Schedule(changes),
    })
    .0
    .unwrap();
}

#[test]
fn fits_on_one_gpu_then_is_stable() {
    let mut s = state(
        vec![node(1, &[80 * GB, 80 * GB])],
        vec![model("a", 39 * GB)],
    );
    let usable = BTreeSet::from([1]);
    let changes = plan(&s, &usable);
    assert!(
        matches!(&changes[..], [SlotChange::Place { placement, .. }] if placement.gpu_indices.len() == 1)
    );
    apply_all(&mut s, changes);
    assert!(plan(&s, &usable).is_empty(), "a placed slot stays put");
}

#[test]
fn too_big_stays_pending_with_a_reason() {
    let s = state(vec![node(1, &[24 * GB])], vec![model("big", 39 * GB)]);
    let changes = plan(&s, &BTreeSet::from([1]));
    match &changes[..] {
        [SlotChange::Pending { reason, .. }] => {
            assert_eq!(reason, "needs 39 GB on one node, largest free is 24 GB")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn needs_two_gpus_gets_tensor_parallelism() {
    let s = state(
        vec![node(1, &[40 * GB, 40 * GB])],
        vec![model("tp", 60 * GB)],
    );
    match &plan(&s, &BTreeSet::from([1]))[..] {
        [SlotChange::Place { placement, .. }] => assert_eq!(placement.gpu_indices, vec![0, 1]),
        other => panic!("unexpected {other:?}"),
    }
}

fn placements(s: &State) -> BTreeMap<String, (u64, Vec<u32>)> {
    s.slots
        .values()
        .filter_map(|sl| {
            let p = sl.placement.as_ref()?;
            Some((sl.id.clone(), (p.node_id, p.gpu_indices.clone())))
        })
        .collect()
}

/// Replicas go to nodes without one while there is room, then to other GPUs of nodes
/// that have one; never two on one GPU, even when memory would allow it.
#[test]
fn replicas_spread_over_nodes_then_gpus() {
    let mut m = model("r", 10 * GB);
    m.replicas = 3;
    let mut s = state(
        vec![node(1, &[80 * GB, 80 * GB]), node(2, &[80 * GB])],
        vec![m],
    );
    let usable = BTreeSet::from([1, 2]);
    let changes = plan(&s, &usable);
    apply_all(&mut s, changes);
    let placed = placements(&s);
    assert_eq!(placed.len(), 3, "{placed:?}");
    let gpus: BTreeSet<(u64, u32)> = placed.values().map(|(n, g)| (*n, g[0])).collect();
    assert_eq!(gpus.len(), 3, "each replica on its own GPU: {placed:?}");
    let nodes: BTreeSet<u64> = placed.values().map(|(n, _)| *n).collect();
    assert_eq!(nodes, BTreeSet::from([1, 2]));
    assert!(placed.contains_key(&replica_slot_id("r", 0)));
    assert!(placed.contains_key(&replica_slot_id("r", 2)));

    // One GPU fewer than replicas: the last one waits, with a reason.
    let mut more = s.models["r"].clone();
    more.replicas = 4;
    s.models.insert("r".into(), more);
    match &plan(&s, &usable)[..] {
        [SlotChange::Pending { slot_id, .. }] => assert_eq!(*slot_id, replica_slot_id("r", 3)),
        other => panic!("unexpected {other:?}"),
    }
}

/// Scaling down removes the last replicas and leaves the others where they run.
#[test]
fn scaling_down_keeps_the_replicas_that_stay() {
    let mut m = model("r", 10 * GB);
    m.replicas = 3;
    let mut s = state(vec![node(1, &[80 * GB, 80 * GB, 80 * GB])], vec![m]);
    let usable = BTreeSet::from([1]);
    let changes = plan(&s, &usable);
    apply_all(&mut s, changes);
    let before = placements(&s);
    let mut fewer = s.models["r"].clone();
    fewer.replicas = 1;
    s.models.insert("r".into(), fewer);
    let changes = plan(&s, &usable);
    let removed: BTreeSet<String> = changes
        .iter()
        .map(|c| match c {
            SlotChange::Remove { slot_id } => slot_id.clone(),
            other => panic!("only removals: {other:?}"),
        })
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from([replica_slot_id("r", 1), replica_slot_id("r", 2)])
    );
    apply_all(&mut s, changes);
    assert_eq!(
        placements(&s).get(&replica_slot_id("r", 0)),
        before.get(&replica_slot_id("r", 0))
    );
}

#[test]
fn memory_is_accounted_from_assignments() {
    let mut s = state(
        vec![node(1, &[80 * GB]), node(2, &[80 * GB])],
        vec![model("a", 50 * GB), model("b", 50 * GB)],
    );
    let usable = BTreeSet::from([1, 2]);
    let changes = plan(&s, &usable);
    apply_all(&mut s, changes);
    let nodes: BTreeSet<u64> = s
        .slots
        .values()
        .map(|sl| sl.placement.as_ref().unwrap().node_id)
        .collect();
    assert_eq!(nodes, BTreeSet::from([1, 2]));
}

#[test]
fn lost_node_loses_its_slot_and_deleted_model_its_slot() {
    let mut s = state(
        vec![node(1, &[80 * GB]), node(2, &[80 * GB])],
        vec![model("a", 10 * GB)],
    );
    let changes = plan(&s, &BTreeSet::from([2]));
    apply_all(&mut s, changes);
    assert_eq!(
        s.slots
            .values()
            .next()
            .unwrap()
            .placement
            .as_ref()
            .unwrap()
            .node_id,
        2
    );
    let changes = plan(&s, &BTreeSet::from([1]));
    apply_all(&mut s, changes);
    let slot = s.slots.values().next().unwrap();
    assert_eq!(slot.placement.as_ref().unwrap().node_id, 1);
    assert_eq!(slot.generation, 2);
    s.models.clear();
    let changes = plan(&s, &BTreeSet::from([1]));
    apply_all(&mut s, changes);
    assert!(s.slots.is_empty());
}

#[test]
fn stale_decisions_are_ignored() {
    let mut s = state(vec![node(1, &[80 * GB])], vec![model("a", 10 * GB)]);
    let first = plan(&s, &BTreeSet::from([1]));
    apply_all(&mut s, first.clone());
    apply_all(&mut s, first);
    assert_eq!(s.slots.values().next().unwrap().generation, 1);
}
