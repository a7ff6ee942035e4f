//! The pure, deterministic transition function of the replicated state.

mod audit;
mod keyring;
mod keys;
mod settings;
mod trust;

use super::auth::Rule;
use super::command::{Command, Outcome, Proposal, Reply, SlotChange, StateError};
use super::nodes::{Placement, Slot, SlotStatus};
use super::records::StateKey;
use super::tenancy::OrgRole;
use super::tokens::TokenLevel;
use super::trust::JoinTokenRecord;
use super::State;

impl State {
    /// Apply one proposal. Returns the outcome for the caller and the keys it touched, which
    /// the store persists together with the applied log id. A refused proposal touches
    /// nothing: every check runs before the first change.
    pub fn apply(&mut self, proposal: &Proposal) -> (Outcome, Vec<StateKey>) {
        let mut touched = Vec::new();
        // Old shapes from the log are applied as today's.
        let command = proposal.command.upgraded();
        let outcome = self
            .admit(proposal.actor.as_deref(), &command)
            .and_then(|actor| {
                // Time never goes back, even when a new leader's clock is behind the last one's.
                let ctx = Ctx {
                    at_ms: proposal.at_ms.max(self.clock_ms),
                    actor,
                };
                let reply = self.apply_command(&command, &ctx, &mut touched)?;
                if ctx.at_ms > self.clock_ms {
                    self.clock_ms = ctx.at_ms;
                    touched.push(StateKey::Clock);
                }
                Ok(reply)
            });
        (outcome, touched)
    }

    /// Who proposes, if they may, and whether the command is well formed: the user id
    /// behind the actor, `None` for the cluster itself. Trusts nothing the proposer says.
    fn admit(&self, actor: Option<&str>, command: &Command) -> Result<Option<String>, StateError> {
        let actor = match actor {
            // Re-checked at commit time: a key revoked or a role lost since the request was
            // accepted fails here, identically on every node.
            Some(hash) => {
                let user = self
                    .user_by_key_hash(hash)
                    .ok_or(StateError::Unauthenticated)?;
                self.authorize(user, command)?;
                Some(user.id.clone())
            }
            None if matches!(self.rule_for(command), Rule::Cluster) => None,
            None => {
                return Err(StateError::Forbidden(format!(
                    "{} needs an authenticated user: only the cluster's own bookkeeping \
                     comes without an API key",
                    command.name()
                )))
            }
        };
        command.validate()?;
        self.check_sealed_with_current_key(command)?;
        Ok(actor)
    }

