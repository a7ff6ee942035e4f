//! Writing audit entries; what is kept is decided in `state::audit`.

use super::Ctx;
use crate::state::{AuditEntry, State, StateKey, TokenLevel, TokenUpdate};

impl State {
    pub(super) fn audit(
        &mut self,
        ctx: &Ctx,
        kind: &str,
        level: &str,
        target: Option<&str>,
        touched: &mut Vec<StateKey>,
    ) {
        let (seq, dropped) = self.audit.append(AuditEntry {
            seq: 0,
            at_ms: ctx.at_ms,
            actor_user_id: ctx.actor.clone(),
            kind: kind.into(),
            level: level.into(),
            target: target.map(str::to_owned),
        });
        touched.extend(dropped.into_iter().map(StateKey::Audit));
        touched.push(StateKey::Audit(seq));
    }

    pub(super) fn audit_token(
        &mut self,
        ctx: &Ctx,
        update: &Option<TokenUpdate>,
        level: TokenLevel,
        target: Option<&str>,
        touched: &mut Vec<StateKey>,
    ) {
        let level = level.name();
        match update {
            Some(TokenUpdate::Set(_)) => self.audit(ctx, "hf_token_set", level, target, touched),
            Some(TokenUpdate::Clear) => self.audit(ctx, "hf_token_cleared", level, target, touched),
            None => {}
        }
    }
}
