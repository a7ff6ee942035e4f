//! Issue 3, the runners, as a user sees them: real `helix` nodes with declared GPUs
//! (`--gpus 80GB,80GB`) that launch the vLLM test double (`examples/fake_vllm.rs`) for the
//! slots the committed state places on them.
//!
//! Every node gets its own config file (`runner.node_lost_after_ms`, its own `port_range`, a
//! short `stop_grace_ms`) and its own `FAKE_VLLM_RECORD_DIR`, so each launch record says which
//! node launched it. Processes are checked through `/proc`: a vLLM process of this test is
//! one whose environment carries `HELIX_SLOT_ID=<slot>` and this test's record directory.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SETTINGS: &str = "/api/v1/system/settings";
const MODELS: &str = "/api/v1/helix-models";
const SLOTS: &str = "/api/v1/slots";
const NODE_LOST_AFTER_MS: u64 = 3000;
const QWEN: &str = "Qwen/Qwen2.5-VL-7B-Instruct";

// ---------------------------------------------------------------------------------------------
// Local harness: nodes with declared GPUs, the fake vLLM, per-node config and environment.

/// `target/debug/examples/fake_vllm`, next to the `helix` binary's directory.
fn fake_vllm() -> PathBuf {
    let bin = Path::new(helix_bin());
    let p = bin
        .parent()
        .expect("the helix binary has a directory")
        .join("examples")
        .join("fake_vllm");
    assert!(
        p.is_file(),
        "the vLLM test double {} is missing: run `cargo build --examples` (`cargo test` builds it)",
        p.display()
    );
    assert!(
        !p.display().to_string().contains(char::is_whitespace),
        "--vllm-command is split on whitespace; {} contains some",
        p.display()
    );
    p
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A block of 10 ports below the ephemeral range, not handed out before in this process.
fn alloc_port_range() -> (u16, u16) {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut used = USED.lock().unwrap();
    loop {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ (u64::from(std::process::id()) << 20)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9);
        let mut x = seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
        let low = 21000 + (x % 1100) as u16 * 10;
        if !used.contains(&low) {
            used.push(low);
            return (low, low + 9);
        }
    }
}

/// How one node is started.
#[derive(Clone)]
struct NodeSpec {
    gpus: String,
    env: Vec<(String, String)>,
}

