//! The pure, deterministic transition function of the replicated state.

use super::command::{Command, Outcome, Proposal, Reply, SlotChange, StateError, TokenUpdate};
use super::model::{Slot, SlotStatus, State, User};
use super::StateKey;

/// Who may run a command.
enum Needs {
    /// Only the cluster itself (no actor).
    System,
    Admin,
}

impl Command {
    fn needs(&self) -> Needs {
        match self {
            Command::Bootstrap { .. }
            | Command::RegisterNode(_)
            | Command::RemoveNode { .. }
            | Command::PublishGpus { .. }
            | Command::Schedule(_)
            | Command::ReportSlot { .. } => Needs::System,
            Command::UpdateSystemSettings { .. }
            | Command::CreateModel(_)
            | Command::UpdateModel { .. }
            | Command::DeleteModel { .. } => Needs::Admin,
        }
    }
}

impl State {
    /// The user behind an API key hash, if the key exists.
    pub fn user_by_key_hash(&self, key_hash: &str) -> Option<&User> {
        let key = self.api_keys.get(key_hash)?;
        self.users.get(&key.user_id)
    }

    fn authorize(&self, actor: Option<&str>, needs: Needs) -> Result<(), StateError> {
        let Some(key_hash) = actor else {
            return Ok(());
        };
        let user = self
            .user_by_key_hash(key_hash)
            .ok_or(StateError::Unauthenticated)?;
        match needs {
            Needs::Admin if user.admin => Ok(()),
            Needs::Admin => Err(StateError::Forbidden("only admins may do this".into())),
            Needs::System => Err(StateError::Forbidden(
                "only the cluster itself may do this".into(),
            )),
        }
    }

    /// Apply one proposal. Returns the outcome for the caller and the keys it touched, which
    /// the store persists together with the applied log id.
    pub fn apply(&mut self, proposal: &Proposal) -> (Outcome, Vec<StateKey>) {
        let mut touched = Vec::new();
        let outcome = self
            .authorize(proposal.actor.as_deref(), proposal.command.needs())
            .and_then(|()| self.apply_command(&proposal.command, proposal.at_ms, &mut touched));
        (outcome, touched)
    }

