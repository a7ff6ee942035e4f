//! Placement, decided once by the leader and committed.
//!
//! Every enabled prewarm model gets one slot per replica, each on GPUs no other replica of
//! it uses, and on a node without one when there is room. The leader places them on nodes
//! and GPUs,
//! accounting memory from the committed assignments themselves (never from what processes
//! report), and proposes the decision as a `Schedule` command. A placement only changes when
//! its model changes or goes away, or its node is lost or gone: a change of leader moves
//! nothing, because a new leader starts from the same committed assignments and gives every
//! node a full `node_lost_after` before it calls it lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::state::{replica_slot_id, Command, Model, Placement, SlotChange, State};

/// GPU counts vLLM can split a model across (tensor parallelism), smallest first.
const TENSOR_PARALLEL_SIZES: &[usize] = &[2, 4, 8];

/// The changes that make `state` match the desired set of slots.
/// `usable` are the nodes that may run slots now (members, not lost).
pub fn plan(state: &State, usable: &BTreeSet<u64>) -> Vec<SlotChange> {
    let mut changes = Vec::new();
    let wanted: BTreeMap<String, &Model> = state
        .models
        .values()
        .filter(|m| m.enabled && m.prewarm)
        .flat_map(|m| (0..m.replicas).map(move |r| (replica_slot_id(&m.id, r), m)))
        .collect();

    // Slots whose model is gone, disabled or no longer prewarm.
    for slot in state.slots.values() {
        if !wanted.contains_key(&slot.id) {
            changes.push(SlotChange::Remove {
                slot_id: slot.id.clone(),
            });
        }
    }

    // Memory already committed per (node, gpu), from slots that keep their placement.
    let mut used: BTreeMap<(u64, u32), u64> = BTreeMap::new();
    // Where each model's replicas run, so the next one goes elsewhere.
    let mut spread: BTreeMap<&str, Spread> = BTreeMap::new();
    let mut to_place: Vec<(&String, &Model, u64)> = Vec::new();
    for (slot_id, model) in &wanted {
        let slot = state.slots.get(slot_id);
        let keep = slot
            .and_then(|s| s.placement.as_ref())
            .filter(|p| usable.contains(&p.node_id) && placement_still_fits(state, p));
        match keep {
            Some(p) => {
                let share = model.memory / p.gpu_indices.len().max(1) as u64;
                for gpu in &p.gpu_indices {
                    *used.entry((p.node_id, *gpu)).or_default() += share;
                }
                spread.entry(&model.id).or_default().add(p);
            }
            None => to_place.push((slot_id, model, slot.map(|s| s.generation).unwrap_or(0))),
        }
    }

    // Biggest first: they are the hardest to fit.
    to_place.sort_by(|a, b| b.1.memory.cmp(&a.1.memory).then(a.0.cmp(b.0)));
    for (slot_id, model, generation) in to_place {
        let current = state.slots.get(slot_id);
        let replicas = spread.entry(&model.id).or_default();
        match choose(state, usable, &used, replicas, model.memory) {
            Ok(placement) => {
                let share = model.memory / placement.gpu_indices.len() as u64;
                for gpu in &placement.gpu_indices {
                    *used.entry((placement.node_id, *gpu)).or_default() += share;
                }
                replicas.add(&placement);
                changes.push(SlotChange::Place {
                    slot_id: slot_id.clone(),
                    model_id: model.id.clone(),
                    expect_generation: generation,
                    placement,
                });
            }
            Err(reason) => {
                let unchanged = current.is_some_and(|s| {
                    s.placement.is_none() && s.pending_reason.as_deref() == Some(reason.as_str())
                });
                if !unchanged {
                    changes.push(SlotChange::Pending {
                        slot_id: slot_id.clone(),
                        model_id: model.id.clone(),
                        expect_generation: generation,
                        reason,
                    });
                }
            }
        }
    }
    changes
}

