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
