//! The rules for what nodes and the scheduler propose: addresses, GPU lists, slot ids,
//! placement decisions and reports.

use std::collections::BTreeSet;

use super::{
    check_addr, check_model_id_field, invalid, GPUS_MAX, MODEL_TEXT_MAX, REPLICAS_MAX, REPORT_MAX,
};
use crate::state::command::{SlotChange, StateError};
use crate::state::nodes::{replica_slot_id, split_replica, Gpu, NodeAnnouncement};

pub(super) fn check_announcement(node: &NodeAnnouncement) -> Result<(), StateError> {
    check_addr("api_addr", &node.api_addr)?;
    check_addr("peer_addr", &node.peer_addr)?;
    check_gpus("gpus", &node.gpus)
}

pub(super) fn check_gpus(field: &str, gpus: &[Gpu]) -> Result<(), StateError> {
    if gpus.len() > GPUS_MAX {
        return Err(invalid(field, format!("lists more than {GPUS_MAX} GPUs")));
    }
    let mut seen = BTreeSet::new();
    for gpu in gpus {
        if !seen.insert(gpu.index) {
            return Err(invalid(field, format!("GPU {} is listed twice", gpu.index)));
        }
        let printable = |s: &str| s.len() <= MODEL_TEXT_MAX && !s.chars().any(char::is_control);
        if !printable(&gpu.name) || !gpu.uuid.as_deref().is_none_or(printable) {
            return Err(invalid(
                field,
                format!(
                    "GPU {}: name and uuid must be at most {MODEL_TEXT_MAX} printable characters",
                    gpu.index
                ),
            ));
        }
    }
    Ok(())
}

/// Slot ids are made by [`replica_slot_id`]: a readable part, `-`, six hex digits, and for
/// replicas after the first `_r<N>`.
pub(super) fn check_slot_id(field: &str, id: &str) -> Result<(), StateError> {
    let (id, replica) = split_replica(id);
    if replica >= REPLICAS_MAX {
        return Err(invalid(field, format!("{id:?} names replica {replica}")));
    }
    let readable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let well_formed = id.rsplit_once('-').is_some_and(|(name, hash)| {
        name.len() <= 64
            && name.chars().all(readable)
            && hash.len() == 6
            && hash
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if well_formed {
        Ok(())
    } else {
        Err(invalid(field, format!("{id:?} is not a slot id")))
    }
}

pub(super) fn check_slot_change(change: &SlotChange) -> Result<(), StateError> {
    let (slot_id, model_id) = match change {
        SlotChange::Remove { slot_id } => return check_slot_id("slot_id", slot_id),
        SlotChange::Place {
            slot_id,
            model_id,
            placement,
            ..
        } => {
            let distinct: BTreeSet<_> = placement.gpu_indices.iter().collect();
            if distinct.is_empty() || distinct.len() != placement.gpu_indices.len() {
                return Err(invalid(
                    "placement.gpu_indices",
                    "must name at least one GPU, each once",
                ));
            }
            (slot_id, model_id)
        }
        SlotChange::Pending {
            slot_id,
            model_id,
            reason,
            ..
        } => {
            check_report("reason", reason)?;
            (slot_id, model_id)
        }
    };
    check_model_id_field("model_id", model_id)?;
    check_slot_id("slot_id", slot_id)?;
    let (_, replica) = split_replica(slot_id);
    if *slot_id != replica_slot_id(model_id, replica) {
        return Err(invalid(
            "slot_id",
            format!("{slot_id:?} is not the slot of model {model_id:?}"),
        ));
    }
    Ok(())
}

pub(super) fn check_report(field: &str, text: &str) -> Result<(), StateError> {
    if text.len() > REPORT_MAX {
        return Err(invalid(field, format!("is longer than {REPORT_MAX} bytes")));
    }
    Ok(())
}