    fn apply_command(
        &mut self,
        command: &Command,
        at_ms: i64,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        match command {
            Command::Bootstrap {
                admin,
                key_id,
                key_hash,
            } => {
                if !self.users.is_empty() {
                    return Ok(Reply::Done);
                }
                self.users.insert(admin.id.clone(), admin.clone());
                self.api_keys.insert(
                    key_hash.clone(),
                    super::model::ApiKey {
                        id: key_id.clone(),
                        user_id: admin.id.clone(),
                        created_ms: at_ms,
                    },
                );
                self.settings.created_ms = at_ms;
                self.settings.updated_ms = at_ms;
                touched.extend([
                    StateKey::User(admin.id.clone()),
                    StateKey::ApiKey(key_hash.clone()),
                    StateKey::Settings,
                ]);
                Ok(Reply::Done)
            }
            Command::UpdateSystemSettings { hf_token } => {
                match hf_token {
                    Some(TokenUpdate::Set(sealed)) => self.settings.hf_token = Some(sealed.clone()),
                    Some(TokenUpdate::Clear) => self.settings.hf_token = None,
                    None => {}
                }
                if self.settings.created_ms == 0 {
                    self.settings.created_ms = at_ms;
                }
                self.settings.updated_ms = at_ms;
                touched.push(StateKey::Settings);
                Ok(Reply::Done)
            }
            Command::RegisterNode(record) => {
                let mut record = record.clone();
                if let Some(existing) = self.nodes.get(&record.id) {
                    record.gpus = existing.gpus.clone();
                    record.joined_ms = existing.joined_ms;
                }
                self.nodes.insert(record.id, record.clone());
                touched.push(StateKey::Node(record.id));
                Ok(Reply::Done)
            }
            Command::PublishGpus { node_id, gpus } => {
                let node = self.nodes.get_mut(node_id).ok_or_else(|| {
                    StateError::NotFound(format!("node {node_id} is not registered"))
                })?;
                node.gpus = gpus.clone();
                touched.push(StateKey::Node(*node_id));
                Ok(Reply::Done)
            }
            Command::Schedule(changes) => {
                for change in changes {
                    self.apply_slot_change(change, touched);
                }
                Ok(Reply::Done)
            }
            Command::ReportSlot {
                slot_id,
                node_id,
                generation,
                status,
            } => {
                if let Some(slot) = self.slots.get_mut(slot_id) {
                    let placed_here = slot
                        .placement
                        .as_ref()
                        .is_some_and(|p| p.node_id == *node_id);
                    if placed_here && slot.generation == *generation {
                        slot.status = status.clone();
                        touched.push(StateKey::Slot(slot_id.clone()));
                    }
                }
                Ok(Reply::Done)
            }
            Command::RemoveNode { id } => {
                self.nodes.remove(id);
                touched.push(StateKey::Node(*id));
                Ok(Reply::Done)
            }
            Command::CreateModel(model) => {
                if self.models.contains_key(&model.id) {
                    return Err(StateError::Conflict(format!(
                        "model {:?} already exists",
                        model.id
                    )));
                }
                let mut model = model.clone();
                model.created_ms = at_ms;
                model.updated_ms = at_ms;
                self.models.insert(model.id.clone(), model.clone());
                touched.push(StateKey::Model(model.id.clone()));
                Ok(Reply::Model(model))
            }
            Command::UpdateModel { id, patch } => {
                let model = self.models.get_mut(id).ok_or_else(|| not_found_model(id))?;
                model.apply_patch(patch);
                model.updated_ms = at_ms;
                let model = model.clone();
                touched.push(StateKey::Model(id.clone()));
                Ok(Reply::Model(model))
            }
            Command::DeleteModel { id } => {
                self.models.remove(id).ok_or_else(|| not_found_model(id))?;
                touched.push(StateKey::Model(id.clone()));
                Ok(Reply::Done)
            }
        }
    }
}

impl State {
    fn apply_slot_change(&mut self, change: &SlotChange, touched: &mut Vec<StateKey>) {
        let current_generation = |slots: &std::collections::BTreeMap<String, Slot>, id: &str| {
            slots.get(id).map(|s| s.generation).unwrap_or(0)
        };
        match change {
            SlotChange::Place {
                slot_id,
                model_id,
                expect_generation,
                placement,
            } => {
                if current_generation(&self.slots, slot_id) != *expect_generation {
                    return;
                }
                self.slots.insert(
                    slot_id.clone(),
                    Slot {
                        id: slot_id.clone(),
                        model_id: model_id.clone(),
                        placement: Some(placement.clone()),
                        pending_reason: None,
                        generation: expect_generation + 1,
                        status: SlotStatus::default(),
                    },
                );
                touched.push(StateKey::Slot(slot_id.clone()));
            }
            SlotChange::Pending {
                slot_id,
                model_id,
                expect_generation,
                reason,
            } => {
                if current_generation(&self.slots, slot_id) != *expect_generation {
                    return;
                }
                self.slots.insert(
                    slot_id.clone(),
                    Slot {
                        id: slot_id.clone(),
                        model_id: model_id.clone(),
                        placement: None,
                        pending_reason: Some(reason.clone()),
                        generation: expect_generation + 1,
                        status: SlotStatus::default(),
                    },
                );
                touched.push(StateKey::Slot(slot_id.clone()));
            }
            SlotChange::Remove { slot_id } => {
                if self.slots.remove(slot_id).is_some() {
                    touched.push(StateKey::Slot(slot_id.clone()));
                }
            }
        }
    }
}

fn not_found_model(id: &str) -> StateError {
    StateError::NotFound(format!("model {id:?} not found"))
}