impl NodeSpec {
    fn new(gpus: &str) -> NodeSpec {
        NodeSpec {
            gpus: gpus.to_string(),
            env: Vec::new(),
        }
    }
    fn env(mut self, k: &str, v: &str) -> NodeSpec {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

/// A cluster whose nodes run the fake vLLM.
struct Rig {
    c: Cluster,
    specs: Vec<NodeSpec>,
    /// Environment for every node.
    env: Vec<(String, String)>,
    _reaper: FakeReaper,
}

impl Rig {
    fn start(specs: Vec<NodeSpec>) -> Rig {
        Rig::start_env(specs, &[])
    }

    /// Bootstraps node 1, joins the others through it, and waits until all are voters.
    fn start_env(specs: Vec<NodeSpec>, env: &[(&str, &str)]) -> Rig {
        fake_vllm();
        let c = Cluster::empty(None);
        let root = c.tmp.path().to_path_buf();
        let mut r = Rig {
            c,
            _reaper: FakeReaper { root },
            specs,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for _ in 0..r.specs.len() {
            let k = r.c.add_node();
            let (lo, hi) = alloc_port_range();
            let cfg = format!(
                "[runner]\nnode_lost_after_ms = {NODE_LOST_AFTER_MS}\nport_range = \"{lo}-{hi}\"\n\
                 stop_grace_ms = 3000\n"
            );
            let path = r.c.tmp.path().join(format!("node{k}-runner.toml"));
            fs::write(&path, cfg).unwrap();
            r.c.node_mut(k).config_path = Some(path);
            fs::create_dir_all(r.records_dir(k)).unwrap();
        }
        let mut args: Vec<String> = vec!["node".into(), "start".into()];
        args.extend(r.node_args(1));
        r.spawn(1, &args);
        let dd = r.c.node(1).data_dir.clone();
        r.c.admin_key = read_secret(&dd.join("admin.key"));
        r.c.join_token = read_secret(&dd.join("join.token"));
        r.learn_id(1);
        for k in 2..=r.specs.len() {
            let mut args: Vec<String> = vec![
                "node".into(),
                "join".into(),
                format!("http://{}", r.c.node(1).api_addr),
                "--token".into(),
                r.c.join_token.clone(),
            ];
            args.extend(r.node_args(k));
            r.spawn(k, &args);
            r.learn_id(k);
        }
        r.c.wait_members_settled();
        r.wait_gpus_published();
        r
    }

    /// Waits until `GET /api/v1/nodes` shows every node's declared GPUs (placement needs them).
    fn wait_gpus_published(&self) {
        for k in 1..=self.specs.len() {
            let want: Vec<u64> = match self.specs[k - 1].gpus.as_str() {
                "none" => Vec::new(),
                list => list
                    .split(',')
                    .map(|g| {
                        let gb: u64 = g
                            .strip_suffix("GB")
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| {
                                panic!("test setup: declare GPUs as NGB, got {g:?}")
                            });
                        gb * 1_000_000_000
                    })
                    .collect(),
            };
            let id = self.id(k);
            wait_for(
                WAIT,
                &format!(
                    "GET /api/v1/nodes shows node{k}'s declared GPUs {:?} (memory {want:?})",
                    self.specs[k - 1].gpus
                ),
                || {
                    let v = self.c.client(1).get_json_ok("/api/v1/nodes")?;
                    let node = v
                        .as_array()
                        .and_then(|a| a.iter().find(|n| n["id"] == json!(id)))
                        .ok_or_else(|| format!("node {id} not listed: {v}"))?;
                    let got: Vec<u64> = node["gpus"]
                        .as_array()
                        .map(|g| g.iter().filter_map(|g| g["memory"].as_u64()).collect())
                        .unwrap_or_default();
                    if got == want {
                        Ok(())
                    } else {
                        Err(node.to_string())
                    }
                },
            );
        }
    }

    fn records_dir(&self, k: usize) -> PathBuf {
        self.c.tmp.path().join(format!("node{k}")).join("records")
    }

    /// The harness's common args with this node's `--gpus`, plus `--vllm-command`.
    fn node_args(&self, k: usize) -> Vec<String> {
        let mut a = self.c.args_with_gpus(k, &self.specs[k - 1].gpus);
        a.push("--vllm-command".into());
        a.push(fake_vllm().display().to_string());
        a
    }

    /// Spawns node `k` with its own environment and waits for `ready`.
    fn spawn(&mut self, k: usize, args: &[String]) {
        let mut env = self.env.clone();
        env.push((
            "FAKE_VLLM_RECORD_DIR".into(),
            self.records_dir(k).display().to_string(),
        ));
        env.extend(self.specs[k - 1].env.iter().cloned());
        self.c.env = env;
        self.c.spawn(k, args);
        self.c.wait_ready(k);
    }

    /// `helix node start` again on node `k`'s data dir.
    fn restart(&mut self, k: usize) {
        let mut args: Vec<String> = vec!["node".into(), "start".into()];
        args.extend(self.node_args(k));
        self.spawn(k, &args);
        self.learn_id(k);
    }

    fn learn_id(&mut self, k: usize) {
        let c = self.c.client(k);
        let id = wait_for(WAIT, &format!("node{k} reports its node id"), || {
            let v = c.get_json_ok("/api/v1/system/config")?;
            v["node_id"]
                .as_u64()
                .ok_or_else(|| format!("no node_id in {v}"))
        });
        if let Some(old) = self.c.node(k).id {
            assert_eq!(old, id, "node{k} changed its node id");
        }
        self.c.node_mut(k).id = Some(id);
    }

    fn id(&self, k: usize) -> u64 {
        self.c.node(k).id.expect("node id known")
    }

    // ----- API ----------------------------------------------------------------------------

    /// PUT the system token through node `k` ("" clears it); returns the settings.
    fn set_token(&self, k: usize, token: &str) -> Value {
        let r = self
            .c
            .put_json(k, SETTINGS, &json!({ "huggingface_token": token }));
        assert_eq!(r.status, 200, "PUT settings on node{k}: {}", r.text());
        let v = r.json();
        assert_eq!(
            v["huggingface_token_set"],
            json!(!token.is_empty()),
            "settings after PUT: {v}"
        );
        if !token.is_empty() {
            assert!(
                !r.text().contains(token),
                "the settings response shows the token"
            );
        }
        v
    }

    fn create_model(&self, k: usize, model: &Value) {
        let r = self.c.post_json(k, MODELS, model);
        assert_eq!(r.status, 201, "POST {MODELS} on node{k}: {}", r.text());
    }

    fn delete_model(&self, k: usize, id: &str) {
        let path = format!("{MODELS}/{id}");
        let r = self
            .c
            .client(k)
            .delete(&path)
            .unwrap_or_else(|e| panic!("DELETE {path} on node{k}: {e}"));
        assert!(
            r.status == 200 || r.status == 204,
            "DELETE {path} on node{k}: {} {}",
            r.status,
            r.text()
        );
    }

    fn slots(&self, k: usize) -> Result<Vec<Value>, String> {
        let v = self.c.client(k).get_json_ok(SLOTS)?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("GET {SLOTS}: not an array: {v}"))
    }

    /// The slot of `model_id` as node `k` lists it.
    fn slot(&self, k: usize, model_id: &str) -> Result<Option<Value>, String> {
        Ok(self
            .slots(k)?
            .into_iter()
            .find(|s| s["model_id"] == json!(model_id)))
    }

    /// Waits until node `k` lists a slot for `model_id` for which `pred` holds.
    fn wait_slot(
        &self,
        k: usize,
        model_id: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(
            timeout,
            &format!("the slot of {model_id} {what} (GET {SLOTS} on node{k})"),
            || match self.slot(k, model_id)? {
                Some(s) if pred(&s) => Ok(s),
                Some(s) => Err(s.to_string()),
                None => Err("no slot".into()),
            },
        )
    }

    fn wait_running(&self, k: usize, model_id: &str) -> Value {
        self.wait_slot(k, model_id, WAIT, "is running", |s| s["state"] == "running")
    }

    /// The node index (1-based) a slot is placed on.
    fn node_of(&self, slot: &Value) -> usize {
        let id = slot["node_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("slot without node: {slot}"));
        self.c
            .index_of(id)
            .unwrap_or_else(|| panic!("unknown node id {id}"))
    }

    // ----- launch records and processes -----------------------------------------------------

    /// Node `k`'s launch records, each with `"node": k` added.
    fn records(&self, k: usize) -> Vec<Value> {
        let text =
            fs::read_to_string(self.records_dir(k).join("launches.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|mut v| {
                v["node"] = json!(k);
                v
            })
            .collect()
    }

    /// Every node's launch records for `slot_id`, in launch order.
    fn launches(&self, slot_id: &str) -> Vec<Value> {
        let mut all: Vec<Value> = (1..=self.c.nodes.len())
            .flat_map(|k| self.records(k))
            .filter(|r| r["helix_slot_id"] == json!(slot_id))
            .collect();
        all.sort_by_key(|r| r["started_ms"].as_u64().unwrap_or(0));
        all
    }

    /// The one launch recorded for `slot_id`, panicking if there are none or several.
    fn only_launch(&self, slot_id: &str) -> Value {
        let l = self.launches(slot_id);
        assert_eq!(
            l.len(),
            1,
            "expected exactly one launch of {slot_id}: {}",
            pretty(&l)
        );
        l.into_iter().next().unwrap()
    }

    /// Live (not zombie) fake vLLM processes of this test for `slot_id`.
    fn live_fakes(&self, slot_id: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if self.is_ours(pid, Some(slot_id)) {
                out.push(pid);
            }
        }
        out.sort();
        out
    }

    /// `pid` is alive (not a zombie) and is a fake vLLM of this test (for `slot_id`, if given).
    fn is_ours(&self, pid: u32, slot_id: Option<&str>) -> bool {
        if !pid_alive(pid) {
            return false;
        }
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let root = format!("FAKE_VLLM_RECORD_DIR={}", self.c.tmp.path().display());
        let in_this_test = vars.iter().any(|v| v.starts_with(root.as_bytes()));
        let slot_ok = match slot_id {
            None => vars.iter().any(|v| v.starts_with(b"HELIX_SLOT_ID=")),
            Some(s) => {
                let want = format!("HELIX_SLOT_ID={s}");
                vars.contains(&want.as_bytes())
            }
        };
        in_this_test && slot_ok && pid_alive(pid)
    }

    fn node_log(&self, k: usize) -> String {
        String::from_utf8_lossy(&fs::read(&self.c.node(k).log_path).unwrap_or_default())
            .into_owned()
    }

    /// No node's output, vLLM log, or slots listing contains `secret`.
    fn assert_secret_not_shown(&self, secret: &str) {
        for n in &self.c.nodes {
            let log = fs::read(&n.log_path).unwrap_or_default();
            assert!(
                !contains_bytes(&log, secret.as_bytes()),
                "the token appears in node{}'s output {}",
                n.k,
                n.log_path.display()
            );
            for f in files_under(&n.data_dir.join("slots")) {
                let bytes = fs::read(&f).unwrap_or_default();
                assert!(
                    !contains_bytes(&bytes, secret.as_bytes()),
                    "the token appears in {}",
                    f.display()
                );
            }
        }
        let r = self.c.get(1, SLOTS);
        assert!(!r.text().contains(secret), "the token appears in {SLOTS}");
    }
}

/// Declared after the cluster in [`Rig`], so it runs once the nodes are killed: no fake vLLM
/// process of this test outlives it (their parent-death signal should already have ended
/// them). Never panics: it also runs while a failed test unwinds.
struct FakeReaper {
    root: PathBuf,
}

impl FakeReaper {
    fn ours(&self) -> Vec<u32> {
        let marker = format!("FAKE_VLLM_RECORD_DIR={}", self.root.display());
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .filter(|pid| {
                pid_alive(*pid)
                    && fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                        env.split(|b| *b == 0)
                            .any(|v| v.starts_with(marker.as_bytes()))
                    })
            })
            .collect()
    }
}

