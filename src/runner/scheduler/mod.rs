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
use crate::metrics::names;
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

/// Plans at most this often: a plan walks every model, and placement inputs may change
/// many times a second (a burst of model creations). Changes in between are coalesced into
/// the next plan.
const REPLAN_EVERY: Duration = Duration::from_millis(50);

/// On the leader: plan when what placement depends on changed, that is the placement
/// revision (models to run, nodes' GPUs, slots; see `state::PlacementInputs`) or the set
/// of usable members (checked every second, to notice lost nodes), and on becoming leader.
/// Other writes, however many, plan nothing.
pub async fn run(cluster: Cluster, node_lost_after: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut placement = cluster.replica().subscribe_placement();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut raft = cluster.watch();
    // When this node last became leader: nobody is lost until we have led this long.
    let mut leader_since: Option<Instant> = None;
    let mut last_plan: Option<Instant> = None;
    // The placement revision and usable members the last committed (or empty) plan saw.
    let mut planned_for: Option<(u64, BTreeSet<u64>)> = None;
    let mut leading = false;
    loop {
        let raft_only = tokio::select! {
            _ = placement.changed() => false,
            _ = tick.tick() => false,
            _ = raft.changed() => true,
            _ = shutdown.changed() => return,
        };
        // Raft's metrics change with every acknowledgement under load; of them only a change
        // of leadership matters here (lost members are looked for every tick).
        if raft_only && cluster.is_leader() == leading {
            continue;
        }
        leading = cluster.is_leader();
        if !leading {
            leader_since = None;
            planned_for = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let usable = usable_nodes(&cluster, since, node_lost_after);
        if planned_for.as_ref() == Some(&(*placement.borrow(), usable.clone())) {
            continue;
        }
        if let Some(at) = last_plan {
            tokio::select! {
                _ = tokio::time::sleep_until(at + REPLAN_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
        // Read before the state: a change landing in between ticks the watch again.
        let revision = *placement.borrow_and_update();
        last_plan = Some(Instant::now());
        let planning = Instant::now();
        let planned = cluster.replica().read(|state| plan(state, &usable));
        ::metrics::counter!(names::SCHEDULER_PLANS).increment(1);
        ::metrics::histogram!(names::SCHEDULER_PLAN_DURATION).record(planning.elapsed());
        if planned.is_empty() {
            planned_for = Some((revision, usable));
            continue;
        }
        log_changes(&planned);
        match cluster.propose_system(Command::Schedule(planned)).await {
            // Its own apply changes the slots, so the next plan checks what it wrote.
            Ok(_) => planned_for = Some((revision, usable)),
            Err(e) => {
                planned_for = None;
                tracing::warn!(error = %e, "could not commit placement; will retry");
            }
        }
    }
}

fn log_changes(planned: &[SlotChange]) {
    for change in planned {
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
mod tests;
