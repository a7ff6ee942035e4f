//! This node's GPU inventory: asked of NVML (`--gpus auto`) or declared (`--gpus 80GB,80GB`).
//!
//! No NVIDIA driver is not an error: the node runs with no GPUs, and says so once.

use std::sync::atomic::{AtomicBool, Ordering};

use nvml_wrapper::Nvml;

use crate::config::GpuSpec;
use crate::state::Gpu;

/// Set once the "no driver" line has been logged, so a node that asks again stays quiet.
static NO_DRIVER_LOGGED: AtomicBool = AtomicBool::new(false);

/// The GPUs of this node, in index order. Blocking (NVML calls into the driver): call it from
/// `spawn_blocking`.
pub fn discover(spec: &GpuSpec) -> Vec<Gpu> {
    match spec {
        GpuSpec::None => Vec::new(),
        GpuSpec::Declared(mems) => declared(mems),
        GpuSpec::Auto => nvml(),
    }
}

fn declared(mems: &[u64]) -> Vec<Gpu> {
    mems.iter()
        .enumerate()
        .map(|(i, &memory)| Gpu {
            index: i as u32,
            name: "declared".to_string(),
            uuid: None,
            memory,
        })
        .collect()
}

fn nvml() -> Vec<Gpu> {
    let nvml = match Nvml::init() {
        Ok(nvml) => nvml,
        Err(e) => {
            if !NO_DRIVER_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::info!("no NVIDIA driver found (NVML: {e}); running with no GPUs");
            }
            return Vec::new();
        }
    };
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("NVML could not count devices ({e}); running with no GPUs");
            return Vec::new();
        }
    };
    let mut gpus = Vec::with_capacity(count as usize);
    for i in 0..count {
        match nvml_device(&nvml, i) {
            Ok(gpu) => gpus.push(gpu),
            Err(e) => tracing::warn!(index = i, "skipping GPU: NVML: {e}"),
        }
    }
    tracing::info!(
        count = gpus.len(),
        "GPUs discovered: {}",
        gpus.iter()
            .map(|g| format!("{}:{} ({} MiB)", g.index, g.name, g.memory >> 20))
            .collect::<Vec<_>>()
            .join(", ")
    );
    gpus
}

fn nvml_device(nvml: &Nvml, i: u32) -> Result<Gpu, nvml_wrapper::error::NvmlError> {
    let dev = nvml.device_by_index(i)?;
    Ok(Gpu {
        // NVML numbers devices in PCI bus order; CUDA does the same when
        // CUDA_DEVICE_ORDER=PCI_BUS_ID, which the runner sets for every vLLM it launches.
        index: i,
        name: dev.name()?,
        uuid: Some(dev.uuid()?),
        memory: dev.memory_info()?.total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_gpus_are_numbered_from_zero() {
        let gpus = discover(&GpuSpec::Declared(vec![80 << 30, 24 << 30]));
        assert_eq!(
            gpus,
            vec![
                Gpu {
                    index: 0,
                    name: "declared".into(),
                    uuid: None,
                    memory: 80 << 30
                },
                Gpu {
                    index: 1,
                    name: "declared".into(),
                    uuid: None,
                    memory: 24 << 30
                },
            ]
        );
    }

    #[test]
    fn none_means_no_gpus() {
        assert!(discover(&GpuSpec::None).is_empty());
        assert!(discover(&GpuSpec::Declared(vec![])).is_empty());
    }

    #[test]
    fn auto_without_a_driver_is_not_an_error() {
        // On a machine with no NVIDIA driver this is empty; with one, every GPU has a UUID.
        // Either way it must not panic, and asking twice must give the same answer.
        let first = discover(&GpuSpec::Auto);
        let second = discover(&GpuSpec::Auto);
        assert_eq!(first, second);
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            assert!(first.iter().all(|g| g.uuid.is_some()));
        } else {
            assert!(first.is_empty());
        }
    }
}
