//! The runner's figures for `/metrics`: its slots by state, and its GPUs' memory.

use std::time::Duration;

use nvml_wrapper::Nvml;
use tokio::sync::watch;

use crate::config::GpuSpec;
use crate::metrics::names;
use crate::state::{Gpu, SlotState};

/// How often NVML is asked how much memory is in use.
const GPU_POLL: Duration = Duration::from_secs(10);

const STATES: [(SlotState, &str); 5] = [
    (SlotState::Pending, "pending"),
    (SlotState::Starting, "starting"),
    (SlotState::Running, "running"),
    (SlotState::Failed, "failed"),
    (SlotState::Stopped, "stopped"),
];

/// The slots placed here, by state; every state is set, so one that empties reads 0.
pub fn slots(states: impl Iterator<Item = SlotState>) {
    let mut counts = [0u32; STATES.len()];
    for state in states {
        if let Some(i) = STATES.iter().position(|(s, _)| *s == state) {
            counts[i] += 1;
        }
    }
    for ((_, label), count) in STATES.iter().zip(counts) {
        ::metrics::gauge!(names::RUNNER_SLOTS, "state" => *label).set(count);
    }
}

/// Each GPU's total memory; with NVML (`--gpus auto`), also what is in use, every
/// [`GPU_POLL`] on a thread of its own (NVML calls block) until `stop`.
pub fn watch_gpus(spec: &GpuSpec, gpus: &[Gpu], stop: watch::Receiver<bool>) {
    for gpu in gpus {
        ::metrics::gauge!(names::GPU_MEMORY_TOTAL, "gpu" => gpu.index.to_string())
            .set(gpu.memory as f64);
    }
    if *spec != GpuSpec::Auto || gpus.is_empty() {
        return;
    }
    let poll = move || {
        let Ok(nvml) = Nvml::init() else { return };
        while !*stop.borrow() {
            used_memory(&nvml);
            std::thread::sleep(GPU_POLL);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("helix-gpu-metrics".into())
        .spawn(poll)
    {
        tracing::warn!(error = %e, "cannot watch GPU memory for /metrics");
    }
}

fn used_memory(nvml: &Nvml) {
    let count = nvml.device_count().unwrap_or(0);
    for i in 0..count {
        let used = nvml
            .device_by_index(i)
            .and_then(|d| d.memory_info())
            .map(|m| m.used);
        if let Ok(used) = used {
            ::metrics::gauge!(names::GPU_MEMORY_USED, "gpu" => i.to_string()).set(used as f64);
        }
    }
}
