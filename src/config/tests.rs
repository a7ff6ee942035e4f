//! Resolving the config: defaults, file, flags, and the refusals that name a field.

use super::*;

#[test]
fn flags_override_file_override_defaults() {
    let file: FileConfig = toml::from_str(
        "[node]\napi_addr = \"127.0.0.2:1\"\npeer_addr = \"127.0.0.2:2\"\n[raft]\nsnapshot_every = 7\n",
    )
    .unwrap();
    let flags = NodeOptions {
        api_addr: Some("127.0.0.3:3".into()),
        ..Default::default()
    };
    let c = NodeConfig::resolve(file, flags).unwrap();
    assert_eq!(c.api_addr.to_string(), "127.0.0.3:3");
    assert_eq!(c.peer_addr.to_string(), "127.0.0.2:2");
    assert_eq!(c.raft.snapshot_every, 7);
    assert_eq!(c.data_dir, PathBuf::from("./helix-data"));
    assert_eq!(c.gpus, GpuSpec::Auto);
}

#[test]
fn example_file_documents_the_defaults() {
    let file: FileConfig = toml::from_str(include_str!("../../cluster.example.toml")).unwrap();
    let example = NodeConfig::resolve(file, NodeOptions::default()).unwrap();
    let defaults = NodeConfig::resolve(FileConfig::default(), NodeOptions::default()).unwrap();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
}

#[test]
fn stop_grace_fits_the_stop_budget() {
    let grace = |ms: u64| {
        let file: FileConfig =
            toml::from_str(&format!("[runner]\nstop_grace_ms = {ms}\n")).unwrap();
        NodeConfig::resolve(file, NodeOptions::default())
    };
    assert!(grace(MAX_STOP_GRACE_MS).is_ok());
    let err = grace(MAX_STOP_GRACE_MS + 1).unwrap_err().to_string();
    assert!(err.contains("runner.stop_grace_ms"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    assert!(toml::from_str::<FileConfig>("[node]\napi_adr = \"x\"\n").is_err());
}

#[test]
fn server_limits_default_and_reject_zero() {
    let c = NodeConfig::resolve(FileConfig::default(), NodeOptions::default()).unwrap();
    assert_eq!(c.server.max_connections, None);
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
    for (line, field) in [
        ("max_connections = 0", "server.max_connections"),
        (
            "header_read_timeout_ms = 0",
            "server.header_read_timeout_ms",
        ),
        ("idle_timeout_ms = 0", "server.idle_timeout_ms"),
    ] {
        let file: FileConfig = toml::from_str(&format!("[server]\n{line}\n")).unwrap();
        let e = NodeConfig::resolve(file, NodeOptions::default()).unwrap_err();
        assert!(e.to_string().contains(field), "{line}: {e}");
    }
}

#[test]
fn gpus_parse() {
    assert_eq!(
        parse_gpus("80GB,24GB").unwrap(),
        GpuSpec::Declared(vec![80_000_000_000, 24_000_000_000])
    );
    assert!(parse_gpus("80XB").is_err());
}

#[test]
fn metrics_need_a_key_unless_made_public() {
    let c = NodeConfig::resolve(FileConfig::default(), NodeOptions::default()).unwrap();
    assert!(!c.metrics.public);
    let file: FileConfig = toml::from_str("[metrics]\npublic = true\n").unwrap();
    assert!(
        NodeConfig::resolve(file, NodeOptions::default())
            .unwrap()
            .metrics
            .public
    );
    let err = toml::from_str::<FileConfig>("[metrics]\npublic = \"yes\"\n").unwrap_err();
    assert!(err.to_string().contains("public"), "{err}");
    assert!(toml::from_str::<FileConfig>("[metrics]\nopen = true\n").is_err());
}

#[test]
fn autopilot_never_acts_before_the_stall_tolerance() {
    let raft = |lines: &str| {
        let file: FileConfig = toml::from_str(&format!("[raft]\n{lines}\n")).unwrap();
        NodeConfig::resolve(file, NodeOptions::default())
    };
    let c = raft("").unwrap();
    assert_eq!(c.raft.autopilot_dead_after, Duration::from_secs(120));
    // The default stall tolerance is 4 × 300 ms.
    assert!(raft("autopilot_dead_after_ms = 1200").is_ok());
    let e = raft("autopilot_dead_after_ms = 1199")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("raft.autopilot_dead_after_ms") && e.contains("1200"),
        "{e}"
    );
    // A shorter time needs a shorter tolerance too.
    assert!(raft(
        "election_timeout_min_ms = 100\nelection_timeout_max_ms = 200\nautopilot_dead_after_ms = 800"
    )
    .is_ok());
    let e = raft("ready_max_lag = 0").unwrap_err().to_string();
    assert!(e.contains("raft.ready_max_lag"), "{e}");
}

#[test]
fn a_cut_off_node_fences_its_slots_before_the_leader_moves_them() {
    let runner = |raft: &str, lines: &str| {
        let file: FileConfig =
            toml::from_str(&format!("[raft]\n{raft}\n[runner]\n{lines}\n")).unwrap();
        NodeConfig::resolve(file, NodeOptions::default())
    };
    let c = runner("", "").unwrap();
    // Twice the stall tolerance (4 × 300 ms); lost after 10 s ≥ 2400 + 1200 + 400 + 5000.
    assert_eq!(c.runner.fence_after, Duration::from_millis(2400));
    assert_eq!(c.runner.node_lost_after, Duration::from_secs(10));
    let lost_after_10s = |fence: u64| {
        runner(
            "",
            &format!("node_lost_after_ms = 10000\nfence_after_ms = {fence}"),
        )
    };
    // 3400 + 1200 + 400 (the fence's slack: a tick and a lease) + 5000 = 10000.
    assert!(lost_after_10s(3400).is_ok());
    let e = lost_after_10s(3401).unwrap_err().to_string();
    assert!(
        e.contains("runner.node_lost_after_ms")
            && e.contains("runner.fence_after_ms")
            && e.contains("10001"),
        "{e}"
    );
    let e = lost_after_10s(1199).unwrap_err().to_string();
    assert!(
        e.contains("runner.fence_after_ms") && e.contains("1200"),
        "{e}"
    );
    // Without its own loss time, a longer fence moves the default along.
    let c = runner("", "fence_after_ms = 5000").unwrap();
    assert_eq!(c.runner.node_lost_after, Duration::from_millis(11_600));
    // Slower Raft timing moves the default loss time out with the fence.
    let slow = runner(
        "election_timeout_min_ms = 1000\nelection_timeout_max_ms = 2000",
        "",
    )
    .unwrap();
    assert_eq!(slow.runner.fence_after, Duration::from_secs(16));
    assert_eq!(slow.runner.node_lost_after, Duration::from_millis(30_250));
    assert!(runner("", "node_lost_after_ms = 3000\nfence_after_ms = 1200").is_err());
    assert!(runner(
        "",
        "node_lost_after_ms = 3000\nfence_after_ms = 1200\nstop_grace_ms = 100"
    )
    .is_ok());
}
