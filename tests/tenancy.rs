//! Issue 4, tenancy and the whole token hierarchy, as users see it: real `helix` processes
//! driven over the HTTP API.
//!
//! 1. For one model, tokens set level by level from the bottom (node environment, system,
//!    organization, owner user, model) each reach the next launch of the vLLM test double
//!    (`examples/fake_vllm`, which records the sha256 of the `HF_TOKEN` it got); cleared from
//!    the top, resolution falls back level by level to the environment.
//! 2. The permission table of `docs/security.md`: every route × no key / unknown key / revoked
//!    key / plain user / org owner / admin.
//! 3. A non-admin cannot read or change another user's or another org's token, cannot make
//!    themselves admin, cannot issue or revoke keys of another user.
//! 4. In every test: no token value appears in any file under any data dir, in any node's
//!    output, in any vLLM log, or in any API response body the test received.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MODELS: &str = "/api/v1/helix-models";
const SLOTS: &str = "/api/v1/slots";
const SETTINGS: &str = "/api/v1/system/settings";

// ---------------------------------------------------------------------------------------------
// Helpers: a recording API client, secrets, leak checks

/// Every response body a test received, with what produced it.
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<Seen>>>);

/// What produced a response, and its body.
type Seen = (String, Vec<u8>);

impl Transcript {
    fn record(&self, what: String, body: Vec<u8>) {
        self.0.lock().unwrap().push((what, body));
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A client for one node and one key that records every response it gets.
#[derive(Clone)]
struct Api {
    client: Client,
    who: String,
    seen: Transcript,
}

impl Api {
    fn new(addr: &str, key: Option<&str>, who: &str, seen: &Transcript) -> Api {
        Api {
            client: Client::new(addr, key),
            who: who.to_string(),
            seen: seen.clone(),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = self
            .client
            .request(method, path, bytes.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path} as {}: {e}", self.who));
        self.seen.record(
            format!("{method} {path} as {} -> {}", self.who, r.status),
            r.body.clone(),
        );
        r
    }

    /// Sends the request and asserts its status; returns the JSON body (`null` when empty).
    fn expect(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        let r = self.send(method, path, body);
        assert_eq!(
            r.status,
            status,
            "{method} {path} as {}: expected {status}, got {}: {}",
            self.who,
            r.status,
            r.text()
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    fn get_ok(&self, path: &str) -> Value {
        self.expect("GET", path, None, 200)
    }

    /// GET that may fail while the cluster settles: for polling.
    fn poll_json(&self, path: &str) -> Result<Value, String> {
        let r = self.send("GET", path, None);
        if r.status == 200 {
            Ok(r.json())
        } else {
            Err(format!("GET {path}: {}: {}", r.status, r.text()))
        }
    }
}

/// A token value that cannot be mistaken for another one.
fn secret(level: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("hf_tenancy{level}{:x}{:x}", std::process::id(), nanos)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// No secret in any file under any data dir (sled, Raft log, slot logs, ...), in `extra`
/// files, in any node's output, or in any response body the test received.
fn assert_no_leaks(c: &Cluster, seen: &Transcript, secrets: &[String], extra: &[PathBuf]) {
    let mut files: Vec<PathBuf> = extra.to_vec();
    for n in &c.nodes {
        files.extend(files_under(&n.data_dir));
        files.push(n.log_path.clone());
    }
    assert!(files.len() > 4, "expected data dirs and logs to scan");
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        for s in secrets {
            assert!(
                !contains_bytes(&bytes, s.as_bytes()),
                "a token ({}...) was found in {}",
                &s[..12],
                f.display()
            );
        }
    }
    let bodies = seen.0.lock().unwrap();
    assert!(!bodies.is_empty(), "no responses were recorded");
    for (what, body) in bodies.iter() {
        for s in secrets {
            assert!(
                !contains_bytes(body, s.as_bytes()),
                "a token ({}...) was found in the response to {what}",
                &s[..12]
            );
        }
    }
}

/// Creates an organization; returns its id.
fn create_org(admin: &Api, name: &str) -> String {
    let v = admin.expect("POST", "/api/v1/orgs", Some(&json!({ "name": name })), 201);
    assert_eq!(v["name"], json!(name), "{v}");
    v["id"].as_str().expect("org id").to_string()
}

/// A user as created: id, key, key id.
struct NewUser {
    id: String,
    key: String,
    key_id: String,
}

fn create_user(admin: &Api, body: Value) -> NewUser {
    let v = admin.expect("POST", "/api/v1/users", Some(&body), 201);
    let s = |f: &str| {
        v[f].as_str()
            .unwrap_or_else(|| panic!("no {f} in {v}"))
            .to_string()
    };
    NewUser {
        id: s("id"),
        key: s("api_key"),
        key_id: s("api_key_id"),
    }
}

/// Issues another key for `user_id`; returns (key id, key).
fn issue_key(api: &Api, user_id: &str) -> (String, String) {
    let v = api.expect(
        "POST",
        &format!("/api/v1/users/{user_id}/api-keys"),
        None,
        201,
    );
    (
        v["id"].as_str().expect("key id").to_string(),
        v["api_key"].as_str().expect("key").to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers: nodes with declared GPUs and the vLLM test double

/// The `fake_vllm` example, built for this profile (once per test process).
fn fake_vllm() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin_dir = Path::new(helix_bin())
            .parent()
            .expect("bin dir")
            .to_path_buf();
        let path = bin_dir.join("examples").join("fake_vllm");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fake_vllm.rs");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(built), Some(written)) = (modified(&path), modified(&source)) {
            if built >= written {
                return path;
            }
        }
        // `cargo test --test tenancy` does not build examples: build it.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "--example",
            "fake_vllm",
            "--manifest-path",
        ])
        .arg(&manifest);
        if bin_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = bin_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        match cmd.status() {
            Ok(st) if st.success() => {}
            other => assert!(
                path.exists(),
                "cannot build examples/fake_vllm ({other:?}) and {} does not exist",
                path.display()
            ),
        }
        path
    })
}

/// Starts node `k` (`node start`, or `node join` via `join_via`) with declared `gpus` and
/// `vllm` as its vLLM command, waits for `ready`, and learns its id. The first node started
/// this way provides the admin key and the join token.
fn start_node(c: &mut Cluster, k: usize, join_via: Option<usize>, gpus: &str, vllm: &str) {
    let mut args: Vec<String> = match join_via {
        None => vec!["node".into(), "start".into()],
        Some(via) => vec![
            "node".into(),
            "join".into(),
            format!("http://{}", c.node(via).api_addr),
            "--token".into(),
            c.join_token.clone(),
        ],
    };
    args.extend(c.args_with_gpus(k, gpus));
    args.extend(["--vllm-command".into(), vllm.into()]);
    c.spawn(k, &args);
    c.wait_ready(k);
    if join_via.is_none() {
        let dd = c.node(k).data_dir.clone();
        let read = |f: &str| {
            std::fs::read_to_string(dd.join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        c.admin_key = read("admin.key");
        c.join_token = read("join.token");
    }
    let client = c.client(k);
    let id = wait_for(WAIT, &format!("node{k} reports its id"), || {
        let v = client.get_json_ok("/api/v1/system/config")?;
        v["node_id"].as_u64().ok_or_else(|| v.to_string())
    });
    c.node_mut(k).id = Some(id);
}

/// The launches of `model` the test double recorded, oldest first.
fn launches(record_dir: &Path, model: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(record_dir.join("launches.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["model"] == json!(model))
        .collect()
}

/// Whether `pid` is a live (not exited) process.
fn pid_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// The slot of `model`, if the cluster has one.
fn slot_of(api: &Api, model: &str) -> Result<Option<Value>, String> {
    let v = api.poll_json(SLOTS)?;
    Ok(v.as_array()
        .ok_or_else(|| format!("slots: {v}"))?
        .iter()
        .find(|s| s["model_id"] == json!(model))
        .cloned())
}

// ---------------------------------------------------------------------------------------------
// 1 + 4. The token hierarchy for one model, and no token anywhere

/// Forces a fresh launch of `model` (prewarm off: its slot is removed and its process
/// stopped; prewarm on: placed again, launched again), waits until it runs, and returns the
/// new launch record and the slot.
fn relaunch(admin: &Api, record_dir: &Path, model: &str) -> (Value, Value) {
    let path = format!("{MODELS}/{model}");
    let before = launches(record_dir, model);
    let last_pid = before.last().and_then(|l| l["pid"].as_u64());
    admin.expect("PUT", &path, Some(&json!({ "prewarm": false })), 200);
    wait_for(
        WAIT,
        &format!("the slot of {model} is removed"),
        || match slot_of(admin, model)? {
            None => Ok(()),
            Some(s) => Err(s.to_string()),
        },
    );
    if let Some(pid) = last_pid {
        wait_until(
            WAIT,
            &format!("the vLLM process {pid} of {model} is stopped"),
            || !pid_alive(pid),
        );
    }
    admin.expect("PUT", &path, Some(&json!({ "prewarm": true })), 200);
    wait_running(admin, record_dir, model, before.len())
}

/// Waits for a launch of `model` after the first `after` ones, and for its slot to run.
fn wait_running(admin: &Api, record_dir: &Path, model: &str, after: usize) -> (Value, Value) {
    let launch = wait_for(WAIT, &format!("{model} is launched again"), || {
        let all = launches(record_dir, model);
        if all.len() > after {
            Ok(all.last().cloned().unwrap())
        } else {
            Err(format!("{} launches recorded", all.len()))
        }
    });
    let slot = wait_for(
        WAIT,
        &format!("the slot of {model} runs"),
        || match slot_of(admin, model)? {
            Some(s) if s["state"] == json!("running") => Ok(s),
            other => Err(format!("{other:?}")),
        },
    );
    // The last launch is the one that runs (a launch may have been retried meanwhile).
    let launch = launches(record_dir, model)
        .last()
        .cloned()
        .unwrap_or(launch);
    (launch, slot)
}

#[test]
fn each_token_level_reaches_the_launch_and_no_token_leaks() {
    let tmp_records = tempfile::tempdir().expect("tempdir");
    let record_dir = tmp_records.path().to_path_buf();
    let vllm = fake_vllm().display().to_string();

    let env1 = secret("envone");
    let env2 = secret("envtwo");
    let system = secret("system");
    let org_token = secret("org");
    let user_token = secret("user");
    let model_token = secret("model");

    // Node 1 runs the model. Node 2 has no GPUs: it takes the API calls, so tokens are sealed
    // there and opened on node 1. Each node has its own HF_TOKEN; a launch must use the
    // environment of the node that launches.
    let mut c = Cluster::empty(None);
    c.env = vec![
        (
            "FAKE_VLLM_RECORD_DIR".into(),
            record_dir.display().to_string(),
        ),
        ("HF_TOKEN".into(), env1.clone()),
    ];
    let k1 = c.add_node();
    start_node(&mut c, k1, None, "80GB", &vllm);
    c.env[1].1 = env2.clone();
    let k2 = c.add_node();
    start_node(&mut c, k2, Some(k1), "none", &vllm);
    c.wait_members_settled();

    let seen = Transcript::default();
    let admin = Api::new(&c.node(k2).api_addr, Some(&c.admin_key), "admin", &seen);
    let org = create_org(&admin, "acme");
    let alice = create_user(
        &admin,
        json!({"name": "alice", "organization_id": org, "org_role": "owner"}),
    );
    let alice_api = Api::new(&c.node(k2).api_addr, Some(&alice.key), "alice", &seen);
    // Alice also talks to node 1.
    let alice_api1 = Api::new(&c.node(k1).api_addr, Some(&alice.key), "alice@1", &seen);

    let model = "acme/gated-model";
    let created = admin.expect(
        "POST",
        MODELS,
        Some(&json!({
            "id": model, "name": "gated", "memory": "10GB", "prewarm": true,
            "owner_user_id": alice.id, "organization_id": org,
            // The double prints the token it got: the slot log must show it redacted.
            "runtime_args": ["--fake-echo-token"],
        })),
        201,
    );
    assert_eq!(created["owner_user_id"], json!(alice.id), "{created}");
    assert_eq!(created["organization_id"], json!(org), "{created}");
    assert_eq!(created["huggingface_token_set"], json!(false), "{created}");

    let token_source = format!("{MODELS}/{model}/token-source");
    let expect_level = |source: &str, token: &str, launch: &Value, slot: &Value| {
        assert_eq!(
            launch["hf_token_sha256"],
            json!(sha256_hex(token)),
            "the launch should get the {source} token: {launch}"
        );
        assert_eq!(launch["hf_token_present"], json!(true), "{launch}");
        assert_eq!(slot["hf_token_source"], json!(source), "slot: {slot}");
        assert_eq!(
            slot["node_id"].as_u64(),
            c.node(k1).id,
            "the slot runs on node1: {slot}"
        );
        let ts = alice_api.get_ok(&token_source);
        assert_eq!(ts["source"], json!(source), "token-source (owner): {ts}");
        let ts = admin.get_ok(&token_source);
        assert_eq!(ts["source"], json!(source), "token-source (admin): {ts}");
        match source {
            "user" => assert_eq!(ts["user_id"], json!(alice.id), "{ts}"),
            "organization" => assert_eq!(ts["organization_id"], json!(org), "{ts}"),
            _ => {}
        }
    };

    // Environment: the launching node's own HF_TOKEN.
    let (launch, slot) = wait_running(&admin, &record_dir, model, 0);
    expect_level("environment", &env1, &launch, &slot);
    let argv = launch["argv"].to_string();
    assert!(!argv.contains(&env1), "the token must not be in argv");

    // Bottom up: system, organization, user, model.
    let v = admin.expect(
        "PUT",
        SETTINGS,
        Some(&json!({ "huggingface_token": system })),
        200,
    );
    assert_eq!(v["huggingface_token_source"], json!("database"), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("system", &system, &launch, &slot);

    let org_settings = format!("/api/v1/orgs/{org}/settings");
    let v = alice_api.expect(
        "PUT",
        &org_settings,
        Some(&json!({ "huggingface_token": org_token })),
        200,
    );
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("organization", &org_token, &launch, &slot);

    let v = alice_api1.expect(
        "PUT",
        "/api/v1/users/me/settings",
        Some(&json!({ "huggingface_token": user_token })),
        200,
    );
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    assert_eq!(v["id"], json!(alice.id), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("user", &user_token, &launch, &slot);

    let v = admin.expect(
        "PUT",
        &format!("{MODELS}/{model}"),
        Some(&json!({ "huggingface_token": model_token })),
        200,
    );
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("model", &model_token, &launch, &slot);

    // Top down: clearing a level falls through to the next.
    let v = admin.expect(
        "PUT",
        &format!("{MODELS}/{model}"),
        Some(&json!({ "huggingface_token": "" })),
        200,
    );
    assert_eq!(v["huggingface_token_set"], json!(false), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("user", &user_token, &launch, &slot);

    alice_api.expect(
        "PUT",
        &format!("/api/v1/users/{}/settings", alice.id),
        Some(&json!({ "huggingface_token": "" })),
        200,
    );
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("organization", &org_token, &launch, &slot);

    let v = admin.expect(
        "PUT",
        &org_settings,
        Some(&json!({ "huggingface_token": "" })),
        200,
    );
    assert_eq!(v["huggingface_token_set"], json!(false), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("system", &system, &launch, &slot);

    let v = admin.expect(
        "PUT",
        SETTINGS,
        Some(&json!({ "huggingface_token": "" })),
        200,
    );
    assert_eq!(v["huggingface_token_source"], json!("environment"), "{v}");
    let (launch, slot) = relaunch(&admin, &record_dir, model);
    expect_level("environment", &env1, &launch, &slot);

    // The vLLM log exists and shows the echoed token redacted.
    let slot_id = slot["id"].as_str().expect("slot id").to_string();
    let vllm_log = c
        .node(k1)
        .data_dir
        .join("slots")
        .join(&slot_id)
        .join("vllm.log");
    let log = std::fs::read_to_string(&vllm_log)
        .unwrap_or_else(|e| panic!("read {}: {e}", vllm_log.display()));
    assert!(
        log.contains("token is ***"),
        "the echoed token should appear redacted in {}",
        vllm_log.display()
    );

    // The audit log names every change of a token (who, what, which level), never the value.
    let audit = admin.get_ok("/api/v1/audit");
    let entries = audit.as_array().expect("audit is an array");
    for (kind, level, target, actor) in [
        ("hf_token_set", "system", None, None),
        ("hf_token_set", "organization", Some(&org), Some(&alice.id)),
        ("hf_token_set", "user", Some(&alice.id), Some(&alice.id)),
        ("hf_token_set", "model", Some(&model.to_string()), None),
        ("hf_token_cleared", "model", Some(&model.to_string()), None),
        ("hf_token_cleared", "user", Some(&alice.id), Some(&alice.id)),
        ("hf_token_cleared", "organization", Some(&org), None),
        ("hf_token_cleared", "system", None, None),
    ] {
        let found = entries.iter().any(|e| {
            e["kind"] == json!(kind)
                && e["level"] == json!(level)
                && target.is_none_or(|t| e["target"] == json!(t))
                && actor.is_none_or(|a| e["actor_user_id"] == json!(a))
        });
        assert!(found, "no audit entry {kind}/{level}/{target:?}: {audit}");
    }
    // Non-admins may not read it.
    alice_api.expect("GET", "/api/v1/audit", None, 403);

    // `helix audit list` shows the same, and no value.
    let out = Command::new(helix_bin())
        .args(["--output", "json", "audit", "list"])
        .env("HELIX_URL", format!("http://{}", c.node(k1).api_addr))
        .env("HELIX_API_KEY", &c.admin_key)
        .env_remove("HF_TOKEN")
        .output()
        .expect("run helix audit list");
    assert!(out.status.success(), "helix audit list: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("hf_token_cleared"), "{stdout}");
    seen.record("helix audit list".into(), out.stdout.clone());
    seen.record("helix audit list (stderr)".into(), out.stderr.clone());

    // A few more reads that talk about tokens, to have them checked too.
    for api in [&admin, &alice_api, &alice_api1] {
        api.get_ok(&format!("{MODELS}/{model}"));
        api.get_ok(MODELS);
        api.get_ok(SLOTS);
        api.get_ok("/api/v1/users/me/settings");
        api.get_ok(&org_settings);
        api.get_ok("/api/v1/users");
        api.get_ok("/api/v1/orgs");
        api.get_ok("/api/v1/nodes");
    }
    admin.get_ok(SETTINGS);
    admin.get_ok("/api/v1/system/config");

    let records = record_dir.join("launches.jsonl");
    assert_no_leaks(
        &c,
        &seen,
        &[env1, env2, system, org_token, user_token, model_token],
        &[records],
    );
    eprintln!("checked {} responses", seen.len());
}

// ---------------------------------------------------------------------------------------------
// 2. The permission table of docs/security.md

/// Who calls, in the order of the table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    NoKey,
    UnknownKey,
    RevokedKey,
    User,
    OrgOwner,
    Admin,
}

const CALLERS: [Who; 6] = [
    Who::NoKey,
    Who::UnknownKey,
    Who::RevokedKey,
    Who::User,
    Who::OrgOwner,
    Who::Admin,
];

/// What the table's rows need to name: the caller's own ids and other people's.
struct Fixture {
    org_a: String,
    org_b: String,
    /// Owned by the org owner, in org A.
    owned_model: String,
    /// Owned by the admin, in org A.
    admin_model: String,
    /// Owned by the plain member, in org A.
    users_model: String,
    user: NewUser,
    owner: NewUser,
    revoked: NewUser,
    admin_id: String,
    /// A member of org B, unrelated to every caller.
    victim: NewUser,
    /// Spare keys each caller may revoke: (key id) per caller index.
    own_spare: Vec<String>,
    /// Someone else's key per caller index.
    others_key: Vec<String>,
}

impl Fixture {
    fn self_id(&self, who: Who) -> String {
        match who {
            Who::NoKey | Who::UnknownKey => "me".into(),
            Who::RevokedKey => self.revoked.id.clone(),
            Who::User => self.user.id.clone(),
            Who::OrgOwner => self.owner.id.clone(),
            Who::Admin => self.admin_id.clone(),
        }
    }
    /// Another user: for the org owner, a member of their own org (owning an org gives no
    /// power over its members' tokens or keys); for everyone else, a member of org B.
    fn other_id(&self, who: Who) -> String {
        match who {
            Who::OrgOwner => self.user.id.clone(),
            _ => self.victim.id.clone(),
        }
    }
}

type RowFn = Box<dyn Fn(&Fixture, usize, Who) -> (String, Option<Value>)>;

struct Row {
    method: &'static str,
    /// The route as docs/security.md names it.
    route: &'static str,
    request: RowFn,
    /// Expected status per caller, in [`CALLERS`] order.
    expect: [u16; 6],
}

fn row(
    method: &'static str,
    route: &'static str,
    expect: [u16; 6],
    request: impl Fn(&Fixture, usize, Who) -> (String, Option<Value>) + 'static,
) -> Row {
    Row {
        method,
        route,
        request: Box::new(request),
        expect,
    }
}

fn fixed(path: &'static str) -> impl Fn(&Fixture, usize, Who) -> (String, Option<Value>) {
    move |_, _, _| (path.to_string(), None)
}

const OPEN: [u16; 6] = [200, 200, 200, 200, 200, 200];
const ANY_KEY: [u16; 6] = [401, 401, 401, 200, 200, 200];
const ADMIN: [u16; 6] = [401, 401, 401, 403, 403, 200];
const ADMIN_201: [u16; 6] = [401, 401, 401, 403, 403, 201];
const ADMIN_204: [u16; 6] = [401, 401, 401, 403, 403, 204];
const SELF: [u16; 6] = [401, 401, 401, 200, 200, 200];
const SELF_201: [u16; 6] = [401, 401, 401, 201, 201, 201];
const SELF_204: [u16; 6] = [401, 401, 401, 204, 204, 204];
const ORG_OWNER: [u16; 6] = [401, 401, 401, 403, 200, 200];
const NO_API_KEY: [u16; 6] = [401, 401, 401, 401, 401, 401];

fn table() -> Vec<Row> {
    vec![
        row("GET", "/healthz", OPEN, fixed("/healthz")),
        row("GET", "/readyz", OPEN, fixed("/readyz")),
        row("GET", "/api/v1/system/settings", ADMIN, fixed(SETTINGS)),
        row("PUT", "/api/v1/system/settings", ADMIN, |_, _, _| {
            (SETTINGS.into(), Some(json!({})))
        }),
        row(
            "GET",
            "/api/v1/system/config",
            ADMIN,
            fixed("/api/v1/system/config"),
        ),
        row(
            "GET",
            "/api/v1/cluster/status",
            ANY_KEY,
            fixed("/api/v1/cluster/status"),
        ),
        row(
            "GET",
            "/api/v1/cluster/join-token",
            ADMIN,
            fixed("/api/v1/cluster/join-token"),
        ),
        // Takes the peer credential, not an API key: every API key is refused.
        row("POST", "/api/v1/cluster/join", NO_API_KEY, |_, _, _| {
            (
                "/api/v1/cluster/join".into(),
                Some(json!({"api_addr": "127.0.0.1:1", "peer_addr": "127.0.0.1:2"})),
            )
        }),
        row("GET", "/api/v1/nodes", ANY_KEY, fixed("/api/v1/nodes")),
        // Admins pass the check; the id names no member, so they get 404 (not 2xx).
        row(
            "DELETE",
            "/api/v1/nodes/{id}",
            [401, 401, 401, 403, 403, 404],
            fixed("/api/v1/nodes/987654"),
        ),
        row("GET", "/api/v1/slots", ANY_KEY, fixed(SLOTS)),
        row("GET", "/api/v1/helix-models", ANY_KEY, fixed(MODELS)),
        row("POST", "/api/v1/helix-models", ADMIN_201, |_, i, _| {
            let id = format!("table/new-{i}");
            (MODELS.into(), Some(json!({ "id": id, "name": id })))
        }),
        row("GET", "/api/v1/helix-models/{id}", ANY_KEY, |f, _, _| {
            (format!("{MODELS}/{}", f.owned_model), None)
        }),
        row("PUT", "/api/v1/helix-models/{id}", ADMIN, |f, i, _| {
            (
                format!("{MODELS}/{}", f.owned_model),
                Some(json!({ "description": format!("edit {i}") })),
            )
        }),
        row(
            "DELETE",
            "/api/v1/helix-models/{id}",
            ADMIN_204,
            |_, i, _| (format!("{MODELS}/table/doomed-{i}"), None),
        ),
        row(
            "GET",
            "/api/v1/helix-models/{id}/token-source (caller owns the model)",
            SELF,
            |f, _, w| {
                let model = match w {
                    Who::User => &f.users_model,
                    Who::Admin => &f.admin_model,
                    _ => &f.owned_model,
                };
                (format!("{MODELS}/{model}/token-source"), None)
            },
        ),
        row(
            "GET",
            "/api/v1/helix-models/{id}/token-source (caller does not own the model)",
            ADMIN,
            |f, _, w| {
                // For the org owner, a model of their own org owned by someone else.
                let model = match w {
                    Who::OrgOwner => &f.admin_model,
                    _ => &f.owned_model,
                };
                (format!("{MODELS}/{model}/token-source"), None)
            },
        ),
        row("GET", "/api/v1/orgs", ANY_KEY, fixed("/api/v1/orgs")),
        row("POST", "/api/v1/orgs", ADMIN_201, |_, i, _| {
            (
                "/api/v1/orgs".into(),
                Some(json!({ "name": format!("table-org-{i}") })),
            )
        }),
        row(
            "GET",
            "/api/v1/orgs/{id}/settings (caller's org)",
            ORG_OWNER,
            |f, _, _| (format!("/api/v1/orgs/{}/settings", f.org_a), None),
        ),
        row(
            "PUT",
            "/api/v1/orgs/{id}/settings (caller's org)",
            ORG_OWNER,
            |f, _, _| {
                (
                    format!("/api/v1/orgs/{}/settings", f.org_a),
                    Some(json!({})),
                )
            },
        ),
        row(
            "GET",
            "/api/v1/orgs/{id}/settings (another org)",
            ADMIN,
            |f, _, _| (format!("/api/v1/orgs/{}/settings", f.org_b), None),
        ),
        row(
            "PUT",
            "/api/v1/orgs/{id}/settings (another org)",
            ADMIN,
            |f, _, _| {
                (
                    format!("/api/v1/orgs/{}/settings", f.org_b),
                    Some(json!({})),
                )
            },
        ),
        row("GET", "/api/v1/users", ANY_KEY, fixed("/api/v1/users")),
        row("POST", "/api/v1/users", ADMIN_201, |_, i, _| {
            (
                "/api/v1/users".into(),
                Some(json!({ "name": format!("table-user-{i}") })),
            )
        }),
        row("GET", "/api/v1/users/{id} (self)", SELF, |f, _, w| {
            (format!("/api/v1/users/{}", f.self_id(w)), None)
        }),
        row("GET", "/api/v1/users/me", SELF, fixed("/api/v1/users/me")),
        row(
            "GET",
            "/api/v1/users/{id} (another user)",
            ADMIN,
            |f, _, w| (format!("/api/v1/users/{}", f.other_id(w)), None),
        ),
        row(
            "GET",
            "/api/v1/users/{id}/settings (self)",
            SELF,
            |f, _, w| (format!("/api/v1/users/{}/settings", f.self_id(w)), None),
        ),
        row(
            "PUT",
            "/api/v1/users/{id}/settings (self)",
            SELF,
            |f, _, w| {
                (
                    format!("/api/v1/users/{}/settings", f.self_id(w)),
                    Some(json!({})),
                )
            },
        ),
        row(
            "GET",
            "/api/v1/users/{id}/settings (another user)",
            ADMIN,
            |f, _, w| (format!("/api/v1/users/{}/settings", f.other_id(w)), None),
        ),
        row(
            "PUT",
            "/api/v1/users/{id}/settings (another user)",
            ADMIN,
            |f, _, w| {
                (
                    format!("/api/v1/users/{}/settings", f.other_id(w)),
                    Some(json!({})),
                )
            },
        ),
        row(
            "POST",
            "/api/v1/users/{id}/api-keys (self)",
            SELF_201,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.self_id(w)), None),
        ),
        row(
            "POST",
            "/api/v1/users/{id}/api-keys (another user)",
            ADMIN_201,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.other_id(w)), None),
        ),
        row(
            "DELETE",
            "/api/v1/api-keys/{key_id} (caller's own key)",
            SELF_204,
            |f, i, _| (format!("/api/v1/api-keys/{}", f.own_spare[i]), None),
        ),
        row(
            "DELETE",
            "/api/v1/api-keys/{key_id} (another user's key)",
            ADMIN_204,
            |f, i, _| (format!("/api/v1/api-keys/{}", f.others_key[i]), None),
        ),
        row("GET", "/api/v1/audit", ADMIN, fixed("/api/v1/audit")),
        row(
            "GET",
            "(any other path)",
            [404, 404, 404, 404, 404, 404],
            fixed("/api/v1/no-such-route"),
        ),
    ]
}

#[test]
fn permission_table_holds_for_every_route_and_caller() {
    let c = Cluster::new(2);
    let seen = Transcript::default();
    // The table is walked on node 2 (writes are carried out on the leader wherever it is).
    let addr2 = c.node(2).api_addr.clone();
    let admin = Api::new(&c.node(1).api_addr, Some(&c.admin_key), "admin", &seen);
    let admin_id = admin.get_ok("/api/v1/users/me")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let org_a = create_org(&admin, "table-a");
    let org_b = create_org(&admin, "table-b");
    let user = create_user(
        &admin,
        json!({"name": "table-member", "organization_id": org_a}),
    );
    let owner = create_user(
        &admin,
        json!({"name": "table-owner", "organization_id": org_a, "org_role": "owner"}),
    );
    let revoked = create_user(
        &admin,
        json!({"name": "table-revoked", "organization_id": org_a}),
    );
    let victim = create_user(
        &admin,
        json!({"name": "table-victim", "organization_id": org_b}),
    );
    let owned_model = "table/owned".to_string();
    admin.expect(
        "POST",
        MODELS,
        Some(
            &json!({"id": owned_model, "name": "owned", "owner_user_id": owner.id,
                      "organization_id": org_a}),
        ),
        201,
    );
    let admin_model = "table/admins".to_string();
    admin.expect(
        "POST",
        MODELS,
        Some(&json!({"id": admin_model, "name": "admins", "organization_id": org_a})),
        201,
    );
    let users_model = "table/users".to_string();
    admin.expect(
        "POST",
        MODELS,
        Some(
            &json!({"id": users_model, "name": "users", "owner_user_id": user.id,
                      "organization_id": org_a}),
        ),
        201,
    );
    for i in 0..CALLERS.len() {
        let id = format!("table/doomed-{i}");
        admin.expect("POST", MODELS, Some(&json!({"id": id, "name": id})), 201);
    }
    let mut own_spare = Vec::new();
    let mut others_key = Vec::new();
    let (victim_spare, _) = issue_key(&admin, &victim.id);
    let (victim_spare_for_admin, _) = issue_key(&admin, &victim.id);
    let (member_spare_for_owner, _) = issue_key(&admin, &user.id);
    for who in CALLERS {
        let own = match who {
            Who::User => issue_key(&admin, &user.id).0,
            Who::OrgOwner => issue_key(&admin, &owner.id).0,
            Who::Admin => issue_key(&admin, &admin_id).0,
            _ => victim_spare.clone(),
        };
        own_spare.push(own);
        others_key.push(match who {
            Who::Admin => victim_spare_for_admin.clone(),
            Who::OrgOwner => member_spare_for_owner.clone(),
            _ => victim_spare.clone(),
        });
    }

    // Revocation: through node 1; a linearizable read and a write on node 2 refuse the key
    // at once, without waiting.
    let revoked_on_2 = Api::new(&addr2, Some(&revoked.key), "revoked@2", &seen);
    revoked_on_2.get_ok(MODELS);
    admin.expect(
        "DELETE",
        &format!("/api/v1/api-keys/{}", revoked.key_id),
        None,
        204,
    );
    revoked_on_2.expect("GET", MODELS, None, 401);
    revoked_on_2.expect("PUT", "/api/v1/users/me/settings", Some(&json!({})), 401);
    // Local-only reads check node 2's replica, which follows within a moment.
    wait_until(WAIT, "node2 refuses the revoked key everywhere", || {
        revoked_on_2
            .send("GET", "/api/v1/cluster/status", None)
            .status
            == 401
    });
    // Revoking twice: the key is gone.
    admin.expect(
        "DELETE",
        &format!("/api/v1/api-keys/{}", revoked.key_id),
        None,
        404,
    );

    let fixture = Fixture {
        org_a,
        org_b,
        owned_model,
        admin_model,
        users_model,
        user,
        owner,
        revoked,
        admin_id,
        victim,
        own_spare,
        others_key,
    };
    let unknown_key = format!("hx_{}", "5a".repeat(32));
    let callers: Vec<Api> = CALLERS
        .iter()
        .map(|who| {
            let key = match who {
                Who::NoKey => None,
                Who::UnknownKey => Some(unknown_key.as_str()),
                Who::RevokedKey => Some(fixture.revoked.key.as_str()),
                Who::User => Some(fixture.user.key.as_str()),
                Who::OrgOwner => Some(fixture.owner.key.as_str()),
                Who::Admin => Some(c.admin_key.as_str()),
            };
            Api::new(&addr2, key, &format!("{who:?}"), &seen)
        })
        .collect();

    let mut failures = Vec::new();
    let rows = table();
    for r in &rows {
        for (i, who) in CALLERS.iter().enumerate() {
            let (path, body) = (r.request)(&fixture, i, *who);
            let resp = callers[i].send(r.method, &path, body.as_ref());
            if resp.status != r.expect[i] {
                failures.push(format!(
                    "{} {} as {who:?}: expected {}, got {}: {}",
                    r.method,
                    r.route,
                    r.expect[i],
                    resp.status,
                    resp.text()
                ));
            } else if resp.status >= 400 {
                // Errors are always {"error": "..."}, except the plain-text 404 of no route.
                let _ = resp.error_message();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls disagree with the table:\n{}",
        failures.len(),
        rows.len() * CALLERS.len(),
        failures.join("\n")
    );

    // The writes the table allowed took effect, the refused ones did not.
    let models = admin.get_ok(MODELS);
    let ids: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for (i, who) in CALLERS.iter().enumerate() {
        let admin_ok = *who == Who::Admin;
        assert_eq!(
            ids.contains(&format!("table/new-{i}").as_str()),
            admin_ok,
            "model created by {who:?}"
        );
        assert_eq!(
            ids.contains(&format!("table/doomed-{i}").as_str()),
            !admin_ok,
            "model deleted by {who:?}"
        );
    }

    // The join route takes the peer credential derived from the join token.
    let credential = helix::crypto::ClusterSecret::from_join_token(&c.join_token)
        .expect("join token")
        .peer_credential();
    let peer_cred = Api::new(&addr2, Some(&credential), "peer-credential", &seen);
    let v = peer_cred.expect(
        "POST",
        "/api/v1/cluster/join",
        Some(&json!({"api_addr": "127.0.0.1:1", "peer_addr": "127.0.0.1:2", "add": false})),
        200,
    );
    assert!(v["node_id"].as_u64().is_some(), "{v}");
    // ... and the credential is no API key.
    peer_cred.expect("GET", MODELS, None, 401);
    // The peer port refuses API keys, even an admin's.
    let peer_addr = c.node(2).peer_addr.clone();
    for key in [None, Some(c.admin_key.as_str())] {
        let r = Api::new(&peer_addr, key, "api-key@peer", &seen).send(
            "POST",
            "/raft/write",
            Some(&json!({})),
        );
        assert_eq!(r.status, 401, "peer port with {key:?}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Non-admins stay in their lane

#[test]
fn non_admins_cannot_touch_other_tenants_or_become_admin() {
    let c = Cluster::new(1);
    let seen = Transcript::default();
    let addr = c.node(1).api_addr.clone();
    let admin = Api::new(&addr, Some(&c.admin_key), "admin", &seen);

    let org_a = create_org(&admin, "lane-a");
    let org_b = create_org(&admin, "lane-b");
    let alice = create_user(
        &admin,
        json!({"name": "alice", "organization_id": org_a, "org_role": "owner"}),
    );
    let carol = create_user(&admin, json!({"name": "carol", "organization_id": org_a}));
    let bob = create_user(
        &admin,
        json!({"name": "bob", "organization_id": org_b, "org_role": "owner"}),
    );
    let dave = create_user(&admin, json!({"name": "dave"}));
    let as_alice = Api::new(&addr, Some(&alice.key), "alice", &seen);
    let as_carol = Api::new(&addr, Some(&carol.key), "carol", &seen);
    let as_bob = Api::new(&addr, Some(&bob.key), "bob", &seen);
    let as_dave = Api::new(&addr, Some(&dave.key), "dave", &seen);

    // Tokens the attackers will go after, set by their rightful owners.
    let bob_token = secret("bob");
    let org_b_token = secret("orgb");
    let org_a_token = secret("orga");
    let carol_token = secret("carol");
    let attempt = secret("attack");
    let user_settings = |id: &str| format!("/api/v1/users/{id}/settings");
    let org_settings = |id: &str| format!("/api/v1/orgs/{id}/settings");
    let set = |t: &str| json!({ "huggingface_token": t });
    as_bob.expect("PUT", &user_settings(&bob.id), Some(&set(&bob_token)), 200);
    as_bob.expect("PUT", &org_settings(&org_b), Some(&set(&org_b_token)), 200);
    as_alice.expect("PUT", &org_settings(&org_a), Some(&set(&org_a_token)), 200);
    as_carol.expect(
        "PUT",
        "/api/v1/users/me/settings",
        Some(&set(&carol_token)),
        200,
    );
    let audit_len = admin.get_ok("/api/v1/audit").as_array().unwrap().len();

    // Another user's token: neither readable nor changeable (set or clear), not even by
    // the owner of the org the user belongs to.
    for (api, target) in [
        (&as_carol, &alice.id),
        (&as_carol, &bob.id),
        (&as_alice, &bob.id),
        (&as_alice, &carol.id),
        (&as_dave, &carol.id),
        (&as_bob, &alice.id),
    ] {
        api.expect("GET", &user_settings(target), None, 403);
        api.expect("PUT", &user_settings(target), Some(&set(&attempt)), 403);
        api.expect("PUT", &user_settings(target), Some(&set("")), 403);
        api.expect("GET", &format!("/api/v1/users/{target}"), None, 403);
        // ... nor can they issue a key for them.
        api.expect(
            "POST",
            &format!("/api/v1/users/{target}/api-keys"),
            None,
            403,
        );
    }
    // Another org's token; a plain member's own org token; a user with no org at all.
    for (api, org) in [
        (&as_alice, &org_b),
        (&as_bob, &org_a),
        (&as_carol, &org_a),
        (&as_carol, &org_b),
        (&as_dave, &org_a),
    ] {
        api.expect("GET", &org_settings(org), None, 403);
        api.expect("PUT", &org_settings(org), Some(&set(&attempt)), 403);
        api.expect("PUT", &org_settings(org), Some(&set("")), 403);
    }
    // Nobody else's key can be revoked by a non-admin.
    for (api, key_id) in [
        (&as_carol, &alice.key_id),
        (&as_alice, &carol.key_id),
        (&as_dave, &bob.key_id),
    ] {
        api.expect("DELETE", &format!("/api/v1/api-keys/{key_id}"), None, 403);
    }

    // Nothing changed: every token is still set, no audit entry was written, every key works.
    for (path, who) in [
        (user_settings(&bob.id), "bob"),
        (user_settings(&carol.id), "carol"),
        (org_settings(&org_a), "org a"),
        (org_settings(&org_b), "org b"),
    ] {
        let v = admin.get_ok(&path);
        assert_eq!(v["huggingface_token_set"], json!(true), "{who}: {v}");
    }
    assert_eq!(
        admin.get_ok("/api/v1/audit").as_array().unwrap().len(),
        audit_len,
        "refused calls must not change anything"
    );
    for api in [&as_alice, &as_carol, &as_bob, &as_dave] {
        api.get_ok("/api/v1/users/me");
    }

    // Nobody makes themselves admin: creating users is for admins, with or without `admin`,
    // and no route changes the flag of an existing user.
    for api in [&as_carol, &as_alice, &as_dave] {
        api.expect(
            "POST",
            "/api/v1/users",
            Some(&json!({"name": "escalate", "admin": true})),
            403,
        );
        api.expect(
            "POST",
            "/api/v1/users",
            Some(&json!({"name": "escalate", "organization_id": org_a, "org_role": "owner"})),
            403,
        );
        api.expect("POST", "/api/v1/orgs", Some(&json!({"name": "mine"})), 403);
        api.expect("PUT", SETTINGS, Some(&set(&attempt)), 403);
        api.expect("GET", "/api/v1/cluster/join-token", None, 403);
    }
    for method in ["PUT", "PATCH", "POST"] {
        let r = as_carol.send(method, "/api/v1/users/me", Some(&json!({"admin": true})));
        assert!(
            r.status == 404 || r.status == 405,
            "{method} /api/v1/users/me: expected no such route, got {}: {}",
            r.status,
            r.text()
        );
    }
    let r = as_carol.send(
        "PUT",
        "/api/v1/users/me/settings",
        Some(&json!({"admin": true})),
    );
    assert_eq!(r.status, 400, "unknown field `admin`: {}", r.text());
    let me = as_carol.get_ok("/api/v1/users/me");
    assert_eq!(me["admin"], json!(false), "{me}");
    assert_eq!(me["org_role"], json!("member"), "{me}");

    // Non-admins see only themselves and their own org.
    let users = as_carol.get_ok("/api/v1/users");
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, vec![carol.id.as_str()], "carol lists users: {users}");
    let orgs = as_carol.get_ok("/api/v1/orgs");
    let ids: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, vec![org_a.as_str()], "carol lists orgs: {orgs}");
    assert!(
        as_dave
            .get_ok("/api/v1/orgs")
            .as_array()
            .unwrap()
            .is_empty(),
        "dave has no org"
    );

    // A model's token source is for admins and the model's owner only.
    admin.expect(
        "POST",
        MODELS,
        Some(
            &json!({"id": "lane/alices", "name": "a", "owner_user_id": alice.id,
                      "organization_id": org_a}),
        ),
        201,
    );
    as_alice.get_ok(&format!("{MODELS}/lane/alices/token-source"));
    as_carol.expect(
        "GET",
        &format!("{MODELS}/lane/alices/token-source"),
        None,
        403,
    );
    as_bob.expect(
        "GET",
        &format!("{MODELS}/lane/alices/token-source"),
        None,
        403,
    );
    // ... and only admins write models (a model's token included).
    as_alice.expect(
        "PUT",
        &format!("{MODELS}/lane/alices"),
        Some(&set(&attempt)),
        403,
    );

    // What a user may do with their own keys: issue one, use it, revoke it.
    let (key_id, key) = issue_key(&as_carol, "me");
    let as_carol2 = Api::new(&addr, Some(&key), "carol-key2", &seen);
    as_carol2.get_ok("/api/v1/users/me");
    as_carol.expect("DELETE", &format!("/api/v1/api-keys/{key_id}"), None, 204);
    as_carol2.expect("GET", "/api/v1/users/me", None, 401);
    as_carol.get_ok("/api/v1/users/me");

    assert_no_leaks(
        &c,
        &seen,
        &[bob_token, org_b_token, org_a_token, carol_token, attempt],
        &[],
    );
}
