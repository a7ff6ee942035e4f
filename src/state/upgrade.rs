//! Commands in the shapes older helix versions wrote into the log, and how they read today.
//! A log entry names its command by position, so a command whose shape changes keeps its
//! position under a `V1` name and the new shape goes last; `apply` upgrades the old one and
//! handles only the new.

use std::borrow::Cow;

use super::command::{Command, ModelPatch, ModelPatchV1};

impl From<ModelPatchV1> for ModelPatch {
    fn from(p: ModelPatchV1) -> ModelPatch {
        ModelPatch {
            name: p.name,
            model_type: p.model_type,
            runtime: p.runtime,
            memory: p.memory,
            context_length: p.context_length,
            description: p.description,
            enabled: p.enabled,
            auto_pull: p.auto_pull,
            prewarm: p.prewarm,
            runtime_args: p.runtime_args,
            owner_user_id: p.owner_user_id,
            organization_id: p.organization_id,
            hf_token: p.hf_token,
            replicas: None,
        }
    }
}

impl Command {
    /// The command in today's shape: old shapes upgraded, every other one as it is.
    pub fn upgraded(&self) -> Cow<'_, Command> {
        match self {
            Command::CreateModelV1(model) => Cow::Owned(Command::CreateModel(model.clone().into())),
            Command::UpdateModelV1 { id, patch } => Cow::Owned(Command::UpdateModel {
                id: id.clone(),
                patch: patch.clone().into(),
            }),
            current => Cow::Borrowed(current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{by, every_command_applied, ADMIN_KEY};
    use crate::state::{Model, ModelV1, Reply};

    /// A model created by an older helix, replayed from the log, is a model with one replica.
    #[test]
    fn an_old_create_model_applies_as_one_replica() {
        let mut s = every_command_applied();
        let old = ModelV1::from(&Model::new("old/model".into()));
        let (outcome, _) = s.apply(&by(Some(ADMIN_KEY), 50, Command::CreateModelV1(old)));
        assert!(matches!(outcome, Ok(Reply::Model(m)) if m.replicas == 1));
        let patch = ModelPatchV1 {
            description: Some("still old".into()),
            ..ModelPatchV1::default()
        };
        let (outcome, _) = s.apply(&by(
            Some(ADMIN_KEY),
            51,
            Command::UpdateModelV1 {
                id: "old/model".into(),
                patch,
            },
        ));
        assert!(matches!(outcome, Ok(Reply::Model(m)) if m.description == "still old"));
    }
}