    fn apply_command(
        &mut self,
        command: &Command,
        ctx: &Ctx,
        touched: &mut Vec<StateKey>,
    ) -> Outcome {
        let at_ms = ctx.at_ms;
        match command {
            Command::Bootstrap {
                admin,
                key_id,
                key_hash,
            } => {
                if !self.users.is_empty() {
                    return Ok(Reply::Done);
                }
                self.users
                    .insert(admin.id.clone(), admin.clone().into_user(at_ms));
                let key = keys::new_key(key_id, &admin.id, Some("bootstrap".into()), ctx);
                self.api_keys.insert(key_hash.clone(), key);
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
                self.set_system_token(hf_token, ctx, touched)
            }
            Command::UpdateOrgSettings { org_id, hf_token } => {
                self.set_org_token(org_id, hf_token, ctx, touched)
            }
            Command::UpdateUserSettings { user_id, hf_token } => {
                self.set_user_token(user_id, hf_token, ctx, touched)
            }
            Command::UpdateTokenSettings {
                system,
                orgs,
                users,
            } => self.set_tokens(system, orgs, users, ctx, touched),
            Command::RegisterNode(announced) => {
                let mut record = announced.clone().into_record();
                match self.nodes.get(&record.id) {
                    Some(existing) => {
                        record.gpus = existing.gpus.clone();
                        record.joined_ms = existing.joined_ms;
                        record.hf_token_in_env = existing.hf_token_in_env;
                    }
                    // The leader's time, not the one the node announced.
                    None => record.joined_ms = at_ms,
                }
                touched.push(StateKey::Node(record.id));
                self.nodes.insert(record.id, record);
                Ok(Reply::Done)
            }
            Command::PublishGpus { node_id, gpus } => {
                self.registered_node(*node_id)?.gpus = gpus.clone();
                touched.push(StateKey::Node(*node_id));
                Ok(Reply::Done)
            }
            Command::PublishEnvToken { node_id, present } => {
                self.registered_node(*node_id)?.hf_token_in_env = *present;
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
                let registered = self.nodes.remove(id).is_some();
                touched.push(StateKey::Node(*id));
                // Removing an already removed node again changes nothing worth a line.
                if self.retire_node(*id, touched) || registered {
                    self.audit(
                        ctx,
                        "node_removed",
                        "cluster",
                        Some(&id.to_string()),
                        touched,
                    );
                }
                Ok(Reply::Done)
            }
            Command::CreateOrg(org) => {
                if self.orgs.contains_key(&org.id) {
                    return Err(StateError::Conflict(format!(
                        "organization {:?} already exists",
                        org.id
                    )));
                }
                if self.orgs.values().any(|o| o.name == org.name) {
                    return Err(StateError::Conflict(format!(
                        "an organization named {:?} already exists",
                        org.name
                    )));
                }
                let mut org = org.clone();
                org.created_ms = at_ms;
                org.updated_ms = at_ms;
                self.orgs.insert(org.id.clone(), org.clone());
                touched.push(StateKey::Org(org.id.clone()));
                self.audit(ctx, "org_created", "organization", Some(&org.id), touched);
                Ok(Reply::Org(org))
            }
            Command::CreateUser {
                user,
                key_id,
                key_hash,
            } => {
                if self.users.contains_key(&user.id) {
                    return Err(StateError::Conflict(format!(
                        "user {:?} already exists",
                        user.id
                    )));
                }
                if self.users.values().any(|u| u.name == user.name) {
                    return Err(StateError::Conflict(format!(
                        "a user named {:?} already exists",
                        user.name
                    )));
                }
                if let Some(org_id) = &user.organization_id {
                    self.check_org_exists(org_id)?;
                }
                self.check_new_key(key_id, key_hash)?;
                let user = user.clone().into_user(at_ms);
                self.users.insert(user.id.clone(), user.clone());
                touched.push(StateKey::User(user.id.clone()));
                let kind = if user.admin {
                    "admin_user_created"
                } else {
                    "user_created"
                };
                self.audit(ctx, kind, "user", Some(&user.id), touched);
                if user.org_role == Some(OrgRole::Owner) {
                    let org = user.organization_id.clone();
                    self.audit(
                        ctx,
                        "org_owner_granted",
                        "organization",
                        org.as_deref(),
                        touched,
                    );
                }
                let key = keys::new_key(key_id, &user.id, None, ctx);
                self.insert_key(key_hash, key, ctx, touched);
                Ok(Reply::User(user))
            }
            Command::IssueApiKey {
                user_id,
                key_id,
                key_hash,
            } => self.issue_key(user_id, key_id, key_hash, None, ctx, touched),
            Command::RevokeApiKey { key_id } => self.revoke_key(key_id, ctx, touched),
            Command::CreateModelV1(_) | Command::UpdateModelV1 { .. } => {
                self.apply_command(&command.upgraded(), ctx, touched)
            }
            Command::CreateModel(model) => {
                if self.models.contains_key(&model.id) {
                    return Err(StateError::Conflict(format!(
                        "model {:?} already exists",
                        model.id
                    )));
                }
                self.check_model_refs(model)?;
                let mut model = model.clone();
                model.created_ms = at_ms;
                model.updated_ms = at_ms;
                self.models.insert(model.id.clone(), model.clone());
                touched.push(StateKey::Model(model.id.clone()));
                if model.hf_token.is_some() {
                    let level = TokenLevel::Model.name();
                    self.audit(ctx, "hf_token_set", level, Some(&model.id), touched);
                }
                Ok(Reply::Model(model))
            }
            Command::UpdateModel { id, patch } => {
                let mut model = self
                    .models
                    .get(id)
                    .ok_or_else(|| not_found_model(id))?
                    .clone();
                model.apply_patch(patch);
                model.validate()?;
                self.check_model_refs(&model)?;
                model.updated_ms = at_ms;
                self.models.insert(id.clone(), model.clone());
                touched.push(StateKey::Model(id.clone()));
                self.audit_token(ctx, &patch.hf_token, TokenLevel::Model, Some(id), touched);
                Ok(Reply::Model(model))
            }
            Command::DeleteModel { id } => {
                let model = self.models.remove(id).ok_or_else(|| not_found_model(id))?;
                touched.push(StateKey::Model(id.clone()));
                if model.hf_token.is_some() {
                    let level = TokenLevel::Model.name();
                    self.audit(ctx, "hf_token_cleared", level, Some(id), touched);
                }
                Ok(Reply::Done)
            }
            Command::InitCa(ca) => {
                if self.init_ca(ca, touched) {
                    self.audit(ctx, "ca_created", "cluster", Some(&ca.fingerprint), touched);
                }
                Ok(Reply::Done)
            }
            Command::CreateJoinToken {
                id,
                secret_hash,
                ttl_ms,
                max_uses,
            } => {
                self.create_join_token(
                    JoinTokenRecord {
                        id: id.clone(),
                        secret_hash: secret_hash.clone(),
                        created_ms: at_ms,
                        expires_ms: at_ms.saturating_add(*ttl_ms),
                        max_uses: *max_uses,
                        uses: 0,
                        revoked: false,
                        created_by: ctx.actor.clone(),
                    },
                    touched,
                )?;
                self.audit(ctx, "join_token_created", "cluster", Some(id), touched);
                Ok(Reply::Done)
            }
            Command::RevokeJoinToken { id } => {
                self.revoke_join_token(id, touched)?;
                self.audit(ctx, "join_token_revoked", "cluster", Some(id), touched);
                Ok(Reply::Done)
            }
            Command::AdmitNode {
                token_id,
                secret_hash,
                certificate,
            } => {
                self.admit_node(token_id, secret_hash, certificate, at_ms, touched)?;
                let node = certificate.node_id.to_string();
                self.audit(ctx, "node_admitted", "cluster", Some(&node), touched);
                Ok(Reply::Done)
            }
            Command::RecordCertificate(certificate) => {
                self.record_certificate(certificate, at_ms, touched)?;
                let node = certificate.node_id.to_string();
                self.audit(ctx, "certificate_issued", "cluster", Some(&node), touched);
                Ok(Reply::Done)
            }
            Command::IssueNamedApiKey {
                user_id,
                key_id,
                key_hash,
                name,
            } => self.issue_key(user_id, key_id, key_hash, name.clone(), ctx, touched),
            Command::RotateApiKey {
                key_id,
                new_key_id,
                new_key_hash,
            } => self.rotate_key(key_id, new_key_id, new_key_hash, ctx, touched),
            Command::SetUserDisabled { user_id, disabled } => {
                self.set_user_disabled(user_id, *disabled, ctx, touched)
            }
            Command::TouchApiKeys { key_hashes } => Ok(self.touch_keys(key_hashes, ctx, touched)),
            Command::InstallKeyring(keyring) => {
                self.install_keyring(keyring, ctx, touched);
                Ok(Reply::Done)
            }
            Command::RotateKeyring {
                seal_key_id,
                key_id,
                wrapped,
                resealed,
            } => {
                self.rotate_keyring(seal_key_id, *key_id, wrapped, resealed, ctx, touched)?;
                Ok(Reply::Done)
            }
            Command::CompactLogs => {
                self.compactions += 1;
                touched.push(StateKey::Compactions);
                self.audit(ctx, "logs_compacted", "system", None, touched);
                Ok(Reply::Done)
            }
            Command::RecordAutopilot { action, node_id } => {
                let target = node_id.to_string();
                self.audit(ctx, action.audit_kind(), "cluster", Some(&target), touched);
                Ok(Reply::Done)
            }
        }
    }
}