/// The node still has the GPUs the placement names.
fn placement_still_fits(state: &State, p: &Placement) -> bool {
    state.nodes.get(&p.node_id).is_some_and(|n| {
        p.gpu_indices
            .iter()
            .all(|i| n.gpus.iter().any(|g| g.index == *i))
    })
}

/// The GPUs and nodes a model's replicas already hold.
#[derive(Default)]
struct Spread {
    gpus: BTreeSet<(u64, u32)>,
    nodes: BTreeSet<u64>,
}

impl Spread {
    fn add(&mut self, placement: &Placement) {
        self.nodes.insert(placement.node_id);
        self.gpus.extend(
            placement
                .gpu_indices
                .iter()
                .map(|g| (placement.node_id, *g)),
        );
    }
}

/// A placement on GPUs no other replica of the model holds: on a node without a replica
/// when one has room, else on any.
fn choose(
    state: &State,
    usable: &BTreeSet<u64>,
    used: &BTreeMap<(u64, u32), u64>,
    replicas: &Spread,
    memory: u64,
) -> Result<Placement, String> {
    let elsewhere: BTreeSet<u64> = usable.difference(&replicas.nodes).copied().collect();
    if !replicas.nodes.is_empty() {
        if let Ok(placement) = choose_on(state, &elsewhere, used, &replicas.gpus, memory) {
            return Ok(placement);
        }
    }
    choose_on(state, usable, used, &replicas.gpus, memory)
}

/// One GPU when the model fits on one (the fullest GPU that still fits, to keep big holes
/// for big models), else the fewest GPUs of one node that fit it with tensor parallelism.
/// `taken` GPUs count as full.
fn choose_on(
    state: &State,
    usable: &BTreeSet<u64>,
    used: &BTreeMap<(u64, u32), u64>,
    taken: &BTreeSet<(u64, u32)>,
    memory: u64,
) -> Result<Placement, String> {
    let free = |node: u64, gpu: u32, total: u64| {
        total.saturating_sub(used.get(&(node, gpu)).copied().unwrap_or(0))
    };
    let open = |node: u64, gpu: u32| !taken.contains(&(node, gpu));
    let nodes: Vec<_> = state
        .nodes
        .values()
        .filter(|n| usable.contains(&n.id) && !n.gpus.is_empty())
        .collect();

    let single = nodes
        .iter()
        .flat_map(|n| {
            n.gpus
                .iter()
                .filter(move |g| open(n.id, g.index))
                .map(move |g| (n.id, g.index, free(n.id, g.index, g.memory)))
        })
        .filter(|(_, _, f)| *f >= memory)
        .min_by_key(|(node, gpu, f)| (*f, *node, *gpu));
    if let Some((node_id, gpu, _)) = single {
        return Ok(Placement {
            node_id,
            gpu_indices: vec![gpu],
        });
    }
    for &n in TENSOR_PARALLEL_SIZES {
        let share = memory.div_ceil(n as u64);
        for node in &nodes {
            let mut fitting: Vec<(u64, u32)> = node
                .gpus
                .iter()
                .filter(|g| open(node.id, g.index))
                .map(|g| (free(node.id, g.index, g.memory), g.index))
                .filter(|(f, _)| *f >= share)
                .collect();
            if fitting.len() >= n {
                fitting.sort_by_key(|(f, i)| (*f, *i));
                let mut gpu_indices: Vec<u32> = fitting[..n].iter().map(|(_, i)| *i).collect();
                gpu_indices.sort();
                return Ok(Placement {
                    node_id: node.id,
                    gpu_indices,
                });
            }
        }
    }
    let largest_node = nodes
        .iter()
        .map(|n| {
            n.gpus
                .iter()
                .map(|g| free(n.id, g.index, g.memory))
                .sum::<u64>()
        })
        .max();
    Err(match largest_node {
        None => format!(
            "needs {} on one node, and no node with GPUs is available",
            human(memory)
        ),
        Some(l) if l < memory => format!(
            "needs {} on one node, largest free is {}",
            human(memory),
            human(l)
        ),
        // Enough in total, but not on one GPU nor as equal shares on 2, 4 or 8 GPUs.
        Some(l) => format!(
            "needs {} on one node, largest free is {} but split so that neither one GPU nor \
             an equal share on 2, 4 or 8 GPUs holds it",
            human(memory),
            human(l)
        ),
    })
}

