//! What the scheduler's plan reads from the state, record by record, so that only an apply
//! that changed it asks for a new plan: a model's description, a user, a key or a slot's
//! health report moves no placement, and with 10,000 models a plan walks every one.
//!
//! The plan (`runner::scheduler::plan`) reads the models it must run (enabled and prewarm:
//! their replicas and memory), every node's GPUs, and every slot's placement, pending
//! reason and generation. Nothing else; the other input, which members are usable, is the
//! scheduler's own to compare.

use std::collections::HashMap;

use super::nodes::Placement;
use super::{State, StateKey};

/// The part of one record the plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// A model to run (a model that is disabled or not prewarm is not an input at all).
    Model { replicas: u32, memory: u64 },
    /// A node's GPUs, as (index, memory).
    Node { gpus: Vec<(u32, u64)> },
    Slot {
        model_id: String,
        placement: Option<Placement>,
        pending_reason: Option<String>,
        generation: u64,
    },
}

/// The placement key of a record, for the records the plan may read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum InputKey {
    Model(String),
    Node(u64),
    Slot(String),
}

impl InputKey {
    fn of(key: &StateKey) -> Option<InputKey> {
        match key {
            StateKey::Model(id) => Some(InputKey::Model(id.clone())),
            StateKey::Node(id) => Some(InputKey::Node(*id)),
            StateKey::Slot(id) => Some(InputKey::Slot(id.clone())),
            _ => None,
        }
    }

    /// What the plan reads of this record now; `None` when it reads nothing of it.
    fn input(&self, state: &State) -> Option<Input> {
        match self {
            InputKey::Model(id) => {
                state
                    .models
                    .get(id)
                    .filter(|m| m.enabled && m.prewarm)
                    .map(|m| Input::Model {
                        replicas: m.replicas,
                        memory: m.memory,
                    })
            }
            InputKey::Node(id) => state.nodes.get(id).map(|n| Input::Node {
                gpus: n.gpus.iter().map(|g| (g.index, g.memory)).collect(),
            }),
            InputKey::Slot(id) => state.slots.get(id).map(|s| Input::Slot {
                model_id: s.model_id.clone(),
                placement: s.placement.clone(),
                pending_reason: s.pending_reason.clone(),
                generation: s.generation,
            }),
        }
    }
}

/// The plan's inputs as of the last apply, to tell which applies changed them.
#[derive(Debug, Default)]
pub struct PlacementInputs {
    inputs: HashMap<InputKey, Input>,
}

impl PlacementInputs {
    /// The inputs of the whole `state` (on open and after a snapshot is installed).
    pub fn of(state: &State) -> PlacementInputs {
        let keys = (state.models.keys().cloned().map(InputKey::Model))
            .chain(state.nodes.keys().copied().map(InputKey::Node))
            .chain(state.slots.keys().cloned().map(InputKey::Slot));
        let inputs = keys
            .filter_map(|key| key.input(state).map(|input| (key, input)))
            .collect();
        PlacementInputs { inputs }
    }

    /// Takes in the records an apply `touched` (in `state` as it is after it); true when
    /// what the plan reads changed.
    pub fn update(&mut self, state: &State, touched: &[StateKey]) -> bool {
        let mut changed = false;
        for key in touched.iter().filter_map(InputKey::of) {
            let now = key.input(state);
            if self.inputs.get(&key) == now.as_ref() {
                continue;
            }
            changed = true;
            match now {
                Some(input) => self.inputs.insert(key, input),
                None => self.inputs.remove(&key),
            };
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Gpu, Model, NodeRecord, Slot, SlotStatus};

    fn model(id: &str) -> Model {
        let mut model = Model::new(id.into());
        model.memory = 10_000_000_000;
        model.prewarm = true;
        model
    }

    fn state() -> State {
        let mut state = State::default();
        state.models.insert("a/m".into(), model("a/m"));
        state.nodes.insert(
            1,
            NodeRecord {
                id: 1,
                api_addr: "127.0.0.1:1".into(),
                peer_addr: "127.0.0.1:2".into(),
                joined_ms: 0,
                gpus: vec![Gpu {
                    index: 0,
                    name: "declared".into(),
                    uuid: None,
                    memory: 80_000_000_000,
                }],
                hf_token_in_env: false,
            },
        );
        state.slots.insert(
            "a/m".into(),
            Slot {
                id: "a/m".into(),
                model_id: "a/m".into(),
                placement: None,
                pending_reason: None,
                generation: 1,
                status: SlotStatus::default(),
            },
        );
        state
    }

    fn model_key() -> Vec<StateKey> {
        vec![StateKey::Model("a/m".into())]
    }

    #[test]
    fn a_description_a_user_or_a_slot_report_changes_no_input() {
        let mut state = state();
        let mut inputs = PlacementInputs::of(&state);
        state.models.get_mut("a/m").unwrap().description = "new words".into();
        state.slots.get_mut("a/m").unwrap().status.restarts = 3;
        let touched = vec![
            StateKey::Model("a/m".into()),
            StateKey::Slot("a/m".into()),
            StateKey::User("u".into()),
            StateKey::Clock,
        ];
        assert!(!inputs.update(&state, &touched));
    }

    #[test]
    fn replicas_memory_gpus_and_placements_are_inputs() {
        let mut state = state();
        let mut inputs = PlacementInputs::of(&state);
        state.models.get_mut("a/m").unwrap().replicas = 2;
        assert!(inputs.update(&state, &model_key()));
        assert!(!inputs.update(&state, &model_key()), "taken in once");

        state.nodes.get_mut(&1).unwrap().gpus.clear();
        assert!(inputs.update(&state, &[StateKey::Node(1)]));

        state.slots.get_mut("a/m").unwrap().pending_reason = Some("no room".into());
        assert!(inputs.update(&state, &[StateKey::Slot("a/m".into())]));
    }

    #[test]
    fn a_model_counts_only_while_it_is_to_run() {
        let mut state = state();
        let mut inputs = PlacementInputs::of(&state);
        state.models.insert("a/cold".into(), {
            let mut cold = model("a/cold");
            cold.prewarm = false;
            cold
        });
        let cold = [StateKey::Model("a/cold".into())];
        assert!(!inputs.update(&state, &cold), "a model nobody runs");
        state.models.get_mut("a/cold").unwrap().prewarm = true;
        assert!(inputs.update(&state, &cold), "now it is to run");
        state.models.remove("a/m");
        assert!(inputs.update(&state, &model_key()), "deleted");
    }
}
