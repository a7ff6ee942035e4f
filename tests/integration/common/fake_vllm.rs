//! The vLLM test double (`examples/fake_vllm.rs`): built once per test process, its launch
//! records, and its processes as `/proc` shows them.
//!
//! A node's double records each launch (argv, pid, port, `CUDA_VISIBLE_DEVICES`, the sha256
//! of `HF_TOKEN`, never its value) in `FAKE_VLLM_RECORD_DIR/launches.jsonl`; the rig gives
//! every node its own record dir, so a record says which node launched it. A double of this
//! test is a process whose environment has `FAKE_VLLM_RECORD_DIR` under the test's temp dir
//! (and, for a slot, `HELIX_SLOT_ID=<slot>`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::cluster::Cluster;
use super::process::{helix_bin, pid_alive};
use super::wait::POLL;

/// The `fake_vllm` example for this profile, built when missing or older than its source
/// (`cargo test` builds examples, `cargo test --test NAME` does not).
pub fn fake_vllm() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin_dir = Path::new(helix_bin()).parent().expect("bin dir");
        let path = bin_dir.join("examples").join("fake_vllm");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fake_vllm.rs");
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let fresh = matches!((modified(&path), modified(&source)), (Some(b), Some(s)) if b >= s);
        if !fresh {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "--quiet",
                "--example",
                "fake_vllm",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
            if bin_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if let Some(target) = bin_dir.parent() {
                cmd.env("CARGO_TARGET_DIR", target);
            }
            let status = cmd.status();
            assert!(
                matches!(status, Ok(st) if st.success()) && path.is_file(),
                "cannot build examples/fake_vllm ({status:?}) into {}",
                path.display()
            );
        }
        assert!(
            !path.display().to_string().contains(char::is_whitespace),
            "--vllm-command is split on whitespace; {} contains some",
            path.display()
        );
        path
    })
}

impl Cluster {
    /// Node `k`'s launch records, each with `"node": k` added.
    pub fn records(&self, k: usize) -> Vec<Value> {
        let path = self.node(k).records_dir.join("launches.jsonl");
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|mut v| {
                v["node"] = json!(k);
                v
            })
            .collect()
    }

    /// Every node's launch records for which `pick` holds, in launch order.
    fn launches_where(&self, pick: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut all: Vec<Value> = (1..=self.nodes.len())
            .flat_map(|k| self.records(k))
            .filter(|r| pick(r))
            .collect();
        all.sort_by_key(|r| r["started_ms"].as_u64().unwrap_or(0));
        all
    }

    /// Every launch of slot `slot_id`, in launch order.
    pub fn launches(&self, slot_id: &str) -> Vec<Value> {
        self.launches_where(|r| r["helix_slot_id"] == json!(slot_id))
    }

    /// Every launch of model `model_id` (whichever slot), in launch order.
    pub fn launches_of_model(&self, model_id: &str) -> Vec<Value> {
        self.launches_where(|r| r["model"] == json!(model_id))
    }

    /// The one launch recorded for `slot_id`, panicking if there are none or several.
    pub fn only_launch(&self, slot_id: &str) -> Value {
        let l = self.launches(slot_id);
        assert_eq!(
            l.len(),
            1,
            "expected exactly one launch of {slot_id}: {}",
            pretty(&l)
        );
        l.into_iter().next().unwrap()
    }

    /// Live test doubles of this test for `slot_id`.
    pub fn live_fakes(&self, slot_id: &str) -> Vec<u32> {
        live_fakes_under(self.root(), slot_id)
    }

    /// `pid` is alive and is a test double of this test for `slot_id`.
    pub fn is_fake_of(&self, pid: u32, slot_id: &str) -> bool {
        self.live_fakes(slot_id).contains(&pid)
    }

    /// The launch `rec` is the running process of `slot`: same node, same port, alive.
    pub fn assert_launch_is_slot(&self, rec: &Value, slot: &Value) {
        assert_eq!(
            rec["node"].as_u64().map(|k| k as usize),
            Some(self.node_of(slot)),
            "launched on another node than the slot's: {rec} vs {slot}"
        );
        assert_eq!(rec["port"], slot["port"], "launch {rec} vs slot {slot}");
        let pid = pid_of(rec);
        assert!(
            self.is_fake_of(pid, slot["id"].as_str().unwrap_or_default()),
            "the launched process {pid} of {slot} is not running"
        );
    }
}

/// The pid a launch record names.
pub fn pid_of(launch: &Value) -> u32 {
    launch["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("launch without pid: {launch}")) as u32
}

/// Live test doubles for `slot_id` of the test whose temp dir is `root` (for a thread that
/// watches them while the test drives its cluster).
pub fn live_fakes_under(root: &Path, slot_id: &str) -> Vec<u32> {
    let want = format!("HELIX_SLOT_ID={slot_id}");
    fakes_under(root, Some(&want))
}

/// Live processes whose environment has `FAKE_VLLM_RECORD_DIR` under `root` (and the
/// variable `also`, e.g. `HELIX_SLOT_ID=...`, if given).
fn fakes_under(root: &Path, also: Option<&str>) -> Vec<u32> {
    let marker = format!("FAKE_VLLM_RECORD_DIR={}/", root.display());
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|&pid| {
            let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            vars.iter().any(|v| v.starts_with(marker.as_bytes()))
                && also.is_none_or(|a| vars.contains(&a.as_bytes()))
        })
        .filter(|&pid| pid_alive(pid))
        .collect();
    pids.sort();
    pids
}

/// Waits a little for the test doubles under `root` to end with their nodes (parent-death
/// signal), then SIGKILLs what is left. Never panics: it also runs while a test unwinds.
pub fn reap_fakes(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = fakes_under(root, None);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for pid in left {
                eprintln!("killing vLLM test double {pid}, left behind by its node");
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            return;
        }
        thread::sleep(POLL);
    }
}

/// Launch records or slots as indented JSON, for failure messages.
pub fn pretty(v: &[Value]) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A JSON array of strings, e.g. a launch's argv.
pub fn str_vec(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

/// The argv the contract prescribes after the program name.
pub fn contract_argv(
    model: &str,
    port: u64,
    context: u64,
    tensor_parallel: Option<u32>,
    runtime_args: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "serve".into(),
        model.into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ];
    // helix passes the context length once: the model's runtime arguments may give it.
    if !runtime_args
        .iter()
        .any(|a| a.starts_with("--max-model-len"))
    {
        a.extend(["--max-model-len".into(), context.to_string()]);
    }
    if let Some(n) = tensor_parallel {
        a.push("--tensor-parallel-size".into());
        a.push(n.to_string());
    }
    a.extend(runtime_args.iter().cloned());
    a
}