impl Drop for FakeReaper {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.ours();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    eprintln!("killing fake vLLM process {pid}, left behind by its node");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return;
            }
            thread::sleep(POLL);
        }
    }
}

fn read_secret(p: &Path) -> String {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let s = s.trim().to_string();
    assert!(!s.is_empty(), "{} is empty", p.display());
    s
}

/// `/proc/<pid>` exists and is not a zombie (a zombie has already died).
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, None | Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// A prewarm model of `memory` with a context length of 8192.
fn model_json(id: &str, memory: &str, runtime_args: &[&str]) -> Value {
    json!({
        "id": id,
        "name": id,
        "type": "chat",
        "runtime": "vllm",
        "memory": memory,
        "context_length": 8192,
        "enabled": true,
        "prewarm": true,
        "runtime_args": runtime_args,
    })
}

/// Exactly the seed's `model.json`.
fn seed_model_json() -> Value {
    serde_json::from_str(
        r#"{
  "id": "Qwen/Qwen2.5-VL-7B-Instruct",
  "name": "Qwen 2.5 VL 7B",
  "type": "chat",
  "runtime": "vllm",
  "memory": "39GB",
  "context_length": 32768,
  "description": "Multi-modal vision-language model from Alibaba",
  "enabled": true,
  "auto_pull": true,
  "prewarm": true,
  "runtime_args": [
    "--trust-remote-code",
    "--max-model-len", "32768",
    "--limit-mm-per-prompt", "{\"image\":10}",
    "--enforce-eager",
    "--max-num-seqs", "64"
  ]
}"#,
    )
    .unwrap()
}

