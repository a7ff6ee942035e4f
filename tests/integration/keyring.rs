//! The keyring: with an external seal key, no data dir or snapshot holds a key that opens a
//! token, and a node without the key runs and seals nothing that needs one; a rotation
//! re-seals every token without changing what a launch gets; `operator compact` takes a
//! replaced token out of every node's storage.

use std::fs;
use std::path::{Path, PathBuf};

use helix::crypto::{ClusterSecret, DataKey, SealKey, SealKeySource, SealedSecret, WrappedKey};
use helix::state::{decode_backup, State};
use rand::RngCore;
use serde_json::{json, Value};

use crate::common::secrets::files_under;
use crate::common::*;

/// A seal key in a file outside every data dir, as a mounted secret would be.
struct SealKeyFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SealKeyFile {
    fn new() -> SealKeyFile {
        let dir = tempfile::Builder::new()
            .prefix("helix-seal-")
            .tempdir()
            .expect("tempdir");
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let path = dir.path().join("seal.key");
        std::fs::write(&path, format!("{}\n", hex::encode(key))).expect("write the seal key");
        SealKeyFile { _dir: dir, path }
    }

    fn env(&self) -> (&'static str, String) {
        ("HELIX_SEAL_KEY_FILE", self.path.display().to_string())
    }
}

fn with_seal_key(spec: NodeSpec, seal: &SealKeyFile) -> NodeSpec {
    let (key, value) = seal.env();
    spec.env(key, &value)
}

/// `helix operator snapshot save` through node `via`, decoded.
fn saved_state(c: &Cluster, via: usize, name: &str) -> (PathBuf, State) {
    let file = c.root().join(name);
    let out = c.cli(
        via,
        &["operator", "snapshot", "save", &file.display().to_string()],
    );
    assert!(out.status.success(), "save failed: {}", transcript(&out));
    let bytes = std::fs::read(&file).expect("the snapshot file");
    (file, decode_backup(&bytes).expect("a valid snapshot").state)
}

/// What a candidate key is tried against: one stored token and the current wrapped key.
struct Lock<'a> {
    sealed: &'a SealedSecret,
    scope: String,
    key_id: u32,
    wrapped: &'a WrappedKey,
}

impl Lock<'_> {
    fn of(state: &State) -> Lock<'_> {
        let (site, sealed) = state.stored_tokens().into_iter().next().expect("a token");
        let keyring = state.keyring.as_ref().expect("a keyring");
        Lock {
            sealed,
            scope: site.scope().seal_label(),
            key_id: keyring.current,
            wrapped: &keyring.keys[&keyring.current].wrapped,
        }
    }

    /// Does `candidate` open the token: as its data key, or as the seal key?
    fn opens(&self, candidate: [u8; 32]) -> bool {
        DataKey::from_bytes(self.sealed.key_id(), candidate)
            .open(self.sealed, &self.scope)
            .is_ok()
            || SealKey::new(candidate, SealKeySource::DataDir)
                .unwrap_key(self.key_id, self.wrapped)
                .is_ok()
    }

    /// 64 hex digits may also be a cluster key, from which the default seal key derives.
    fn opens_as_cluster_key(&self, hex_text: &str) -> bool {
        let Ok(cluster_key) = ClusterSecret::from_hex(hex_text) else {
            return false;
        };
        cluster_key
            .seal_key()
            .unwrap_key(self.key_id, self.wrapped)
            .is_ok()
    }

    /// The offset of the first 32-byte window of `bytes`, raw or written as 64 hex digits,
    /// that opens the token.
    fn key_in(&self, bytes: &[u8]) -> Option<usize> {
        let mut previous: Option<&[u8]> = None;
        for (at, window) in bytes.windows(32).enumerate() {
            // A run of equal bytes (sled's zeroed space) tries one key, not thousands.
            if previous == Some(window) {
                continue;
            }
            previous = Some(window);
            if self.opens(window.try_into().expect("32 bytes")) {
                return Some(at);
            }
        }
        for (at, window) in bytes.windows(64).enumerate() {
            if !window.iter().all(u8::is_ascii_hexdigit) {
                continue;
            }
            let text = std::str::from_utf8(window).expect("hex digits are ASCII");
            let mut candidate = [0u8; 32];
            hex::decode_to_slice(text, &mut candidate).expect("64 hex digits");
            if self.opens(candidate) || self.opens_as_cluster_key(text) {
                return Some(at);
            }
        }
        None
    }
}

