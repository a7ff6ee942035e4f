//! Backups: `helix operator snapshot save` from any node writes the whole state, sealed
//! secrets only, in a checked file.

use std::process::Command;

use helix::state::decode_backup;

use crate::common::*;

/// Saved through a follower: the file holds the model and the sealed system token, at a
/// linearizable point (the write just made through the other node is in it).
#[test]
fn a_snapshot_saved_from_any_node_holds_the_state() {
    let c = Cluster::new(2);
    let token = "hf_backup_secret_value";
    c.set_system_token(1, token);
    c.client(1).create_model_acked("acme/backed-up", WAIT);

    let file = c.root().join("backup.helix");
    let out = Command::new(helix_bin())
        .args(["operator", "snapshot", "save"])
        .arg(&file)
        .env("HELIX_URL", format!("http://{}", c.node(2).api_addr))
        .env("HELIX_API_KEY", &c.admin_key)
        .output()
        .expect("run helix");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "save failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("saved a snapshot at applied index"),
        "{stdout}"
    );

    let bytes = std::fs::read(&file).expect("the snapshot file");
    assert!(
        !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token must be sealed in the file"
    );
    let backup = decode_backup(&bytes).expect("a valid snapshot");
    assert!(backup.state.models.contains_key("acme/backed-up"));
    assert!(backup.state.settings.hf_token.is_some());
    assert!(backup.state.trust.ca.is_some());
}