/// Decimal units, as users write them ("39 GB").
fn human(bytes: u64) -> String {
    const UNITS: &[(u64, &str)] = &[
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    for &(size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if (value - value.round()).abs() < 0.05 {
                format!("{} {unit}", value.round() as u64)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// Plans at most this often: a plan walks every model, and under a stream of writes the
/// state and the Raft metrics change thousands of times a second. Changes in between are
/// coalesced into the next plan.
const REPLAN_EVERY: Duration = Duration::from_millis(50);

/// On the leader: re-plan whenever the state changes, and every second to notice lost nodes.
pub async fn run(cluster: Cluster, node_lost_after: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut changes = cluster.replica().subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut raft = cluster.watch();
    // When this node last became leader: nobody is lost until we have led this long.
    let mut leader_since: Option<Instant> = None;
    let mut last_plan: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = changes.changed() => {}
            _ = tick.tick() => {}
            _ = raft.changed() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(at) = last_plan {
            tokio::select! {
                _ = tokio::time::sleep_until(at + REPLAN_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
        if !cluster.is_leader() {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let usable = usable_nodes(&cluster, since, node_lost_after);
        last_plan = Some(Instant::now());
        let planned = cluster.replica().read(|state| plan(state, &usable));
        if planned.is_empty() {
            continue;
        }
        for change in &planned {
            match change {
                SlotChange::Place {
                    slot_id, placement, ..
                } => tracing::info!(
                    slot = %slot_id, node = placement.node_id, gpus = ?placement.gpu_indices,
                    "placing slot"
                ),
                SlotChange::Pending {
                    slot_id, reason, ..
                } => {
                    tracing::info!(slot = %slot_id, reason = %reason, "slot is pending")
                }
                SlotChange::Remove { slot_id } => tracing::info!(slot = %slot_id, "removing slot"),
            }
        }
        let written = cluster.propose_system(Command::Schedule(planned)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not commit placement; will retry");
        }
    }
}

/// Members that answered the leader within `node_lost_after` (the leader itself always
/// counts). Before we have led for that long, every member counts.
fn usable_nodes(
    cluster: &Cluster,
    leader_since: Instant,
    node_lost_after: Duration,
) -> BTreeSet<u64> {
    let led_for = leader_since.elapsed();
    cluster
        .member_silence()
        .into_iter()
        .filter(|(_, silence)| {
            led_for < node_lost_after || silence.unwrap_or(led_for).min(led_for) < node_lost_after
        })
        .map(|(id, _)| id)
        .collect()
}

/// The node a slot of `model` would be placed on now, if any has room: where its token
/// would be resolved when the model is not running yet.
pub fn would_place(state: &State, model: &Model) -> Option<u64> {
    let all: BTreeSet<u64> = state.nodes.keys().copied().collect();
    let mut used: BTreeMap<(u64, u32), u64> = BTreeMap::new();
    for slot in state.slots.values() {
        let (Some(p), Some(m)) = (&slot.placement, state.models.get(&slot.model_id)) else {
            continue;
        };
        let share = m.memory / p.gpu_indices.len().max(1) as u64;
        for gpu in &p.gpu_indices {
            *used.entry((p.node_id, *gpu)).or_default() += share;
        }
    }
    choose(state, &all, &used, &Spread::default(), model.memory)
        .ok()
        .map(|p| p.node_id)
}

#[cfg(test)]
mod tests {
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
}