/// With `HELIX_SEAL_KEY_FILE`, every byte of every data dir and of a snapshot is tried as a
/// key, raw and as hex, as a data key, the seal key and a cluster key: none opens a token.
/// The same search finds the key in the seal key file, so it would find one elsewhere.
#[test]
fn with_an_external_seal_key_no_data_dir_or_snapshot_holds_a_key_that_opens_a_token() {
    let seal = SealKeyFile::new();
    let mut c = Cluster::builder()
        .node(with_seal_key(NodeSpec::gpus("80GB"), &seal))
        .node(with_seal_key(NodeSpec::none(), &seal))
        .start();
    let token = secret("sealed_away");
    c.set_system_token(2, &token);
    c.create_model(1, &model_json("acme/sealed", "10GB", &[]));
    let slot = c.wait_running(1, "acme/sealed");
    let launch = c.only_launch(slot["id"].as_str().expect("slot id"));
    assert_eq!(launch["hf_token_sha256"], json!(sha256_hex(&token)));
    let keyring = c.client(2).get_ok("/api/v1/operator/keyring");
    assert_eq!(keyring["this_node"]["source"], "file", "{keyring}");
    assert_eq!(keyring["this_node"]["opens_keyring"], true, "{keyring}");

    let (snapshot, state) = saved_state(&c, 2, "backup.helix");
    c.stop(2);
    c.stop(1);
    let lock = Lock::of(&state);
    let mut files: Vec<PathBuf> = c
        .nodes
        .iter()
        .flat_map(|n| files_under(&n.data_dir))
        .collect();
    files.push(snapshot);
    assert!(files.len() > 4, "nothing to search: {files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        if let Some(at) = lock.key_in(&bytes) {
            panic!("{} holds a key that opens a token at {at}", file.display());
        }
    }
    let key_file = std::fs::read(&seal.path).expect("the seal key file");
    assert_eq!(
        lock.key_in(&key_file),
        Some(0),
        "the search finds a key where there is one"
    );
}

fn seal_key_of(c: &Cluster, k: usize) -> Value {
    c.client(k).get_ok(CONFIG)["seal_key"].clone()
}

/// Node 1 restarted on its data dir without the seal key: it runs and answers, says that
/// its seal key does not open the keyring, does not launch the slot that needs the token,
/// and seals no new one. With the key back, the slot runs with its token again.
#[test]
fn a_node_without_the_seal_key_launches_and_seals_nothing_that_needs_a_token() {
    let seal = SealKeyFile::new();
    let mut c = Cluster::builder()
        .node(with_seal_key(NodeSpec::gpus("80GB"), &seal))
        .start();
    let token = secret("needs_key");
    let model = "acme/needs-key";
    c.set_system_token(1, &token);
    c.create_model(1, &model_json(model, "10GB", &[]));
    let slot = c.wait_running(1, model);
    let slot_id = slot["id"].as_str().expect("slot id").to_string();

    c.stop(1);
    c.nodes[0].spec.env.clear();
    c.restart(1);
    let seal_key = seal_key_of(&c, 1);
    assert_eq!(seal_key["source"], "data-dir", "{seal_key}");
    assert_eq!(seal_key["opens_keyring"], false, "{seal_key}");
    let problem = seal_key["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("--seal-key-file"), "{seal_key}");
    assert_eq!(c.client(1).get_ok(CONFIG)["huggingface_token_set"], false);
    let failed = c.wait_slot(1, model, WAIT, "cannot open its token", |s| {
        s["state"] == "failed"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot open its Hugging Face token"))
    });
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("--seal-key-file"),
        "{failed}"
    );
    assert_eq!(c.launches(&slot_id).len(), 1, "launched without its token");
    let refused = c.client(1).put(SETTINGS, &hf_token(&secret("other")));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused
            .error_message()
            .contains("cannot seal the token on this node"),
        "{}",
        refused.text()
    );

    c.stop(1);
    c.nodes[0].spec = with_seal_key(NodeSpec::gpus("80GB"), &seal);
    c.restart(1);
    c.wait_running(1, model);
    let launches = c.launches(&slot_id);
    assert_eq!(launches.len(), 2, "{}", pretty(&launches));
    assert_eq!(launches[1]["hf_token_sha256"], json!(sha256_hex(&token)));
}

