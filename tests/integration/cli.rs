//! The command line's own commands: its version and the node's, and shell completions.

use std::process::Command;

use crate::common::*;

#[test]
fn version_names_the_command_line_and_the_node() {
    let c = Cluster::new(1);
    let anonymous = Client::new(&c.node(1).api_addr).get("/api/v1/version");
    assert_eq!(anonymous.status, 200, "{}", anonymous.text());
    assert_eq!(anonymous.json()["version"], env!("CARGO_PKG_VERSION"));
    let out = c.cli(1, &["version"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        printed.contains(&format!("helix {version} (this command line)")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("helix {version} (the node)")),
        "{printed}"
    );
}

#[test]
fn completions_cover_every_shell_and_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(helix_bin())
            .args(["completions", shell])
            .output()
            .expect("run helix");
        assert!(out.status.success(), "{shell}: {}", transcript(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["helix", "keyring", "chat", "replicas"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = Command::new(helix_bin())
        .args(["completions", "tcsh"])
        .output()
        .expect("run helix");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

/// Two common slips get a message that says what to do: a URL without a scheme, and no API
/// key at all.
#[test]
fn a_bare_url_and_a_missing_key_say_what_to_do() {
    let c = Cluster::new(1);
    let run = |url: &str| {
        Command::new(helix_bin())
            .args(["--url", url, "model", "list"])
            .env_remove("HELIX_API_KEY")
            .env_remove("HELIX_URL")
            .output()
            .expect("run helix")
    };
    let addr = &c.node(1).api_addr;
    let bare = run(addr);
    assert_eq!(bare.status.code(), Some(2), "{}", transcript(&bare));
    let said = String::from_utf8_lossy(&bare.stderr);
    assert!(
        said.contains(&format!("has no scheme: write http://{addr}")),
        "{said}"
    );

    let keyless = run(&format!("http://{addr}"));
    assert_eq!(keyless.status.code(), Some(1), "{}", transcript(&keyless));
    let said = String::from_utf8_lossy(&keyless.stderr);
    for hint in ["--api-key", "HELIX_API_KEY", "admin.key"] {
        assert!(said.contains(hint), "{hint} not named: {said}");
    }
}

/// `helix node join` with the data dir of a node of another cluster stops with an error that
/// names both clusters, instead of running that other cluster's node as if it had joined.
#[test]
fn joining_with_another_cluster_s_data_dir_is_refused() {
    let mut a = Cluster::new(1);
    let b = Cluster::new(1);
    a.stop(1);
    let mut child = Command::new(helix_bin())
        .args(["node", "join", &format!("http://{}", b.node(1).api_addr)])
        .args(a.node_args(1))
        .env("HELIX_JOIN_TOKEN", &b.join_token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run helix");
    let status = wait_for(WAIT, "the join to give up", || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still running".to_string())
    });
    let out = child.wait_with_output().expect("its output");
    assert!(!status.success(), "{}", transcript(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("of another cluster"), "{said}");
    assert!(said.contains("join with an empty data dir"), "{said}");
}
