//! The pure, deterministic transition function of the replicated state.

use super::command::{Command, Outcome, Proposal, Reply, StateError, TokenUpdate};
use super::model::{State, User};
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
            Command::Bootstrap { .. } | Command::RegisterNode(_) | Command::RemoveNode { .. } => {
                Needs::System
            }
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
                self.nodes.insert(record.id, record.clone());
                touched.push(StateKey::Node(record.id));
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

fn not_found_model(id: &str) -> StateError {
    StateError::NotFound(format!("model {id:?} not found"))
}
