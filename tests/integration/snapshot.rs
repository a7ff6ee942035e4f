//! Backups: `helix operator snapshot save` from any node writes the whole state, sealed
//! secrets only, in a checked file; `helix operator snapshot restore` makes a new one-node
//! cluster of it that others join, and refuses a damaged or foreign file by name.

use std::path::Path;
use std::process::{Command, Output};

use helix::state::decode_backup;
use serde_json::json;

use crate::common::*;

const TOKEN: &str = "hf_backup_secret_value";
const MODEL: &str = "acme/backed-up";

/// A model and a system token written through node 1, saved through the last node (a follower or
/// not: the read is linearizable, so the writes just made through node 1 are in it).
fn saved(c: &Cluster) -> std::path::PathBuf {
    c.set_system_token(1, TOKEN);
    c.client(1).create_model_acked(MODEL, WAIT);
    let file = c.root().join("backup.helix");
    let out = c.cli(
        c.nodes.len(),
        &["operator", "snapshot", "save", path(&file)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "save failed: {}", transcript(&out));
    assert!(
        stdout.contains("saved a snapshot at applied index"),
        "{stdout}"
    );
    file
}

/// `helix operator snapshot restore FILE --cluster-key-file KEY` with node `k`'s flags.
fn restore(c: &Cluster, k: usize, file: &Path, key: &Path) -> Output {
    let mut args = vec![
        "operator".to_string(),
        "snapshot".into(),
        "restore".into(),
        path(file).into(),
        "--cluster-key-file".into(),
        path(key).into(),
    ];
    args.extend(c.node_args(k));
    Command::new(helix_bin())
        .args(&args)
        .output()
        .expect("run helix")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn a_snapshot_saved_from_any_node_holds_the_state_sealed() {
    let c = Cluster::new(2);
    let bytes = std::fs::read(saved(&c)).expect("the snapshot file");
    assert!(
        !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the token must be sealed in the file"
    );
    let backup = decode_backup(&bytes).expect("a valid snapshot");
    assert!(backup.state.models.contains_key(MODEL));
    assert!(backup.state.settings.hf_token.is_some());
    assert!(backup.state.trust.ca.is_some());
}

/// Restored into a new data dir with the source's cluster key, the node runs a one-node
/// cluster with the model and the token; the admin's key works; a new node joins it, and a
/// vLLM launched there gets the restored token (it opens with the kept cluster key). The
/// restored node restarts as a member like any other.
#[test]
fn a_restored_snapshot_runs_a_new_cluster_that_others_join() {
    let mut c = Cluster::new(2);
    let file = saved(&c);
    let key = c.node(1).data_dir.join("cluster.key");
    let k = c.add_node(NodeSpec::none());
    let out = restore(&c, k, &file, &key);
    assert!(out.status.success(), "restore failed: {}", transcript(&out));
    c.restart(k);

    let restored = c.client(k);
    assert!(c.client(k).model_ids(false).unwrap().contains(MODEL));
    c.wait_token_set(k, true);
    let nodes = restored.get_ok("/api/v1/nodes");
    let ids: Vec<u64> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(
        ids,
        vec![c.id(k)],
        "only the restored node is a member: {nodes}"
    );
    assert!(c.id(k) > c.id(2), "the restored node's id is a new one");

    let v = restored.expect(
        "POST",
        "/api/v1/cluster/join-tokens",
        Some(&json!({"ttl": "10m"})),
        200,
    );
    let token = v["token"].as_str().unwrap().to_string();
    let j = c.add_node(NodeSpec::gpus("80GB"));
    c.spawn_join(j, k, &token);
    c.wait_ready(j);
    assert!(c.client(j).model_ids(false).unwrap().contains(MODEL));
    c.wait_token_set(j, true);

    let after = "acme/after-restore";
    c.create_model(k, &model_json(after, "10GB", &[]));
    let slot = c.wait_running(k, after);
    let launch = c.only_launch(slot["id"].as_str().expect("slot id"));
    assert_eq!(
        launch["hf_token_sha256"],
        json!(sha256_hex(TOKEN)),
        "{launch}"
    );

    c.stop(k);
    c.restart(k);
    assert!(c.client(k).model_ids(false).unwrap().contains(MODEL));
}

/// A flipped byte, another format, another file, a wrong key and a used data dir are each
/// refused with a message that says which, and leave no data dir behind.
#[test]
fn restore_refuses_damaged_foreign_and_unopenable_snapshots() {
    let mut c = Cluster::new(1);
    let file = saved(&c);
    let key = c.node(1).data_dir.join("cluster.key");
    let k = c.add_node(NodeSpec::none());
    let bytes = std::fs::read(&file).unwrap();
    let variant = |name: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        change(&mut b);
        let p = c.root().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let flipped = variant("flipped.helix", &|b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x20;
    });
    let future = variant("future.helix", &|b| {
        b[12..16].copy_from_slice(&[0, 0, 0, 9])
    });
    let other = variant("other.helix", &|b| *b = b"{\"not\": 1}".to_vec());
    let wrong_key = c.root().join("wrong.key");
    std::fs::write(&wrong_key, "ab".repeat(32)).unwrap();
    for (file, key, expected) in [
        (&flipped, &key, "checksum mismatch: the file is damaged"),
        (
            &future,
            &key,
            "snapshot format 9 is not supported by this helix (expects 1)",
        ),
        (&other, &key, "not a helix snapshot"),
        (&file, &wrong_key, "does not open this snapshot's CA"),
    ] {
        let out = restore(&c, k, file, key);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "expected {expected:?}: {stderr}");
        assert!(
            !c.node(k).data_dir.exists(),
            "a refused restore wrote a data dir"
        );
    }
    // Into a data dir that holds a node already.
    let out = restore(&c, 1, &file, &key);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

/// `helix operator recover` with node `k`'s flags.
fn recover(c: &Cluster, k: usize, yes: bool) -> Output {
    let mut args = vec!["operator".to_string(), "recover".into()];
    if yes {
        args.push("--yes".into());
    }
    args.extend(c.node_args(k));
    Command::new(helix_bin())
        .args(&args)
        .output()
        .expect("run helix")
}

/// Two of three nodes lost for good: the stopped survivor, recovered, runs alone with every
/// write it had committed, takes writes again, and a new node joins it. Without `--yes` the
/// recovery only says what it would do.
#[test]
fn a_survivor_of_a_lost_quorum_recovers_with_its_committed_writes() {
    let mut c = Cluster::new(3);
    c.set_system_token(1, TOKEN);
    c.client(1).create_model_acked(MODEL, WAIT);
    c.kill9(2);
    c.kill9(3);
    c.stop(1);

    let out = recover(&c, 1, false);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("add --yes"),
        "{}",
        transcript(&out)
    );
    let out = recover(&c, 1, true);
    assert!(out.status.success(), "recover failed: {}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("will be lost; nodes to remove: ["),
        "{}",
        transcript(&out)
    );
    c.restart(1);

    let survivor = c.client(1);
    assert!(survivor.model_ids(false).unwrap().contains(MODEL));
    c.wait_token_set(1, true);
    survivor.create_model_acked("acme/after-recovery", WAIT);
    let v = survivor.expect(
        "POST",
        "/api/v1/cluster/join-tokens",
        Some(&json!({"ttl": "10m"})),
        200,
    );
    let j = c.add_node(NodeSpec::none());
    c.spawn_join(j, 1, v["token"].as_str().unwrap());
    c.wait_ready(j);
    assert!(c
        .client(j)
        .model_ids(false)
        .unwrap()
        .contains("acme/after-recovery"));
}