/// `helix operator keyring rotate` through a follower: one new key seals every token, the
/// old one is gone from the state, and launches after it get the tokens they got before.
#[test]
fn after_a_rotation_launches_get_the_same_tokens_and_the_old_key_is_gone() {
    let mut c = Cluster::builder()
        .node(NodeSpec::gpus("80GB,80GB"))
        .nodes(1)
        .start();
    let system = secret("system");
    let own = secret("own");
    c.set_system_token(1, &system);
    c.create_model(1, &model_json("acme/shared", "10GB", &[]));
    let mut with_token = model_json("acme/own", "10GB", &[]);
    with_token["huggingface_token"] = json!(own);
    c.create_model(1, &with_token);
    let expected = [("acme/shared", &system), ("acme/own", &own)];
    let slot_ids: Vec<String> = expected
        .iter()
        .map(|(model, _)| c.wait_running(1, model)["id"].as_str().unwrap().to_string())
        .collect();
    let before = c.client(1).get_ok("/api/v1/operator/keyring");
    assert_eq!(before["current"], 1, "{before}");

    let out = c.cli(2, &["operator", "keyring", "rotate"]);
    assert!(out.status.success(), "rotate failed: {}", transcript(&out));
    let list = c.cli(1, &["operator", "keyring", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("opens the keyring"),
        "{}",
        transcript(&list)
    );
    let after = c.client(1).get_ok("/api/v1/operator/keyring");
    let keys: Vec<(u64, u64)> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_u64().unwrap(), k["secrets"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [(2, 2)],
        "only the new key, sealing both tokens: {after}"
    );
    let (_, state) = saved_state(&c, 1, "rotated.helix");
    let keyring = state.keyring.as_ref().unwrap();
    assert_eq!(keyring.keys.keys().copied().collect::<Vec<_>>(), [2]);
    assert!(state.stored_tokens().iter().all(|(_, t)| t.key_id() == 2));

    c.stop(1);
    c.restart(1);
    for ((model, token), slot_id) in expected.iter().zip(&slot_ids) {
        c.wait_running(1, model);
        let launches = c.launches(slot_id);
        assert_eq!(launches.len(), 2, "{}", pretty(&launches));
        assert_eq!(
            launches[1]["hf_token_sha256"],
            json!(sha256_hex(token)),
            "{model} launched with another token after the rotation"
        );
    }
}

/// Every key and value a stopped node's database holds, in every tree: its Raft log, its
/// snapshots, its state. Bytes sled has let go of but not yet reused are not among them (see
/// docs/security.md).
fn stored_bytes(data_dir: &Path) -> Vec<Vec<u8>> {
    let db = sled::open(data_dir.join("sled")).expect("open a stopped node's database");
    let mut out = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).expect("a tree");
        for entry in tree.iter() {
            let (key, value) = entry.expect("an entry");
            out.push(key.to_vec());
            out.push(value.to_vec());
        }
    }
    // The Raft log's segment files and meta file, whole.
    let log_dir = data_dir.join("sled").join("raft-log");
    for file in fs::read_dir(&log_dir).expect("the Raft log's directory") {
        out.push(fs::read(file.expect("a file").path()).expect("read a log file"));
    }
    out
}

fn holds(data_dir: &Path, sealed: &SealedSecret) -> bool {
    let needle = sealed.ciphertext();
    stored_bytes(data_dir)
        .iter()
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// A token replaced and then compacted with `helix operator compact` is nowhere in any
/// node's storage: not in a log entry, a snapshot or the state.
#[test]
fn a_replaced_token_is_gone_from_every_node_s_storage_after_compact() {
    let mut c = Cluster::new(3);
    c.set_system_token(1, &secret("replaced"));
    let (_, before) = saved_state(&c, 1, "before.helix");
    let replaced = before.settings.hf_token.clone().expect("the token");
    c.set_system_token(2, &secret("current"));
    let data_dirs: Vec<PathBuf> = c.nodes.iter().map(|n| n.data_dir.clone()).collect();
    c.stop(3);
    assert!(
        holds(&data_dirs[2], &replaced),
        "before a compaction the replaced token is in the log"
    );
    c.restart(3);

    let out = c.cli(3, &["operator", "compact"]);
    assert!(out.status.success(), "compact failed: {}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("every node compacts its Raft log"),
        "{}",
        transcript(&out)
    );
    let answer = c
        .client(3)
        .expect("POST", "/api/v1/operator/compact", None, 202);
    let through = answer["purges_through_at_least"].as_u64().unwrap();
    for k in 1..=3 {
        let client = c.client(k);
        wait_for(WAIT, &format!("node{k} purges its log"), || {
            let config = client.poll_json(CONFIG)?;
            match config["log_purged_through"].as_u64() {
                Some(p) if p >= through => Ok(()),
                _ => Err(config.to_string()),
            }
        });
    }
    for k in 1..=3 {
        c.stop(k);
    }
    for dir in &data_dirs {
        assert!(
            !holds(dir, &replaced),
            "the replaced token is still in {}",
            dir.display()
        );
    }
}
