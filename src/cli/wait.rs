//! `helix model create --wait`: follow a model's slots until every one runs, one fails, or
//! the time is up, saying on standard error what each is doing as it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::client::Client;
use super::failure::{failed, Failure};
use crate::api::types::{ModelView, SlotView};
use crate::state::SlotState;

/// How often the slots are looked at.
const POLL: Duration = Duration::from_secs(1);

/// The model's slots, as JSON, once every one runs; a failure naming why otherwise: the
/// last error of a failed slot, or why a slot is still pending when `timeout` ends.
pub async fn until_running(
    client: &Client,
    model: &ModelView,
    timeout: Duration,
) -> Result<Vec<Value>, Failure> {
    if !model.prewarm || !model.enabled {
        eprintln!(
            "{}: nothing to wait for: only an enabled prewarm model runs before it is asked",
            model.id
        );
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + timeout;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Vec<SlotView> = Vec::new();
    loop {
        match client.get::<Vec<SlotView>>("/api/v1/slots").await {
            Ok(answer) => {
                let mine = |s: &&SlotView| s.model_id == model.id;
                last = answer.body.iter().filter(mine).cloned().collect();
                for slot in &last {
                    let line = progress(slot);
                    if shown.get(&slot.id) != Some(&line) {
                        eprintln!("{}: {line}", slot.id);
                        shown.insert(slot.id.clone(), line);
                    }
                }
                if let Some(slot) = last.iter().find(|s| s.state == SlotState::Failed) {
                    return Err(failed(format!(
                        "slot {} of {} failed: {}",
                        slot.id,
                        model.id,
                        slot.last_error
                            .as_deref()
                            .unwrap_or("no error was reported")
                    )));
                }
                let running = |s: &SlotView| s.state == SlotState::Running;
                if last.len() >= model.replicas as usize && last.iter().all(running) {
                    let json = answer.json.as_array().cloned().unwrap_or_default();
                    let ids: Vec<&str> = last.iter().map(|s| s.id.as_str()).collect();
                    return Ok(json
                        .into_iter()
                        .filter(|s| s["id"].as_str().is_some_and(|id| ids.contains(&id)))
                        .collect());
                }
            }
            // A node that cannot answer now (no leader a moment) may answer in a second.
            Err(e) => eprintln!("cannot read the slots yet: {e}"),
        }
        if Instant::now() + POLL > deadline {
            return Err(failed(gave_up(model, &last, timeout)));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One slot's state in words: `pending: no node has 2 TB free`, `running on node 2 (GPU 0)`.
fn progress(slot: &SlotView) -> String {
    let state = format!("{:?}", slot.state).to_lowercase();
    match (slot.state, slot.node_id) {
        (SlotState::Pending, _) | (_, None) => match &slot.pending_reason {
            Some(why) => format!("pending: {why}"),
            None => "pending".into(),
        },
        (_, Some(node)) => {
            let gpus: Vec<String> = slot.gpu_indices.iter().map(u32::to_string).collect();
            format!("{state} on node {node} (GPU {})", gpus.join(","))
        }
    }
}

/// Why the wait ended without every slot running.
fn gave_up(model: &ModelView, slots: &[SlotView], timeout: Duration) -> String {
    let waited = format!("after {}s", timeout.as_secs());
    let not_running: Vec<String> = slots
        .iter()
        .filter(|s| s.state != SlotState::Running)
        .map(|s| format!("slot {} is {}", s.id, progress(s)))
        .collect();
    match not_running.is_empty() {
        true => format!("{} has no running slot yet {waited}", model.id),
        false => format!(
            "{} is not running {waited}: {}",
            model.id,
            not_running.join("; ")
        ),
    }
}