/// Launch records or slots as indented JSON, for failure messages.
fn pretty(v: &[Value]) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn str_vec(v: &Value) -> Vec<String> {
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
fn contract_argv(
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
        "--max-model-len".into(),
        context.to_string(),
    ];
    if let Some(n) = tensor_parallel {
        a.push("--tensor-parallel-size".into());
        a.push(n.to_string());
    }
    a.extend(runtime_args.iter().cloned());
    a
}

/// The launch `rec` is the running process of `slot`: same node, same port, alive.
fn assert_launch_is_slot(r: &Rig, rec: &Value, slot: &Value) {
    assert_eq!(
        rec["node"].as_u64().map(|k| k as usize),
        Some(r.node_of(slot)),
        "launched on another node than the slot's: {rec} vs {slot}"
    );
    assert_eq!(rec["port"], slot["port"], "launch {rec} vs slot {slot}");
    let pid = rec["pid"].as_u64().unwrap() as u32;
    assert!(
        r.is_ours(pid, slot["id"].as_str()),
        "the launched process {pid} of {slot} is not running"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The seed's Steps 1–5 on three nodes.

#[test]
fn seed_token_steps_end_to_end_on_three_nodes() {
    let env_token = "hf_node3_own_env_token_5d1c7a";
    let first = "hf_seed_first_token_c0ffee11";
    let second = "hf_seed_second_token_beef4242";
    // Node 3 has one big GPU (only it fits a 90 GB model) and its own HF_TOKEN.
    let r = Rig::start(vec![
        NodeSpec::new("80GB,80GB"),
        NodeSpec::new("80GB,80GB"),
        NodeSpec::new("100GB").env("HF_TOKEN", env_token),
    ]);

    // Step 1: set the cluster-wide token (through a follower).
    r.set_token(2, first);

    // Step 2: create the seed's model from its model.json (through another node).
    r.create_model(3, &seed_model_json());
    let qwen = r.wait_running(1, QWEN);
    let qwen_slot = qwen["id"].as_str().unwrap().to_string();
    let gpus = qwen["gpu_indices"].as_array().unwrap().clone();
    assert_eq!(gpus.len(), 1, "39 GB fits one 80 GB GPU: {qwen}");
    assert_eq!(qwen["hf_token_source"], "system", "{qwen}");
    assert_eq!(qwen["restarts"], 0, "{qwen}");

    // The process started with that token in its environment and not in its argv.
    let launch = r.only_launch(&qwen_slot);
    assert_launch_is_slot(&r, &launch, &qwen);
    let qwen_pid = launch["pid"].as_u64().unwrap() as u32;
    assert_eq!(launch["hf_token_present"], true, "{launch}");
    assert_eq!(
        launch["hf_token_sha256"],
        json!(sha256_hex(first)),
        "{launch}"
    );
    let argv = str_vec(&launch["argv"]);
    assert!(
        argv.iter().all(|a| !a.contains(first)),
        "the token is in argv: {argv:?}"
    );
    assert_eq!(
        argv[0],
        fake_vllm().display().to_string(),
        "argv[0] is the --vllm-command"
    );
    let runtime_args = str_vec(&seed_model_json()["runtime_args"]);
    assert_eq!(
        argv[1..],
        contract_argv(
            QWEN,
            qwen["port"].as_u64().unwrap(),
            32768,
            None,
            &runtime_args
        )[..],
        "argv does not follow the contract"
    );
    assert_eq!(
        launch["cuda_visible_devices"],
        json!(gpus[0].as_u64().unwrap().to_string()),
        "CUDA_VISIBLE_DEVICES is the one assigned GPU index: {launch}"
    );

    // Step 3: the runner logs the launch, saying a token is provided but not what it is.
    let qwen_node = r.node_of(&qwen);
    let log = r.node_log(qwen_node);
    assert!(
        log.lines().any(|l| l.contains("NewVLLMRuntime received args")
            && l.contains(QWEN)
            && l.contains("hf_token_provided=true")),
        "node{qwen_node}'s log has no `NewVLLMRuntime received args model={QWEN} hf_token_provided=true` line"
    );

    // Step 4: clear the token; a newly started model is launched without HF_TOKEN...
    r.set_token(1, "");
    let public = "acme/public-model";
    r.create_model(1, &model_json(public, "39GB", &[]));
    let p = r.wait_running(1, public);
    assert_ne!(
        r.node_of(&p),
        3,
        "test setup: the public model should land on a node without its own HF_TOKEN: {p}"
    );
    assert_eq!(p["hf_token_source"], "none", "{p}");
    let pl = r.only_launch(p["id"].as_str().unwrap());
    assert_launch_is_slot(&r, &pl, &p);
    assert_eq!(pl["hf_token_present"], false, "{pl}");
    assert_eq!(pl["hf_token_sha256"], Value::Null, "{pl}");
    assert_eq!(
        str_vec(&pl["argv"])[1..],
        contract_argv(public, p["port"].as_u64().unwrap(), 8192, None, &[])[..]
    );

    // ...and on a node started with its own HF_TOKEN, with that one.
    let envm = "acme/env-token-model";
    r.create_model(2, &model_json(envm, "90GB", &[]));
    let e = r.wait_running(1, envm);
    assert_eq!(
        r.node_of(&e),
        3,
        "only node3 has a GPU of 90 GB or more: {e}"
    );
    assert_eq!(e["hf_token_source"], "environment", "{e}");
    let el = r.only_launch(e["id"].as_str().unwrap());
    assert_launch_is_slot(&r, &el, &e);
    assert_eq!(el["hf_token_present"], true, "{el}");
    assert_eq!(el["hf_token_sha256"], json!(sha256_hex(env_token)), "{el}");

    // Step 5: update the token; the next launch uses it.
    r.set_token(3, second);
    let next = "acme/next-model";
    r.create_model(1, &model_json(next, "39GB", &[]));
    let n = r.wait_running(1, next);
    assert_eq!(n["hf_token_source"], "system", "{n}");
    let nl = r.only_launch(n["id"].as_str().unwrap());
    assert_launch_is_slot(&r, &nl, &n);
    assert_eq!(nl["hf_token_sha256"], json!(sha256_hex(second)), "{nl}");
    assert!(str_vec(&nl["argv"]).iter().all(|a| !a.contains(second)));

    // The first process ran undisturbed through every token change.
    let q = r.wait_running(1, QWEN);
    assert_eq!(q["restarts"], 0, "{q}");
    assert_eq!(q["node_id"], qwen["node_id"], "{q}");
    assert_eq!(
        r.only_launch(&qwen_slot)["pid"],
        json!(qwen_pid),
        "the Qwen slot was relaunched"
    );
    assert_eq!(r.live_fakes(&qwen_slot), vec![qwen_pid]);

    for secret in [first, second, env_token] {
        r.assert_secret_not_shown(secret);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Too big: pending with a reason. Two GPUs: tensor parallelism 2.

#[test]
fn too_big_stays_pending_and_two_gpus_get_tensor_parallelism() {
    let r = Rig::start(vec![NodeSpec::new("80GB,80GB")]);

    let big = "acme/too-big";
    r.create_model(1, &model_json(big, "200GB", &[]));
    let b = r.wait_slot(1, big, WAIT, "is pending with a reason", |s| {
        s["state"] == "pending"
            && s["pending_reason"]
                .as_str()
                .is_some_and(|t| t.contains("needs"))
    });
    assert_eq!(b["node_id"], Value::Null, "{b}");
    let reason = b["pending_reason"].as_str().unwrap();
    assert!(
        reason.contains("200 GB"),
        "the reason names the size: {reason}"
    );

    let tp = "acme/two-gpus";
    r.create_model(1, &model_json(tp, "120GB", &["--trust-remote-code"]));
    let t = r.wait_running(1, tp);
    assert_eq!(t["gpu_indices"], json!([0, 1]), "{t}");
    let l = r.only_launch(t["id"].as_str().unwrap());
    assert_launch_is_slot(&r, &l, &t);
    assert_eq!(l["cuda_visible_devices"], "0,1", "{l}");
    assert_eq!(
        str_vec(&l["argv"])[1..],
        contract_argv(
            tp,
            t["port"].as_u64().unwrap(),
            8192,
            Some(2),
            &["--trust-remote-code".to_string()]
        )[..]
    );

    // The big one is still pending, never launched.
    let b = r.slot(1, big).unwrap().expect("the big model's slot");
    assert_eq!(b["state"], "pending", "{b}");
    assert!(
        b["pending_reason"]
            .as_str()
            .is_some_and(|t| t.contains("needs")),
        "{b}"
    );
    assert!(r.launches(b["id"].as_str().unwrap()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Kill -9 of the node that runs a model: it moves; the restarted node runs nothing twice.

#[test]
fn kill9_of_the_runner_node_moves_its_model_and_nothing_runs_twice() {
    // Node 1 (the leader) has no GPU, so the model runs on node 2 or 3.
    let mut r = Rig::start(vec![
        NodeSpec::new("none"),
        NodeSpec::new("80GB,80GB"),
        NodeSpec::new("80GB,80GB"),
    ]);
    let m = "acme/failover-model";
    r.create_model(1, &model_json(m, "39GB", &[]));
    let s = r.wait_running(1, m);
    let slot = s["id"].as_str().unwrap().to_string();
    let from = r.node_of(&s);
    assert_ne!(from, 1, "node1 has no GPU: {s}");
    let to = if from == 2 { 3 } else { 2 };
    let first = r.only_launch(&slot);
    assert_launch_is_slot(&r, &first, &s);
    let old_pid = first["pid"].as_u64().unwrap() as u32;

    r.c.kill9(from);
    let t0 = Instant::now();
    // Its vLLM process dies with it (parent-death signal).
    wait_until(
        Duration::from_secs(15),
        &format!("the vLLM process {old_pid} of the killed node{from} is gone"),
        || !pid_alive(old_pid),
    );

    // Within node_lost_after plus a few seconds, it runs on the other node.
    let to_id = r.id(to);
    let moved = r.wait_slot(
        1,
        m,
        Duration::from_millis(NODE_LOST_AFTER_MS) + Duration::from_secs(40),
        &format!("runs on node{to}"),
        |s| s["node_id"] == json!(to_id) && s["state"] == "running",
    );
    eprintln!(
        "the model ran again on node{to} {:.1}s after node{from} was killed (node_lost_after {NODE_LOST_AFTER_MS} ms)",
        t0.elapsed().as_secs_f64()
    );
    let launches = r.launches(&slot);
    assert_eq!(
        launches.len(),
        2,
        "one launch per placement: {}",
        pretty(&launches)
    );
    let second = &launches[1];
    assert_launch_is_slot(&r, second, &moved);
    let new_pid = second["pid"].as_u64().unwrap() as u32;
    assert_ne!(new_pid, old_pid);
    assert_eq!(r.live_fakes(&slot), vec![new_pid]);

    // Restart the killed node: its old process stays gone and nothing runs twice.
    let from_launches_before = r.records(from).len();
    r.restart(from);
    wait_for(
        WAIT,
        &format!("the restarted node{from} sees the slot on node{to} (stale read)"),
        || {
            let v =
                r.c.client(from)
                    .get_json_ok(&format!("{SLOTS}?stale=true"))?;
            let s = v
                .as_array()
                .and_then(|a| a.iter().find(|s| s["model_id"] == json!(m)).cloned())
                .ok_or_else(|| format!("no slot in {v}"))?;
            if s["node_id"] == json!(to_id) {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    );
    let relaunched = |r: &Rig| {
        let after = r.records(from);
        assert_eq!(
            after.len(),
            from_launches_before,
            "the restarted node{from} launched the slot again although it runs on node{to}: {}",
            pretty(&after[from_launches_before.min(after.len())..])
        );
    };
    relaunched(&r);
    // A few ticks of the restarted node's reconciler: still one process, the same one.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            !r.is_ours(old_pid, Some(&slot)),
            "the old process came back"
        );
        assert_eq!(
            r.live_fakes(&slot),
            vec![new_pid],
            "exactly one vLLM process for the slot, the one on node{to}"
        );
        thread::sleep(POLL);
    }
    relaunched(&r);
    let s = r.wait_running(1, m);
    assert_eq!(s["node_id"], json!(to_id), "{s}");
    assert_eq!(r.launches(&slot).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Kill -9 of the leader that runs no model: every vLLM process elsewhere keeps its PID.

#[test]
fn kill9_of_a_leader_without_models_keeps_every_vllm_pid() {
    let mut r = Rig::start(vec![
        NodeSpec::new("none"),
        NodeSpec::new("80GB"),
        NodeSpec::new("80GB"),
    ]);
    // 70 GB each: one per 80 GB GPU, so one on node 2 and one on node 3.
    let models = ["acme/keep-a", "acme/keep-b"];
    for m in models {
        r.create_model(1, &model_json(m, "70GB", &[]));
    }
    let before: Vec<Value> = models.iter().map(|m| r.wait_running(1, m)).collect();
    let nodes: BTreeSet<usize> = before.iter().map(|s| r.node_of(s)).collect();
    assert_eq!(nodes, BTreeSet::from([2, 3]), "{}", pretty(&before));
    let pids: Vec<(String, u32)> = before
        .iter()
        .map(|s| {
            let slot = s["id"].as_str().unwrap().to_string();
            let l = r.only_launch(&slot);
            assert_launch_is_slot(&r, &l, s);
            (slot, l["pid"].as_u64().unwrap() as u32)
        })
        .collect();

    let leader = r.c.wait_leader(&[1, 2, 3]);
    assert_eq!(
        leader, 1,
        "test setup: the bootstrap node (no GPU) should still lead; an election moved it"
    );
    r.c.kill9(1);
    let new_leader = r.c.wait_leader(&[2, 3]);
    eprintln!("node{new_leader} leads after node1 was killed");

    // Watch for the new leader's full node_lost_after and more: nothing moves or restarts.
    let check = |phase: &str| {
        for (slot, pid) in &pids {
            assert_eq!(
                r.live_fakes(slot),
                vec![*pid],
                "{phase}: the vLLM process of {slot} changed"
            );
            assert_eq!(
                r.launches(slot).len(),
                1,
                "{phase}: {slot} was launched again"
            );
        }
    };
    let until = Instant::now() + Duration::from_millis(NODE_LOST_AFTER_MS + 3000);
    while Instant::now() < until {
        check("after the leader was killed");
        thread::sleep(POLL);
    }
    for (i, m) in models.iter().enumerate() {
        let s = r.wait_running(new_leader, m);
        assert_eq!(s["node_id"], before[i]["node_id"], "{m} moved: {s}");
        assert_eq!(s["restarts"], 0, "{m} restarted: {s}");
    }
    check("at the end");
}

// ---------------------------------------------------------------------------------------------
// 5. A crashing vLLM is restarted with backoff; its restarts are counted.

#[test]
fn a_crashing_vllm_is_restarted_with_backoff_and_counted() {
    let r = Rig::start(vec![NodeSpec::new("80GB")]);
    let m = "acme/crashy-model";
    r.create_model(1, &model_json(m, "10GB", &["--fake-crash-after-ms", "300"]));
    let s = r.wait_slot(1, m, WAIT, "has restarts >= 2", |s| {
        s["restarts"].as_u64().is_some_and(|n| n >= 2)
    });
    let slot = s["id"].as_str().unwrap().to_string();
    r.wait_slot(1, m, WAIT, "reports the crash", |s| {
        s["state"] == "failed"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("code 3"))
    });
    let launches = wait_for(WAIT, "three launches are recorded", || {
        let l = r.launches(&slot);
        if l.len() >= 3 {
            Ok(l)
        } else {
            Err(format!("{} launches", l.len()))
        }
    });
    let t: Vec<u64> = launches
        .iter()
        .map(|l| l["started_ms"].as_u64().unwrap())
        .collect();
    let (gap1, gap2) = (t[1] - t[0], t[2] - t[1]);
    eprintln!("gaps between launches: {gap1} ms, {gap2} ms");
    // Each process serves 300 ms before crashing; then a backoff of 1 s, then 2 s.
    assert!(gap1 >= 1200, "relaunched without backoff: {gap1} ms");
    assert!(
        gap2 >= gap1 + 300,
        "the backoff did not grow: {gap1} ms then {gap2} ms"
    );
    let s = r.slot(1, m).unwrap().unwrap();
    assert!(s["restarts"].as_u64().unwrap() >= 2, "{s}");
}

// ---------------------------------------------------------------------------------------------
// 6. Deleting a model stops its process everywhere.

#[test]
fn deleting_a_model_stops_its_process_everywhere() {
    let r = Rig::start(vec![NodeSpec::new("80GB"), NodeSpec::new("80GB")]);
    let (gone, stays) = ("acme/delete-me", "acme/stays");
    r.create_model(1, &model_json(gone, "70GB", &[]));
    r.create_model(1, &model_json(stays, "70GB", &[]));
    let g = r.wait_running(1, gone);
    let s = r.wait_running(1, stays);
    assert_ne!(r.node_of(&g), r.node_of(&s), "one model per node: {g} {s}");
    let g_slot = g["id"].as_str().unwrap().to_string();
    let s_slot = s["id"].as_str().unwrap().to_string();
    let g_pid = r.only_launch(&g_slot)["pid"].as_u64().unwrap() as u32;
    let s_pid = r.only_launch(&s_slot)["pid"].as_u64().unwrap() as u32;

    // Delete through the node that does not run it.
    let via = if r.node_of(&g) == 1 { 2 } else { 1 };
    r.delete_model(via, gone);
    wait_until(
        WAIT,
        &format!("the vLLM process {g_pid} of {gone} is gone"),
        || r.live_fakes(&g_slot).is_empty() && !pid_alive(g_pid),
    );
    for k in [1, 2] {
        wait_until(WAIT, &format!("node{k} lists no slot for {gone}"), || {
            r.slot(k, gone).is_ok_and(|s| s.is_none())
        });
    }
    // The other model is untouched.
    assert_eq!(r.live_fakes(&s_slot), vec![s_pid]);
    let s2 = r.wait_running(1, stays);
    assert_eq!(s2["node_id"], s["node_id"]);
    assert_eq!(r.launches(&s_slot).len(), 1);
    assert_eq!(r.launches(&g_slot).len(), 1, "{gone} was launched again");

    // And the other one too, on the other node.
    r.delete_model(via, stays);
    wait_until(
        WAIT,
        &format!("the vLLM process {s_pid} of {stays} is gone"),
        || r.live_fakes(&s_slot).is_empty() && !pid_alive(s_pid),
    );
    wait_until(WAIT, "no slot is listed", || {
        r.slots(1).is_ok_and(|s| s.is_empty())
    });
}

// ---------------------------------------------------------------------------------------------
// 7. A gated model fails without the right token and is retried at once when it is set.

#[test]
fn a_gated_model_fails_until_the_right_token_is_set() {
    let good = "hf_good";
    let wrong = "hf_wrong_token_0000";
    let r = Rig::start_env(
        vec![NodeSpec::new("80GB")],
        &[("FAKE_VLLM_GATED_TOKEN_SHA256", &sha256_hex(good))],
    );
    let m = "acme/gated-model";
    r.create_model(1, &model_json(m, "10GB", &["--fake-gated"]));

    // No token: it fails, and says the model is gated.
    let s = r.wait_slot(1, m, WAIT, "fails as gated", |s| {
        s["state"] == "failed"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains("gated"))
    });
    assert_eq!(s["hf_token_source"], "none", "{s}");
    let slot = s["id"].as_str().unwrap().to_string();
    let l = r.launches(&slot);
    assert!(!l.is_empty());
    assert!(
        l.iter().all(|l| l["hf_token_present"] == false),
        "{}",
        pretty(&l)
    );
    let tries_without = l.len();

    // A wrong token: retried with it, fails again as gated.
    r.set_token(1, wrong);
    let l = wait_for(WAIT, "a launch with the wrong token", || {
        let l = r.launches(&slot);
        match l.last() {
            Some(last)
                if l.len() > tries_without
                    && last["hf_token_sha256"] == json!(sha256_hex(wrong)) =>
            {
                Ok(l)
            }
            _ => Err(format!("{l:?}")),
        }
    });
    let tries_wrong = l.len();
    r.wait_slot(1, m, WAIT, "fails as gated with the system token", |s| {
        s["state"] == "failed"
            && s["hf_token_source"] == "system"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.to_lowercase().contains("gated"))
    });

    // The right token: retried at once, and it runs.
    let t0 = Instant::now();
    r.set_token(1, good);
    let s = r.wait_running(1, m);
    eprintln!(
        "the gated model ran {:.1}s after the token was set",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(s["hf_token_source"], "system", "{s}");
    assert_eq!(s["last_error"], Value::Null, "{s}");
    let l = r.launches(&slot);
    assert!(l.len() > tries_wrong, "{}", pretty(&l));
    let last = l.last().unwrap();
    assert_eq!(last["hf_token_sha256"], json!(sha256_hex(good)), "{last}");
    assert_launch_is_slot(&r, last, &s);
    r.assert_secret_not_shown(wrong);
}