impl State {
    fn registered_node(&mut self, id: u64) -> Result<&mut super::NodeRecord, StateError> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| StateError::NotFound(format!("node {id} is not registered")))
    }

    fn apply_slot_change(&mut self, change: &SlotChange, touched: &mut Vec<StateKey>) {
        let (slot_id, model_id, expect_generation, placement, pending_reason) = match change {
            SlotChange::Place {
                slot_id,
                model_id,
                expect_generation,
                placement,
            } => (
                slot_id,
                model_id,
                *expect_generation,
                Some(placement.clone()),
                None,
            ),
            SlotChange::Pending {
                slot_id,
                model_id,
                expect_generation,
                reason,
            } => (
                slot_id,
                model_id,
                *expect_generation,
                None,
                Some(reason.clone()),
            ),
            SlotChange::Remove { slot_id } => {
                if self.slots.remove(slot_id).is_some() {
                    touched.push(StateKey::Slot(slot_id.clone()));
                }
                return;
            }
        };
        // A decision taken on an older view is dropped: of this slot, of the models, or of
        // the node's GPUs.
        let generation = self.slots.get(slot_id).map_or(0, |s| s.generation);
        let placeable = placement.as_ref().is_none_or(|p| self.can_place(p));
        if generation != expect_generation || !self.models.contains_key(model_id) || !placeable {
            return;
        }
        self.slots.insert(
            slot_id.clone(),
            Slot {
                id: slot_id.clone(),
                model_id: model_id.clone(),
                placement,
                pending_reason,
                generation: expect_generation + 1,
                status: SlotStatus::default(),
            },
        );
        touched.push(StateKey::Slot(slot_id.clone()));
    }
}

impl State {
    /// The node is registered and has every GPU the placement names.
    fn can_place(&self, placement: &Placement) -> bool {
        self.nodes.get(&placement.node_id).is_some_and(|node| {
            placement
                .gpu_indices
                .iter()
                .all(|i| node.gpus.iter().any(|g| g.index == *i))
        })
    }
}

/// What `apply` knows about the proposal besides its command.
struct Ctx {
    at_ms: i64,
    /// The user behind the proposal's key; `None` for the cluster itself.
    actor: Option<String>,
}

fn not_found_model(id: &str) -> StateError {
    StateError::NotFound(format!("model {id:?} not found"))
}
