//! What the command line prints: JSON under `-o json` for answers and errors alike, and sizes
//! as people write them.

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::common::*;

/// `helix ARGS` against node 1 of `c` as its admin.
fn helix(c: &Cluster, args: &[&str]) -> Output {
    c.cli(1, args)
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", transcript(out)))
}

/// Under `-o json` every command prints JSON on stdout, even those that print a plain line
/// in a table; a failure is one line of JSON on stderr with the node's status, and exit codes
/// stay 1 (request failed) and 2 (usage).
#[test]
fn json_output_and_json_errors() {
    let c = Cluster::new(1);
    let created = helix(
        &c,
        &[
            "-o", "json", "model", "create", "m/json", "--memory", "39GB",
        ],
    );
    assert!(created.status.success(), "{}", transcript(&created));
    assert_eq!(stdout_json(&created)["memory"], json!(39_000_000_000u64));

    let version = helix(&c, &["--output", "json", "version"]);
    assert!(version.status.success(), "{}", transcript(&version));
    assert_eq!(stdout_json(&version)["node"], env!("CARGO_PKG_VERSION"));

    let deleted = helix(&c, &["-o", "json", "model", "delete", "m/json"]);
    assert!(deleted.status.success(), "{}", transcript(&deleted));
    assert_eq!(stdout_json(&deleted), json!({"deleted": "m/json"}));

    let missing = helix(&c, &["-o", "json", "model", "get", "m/json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", transcript(&missing));
    assert!(missing.stdout.is_empty(), "{}", transcript(&missing));
    let error: Value = serde_json::from_slice(&missing.stderr)
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", transcript(&missing)));
    assert_eq!(error["status"], 404, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("m/json"),
        "{error}"
    );

    let usage = helix(
        &c,
        &["-o", "json", "model", "create", "x", "--no-such-flag"],
    );
    assert_eq!(usage.status.code(), Some(2), "{}", transcript(&usage));
    let error: Value = serde_json::from_slice(&usage.stderr)
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", transcript(&usage)));
    assert!(
        error["error"].as_str().unwrap().contains("--no-such-flag"),
        "{error}"
    );

    // Without -o json, the same failure reads as a sentence.
    let plain = helix(&c, &["model", "get", "m/json"]);
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(said.starts_with("error: 404"), "{said}");
}

/// Sizes are shown as `39 GB`, taken as `39GB` or `39GiB`, and a bare number that cannot be
/// a model's memory is refused: by the CLI naming its flag, and by the API for every client.
#[test]
fn sizes_are_shown_and_taken_as_people_write_them() {
    let c = Cluster::new(1);
    for (id, memory) in [("s/decimal", "39GB"), ("s/binary", "36GiB")] {
        let out = helix(&c, &["model", "create", id, "--memory", memory]);
        assert!(out.status.success(), "{}", transcript(&out));
    }
    let list = helix(&c, &["model", "list"]);
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.contains("39 GB"), "{table}");
    assert!(
        table.contains("38.7 GB"),
        "36 GiB in decimal units: {table}"
    );
    let one = helix(&c, &["model", "get", "s/binary"]);
    assert!(String::from_utf8_lossy(&one.stdout).contains("38.7 GB"));

    let bare = helix(&c, &["model", "create", "s/bare", "--memory", "39"]);
    assert_eq!(bare.status.code(), Some(2), "{}", transcript(&bare));
    let said = String::from_utf8_lossy(&bare.stderr);
    assert!(said.contains("--memory 39GB"), "{said}");

    let api = c
        .client(1)
        .post(MODELS, &json!({"id": "s/api", "name": "s", "memory": 39}));
    assert_eq!(api.status, 400, "{}", api.text());
    let message = api.error_message();
    assert!(
        message.contains("memory") && message.contains("39GB"),
        "{message}"
    );
    let unit = c
        .client(1)
        .post(MODELS, &json!({"id": "s/api", "name": "s", "memory": "39"}));
    assert_eq!(
        unit.status,
        400,
        "a bare number as a string too: {}",
        unit.text()
    );
}

/// `-o json` also reaches the error of a command line that does not parse, and
/// `HELIX_OUTPUT=json` does what `-o json` does.
#[test]
fn the_output_format_comes_from_the_environment_too() {
    let out = Command::new(helix_bin())
        .args(["model", "get"])
        .env("HELIX_OUTPUT", "json")
        .output()
        .expect("run helix");
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let error: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", transcript(&out)));
    assert!(error["error"].is_string(), "{error}");
}
