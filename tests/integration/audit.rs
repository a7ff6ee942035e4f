//! Issue 11, the audit log: a member's bulk churn cannot flush it, and it filters by actor,
//! kind and time through the API and `helix audit list`.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const AUDIT: &str = "/api/v1/audit";
/// Settings changes by the member: a handful here; the unit tests of `state::audit` churn
/// past the limit per actor and kind (2,000) by tens of thousands.
const CHURN: usize = 40;

fn entries(v: Value) -> Vec<Value> {
    v.as_array().expect("the audit log is an array").clone()
}

fn at_ms(e: &Value) -> i128 {
    let at = e["at"].as_str().expect("an entry has a time");
    OffsetDateTime::parse(at, &Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp_nanos()
        / 1_000_000
}

fn has(list: &[Value], kind: &str, target: &str) -> bool {
    list.iter()
        .any(|e| e["kind"] == json!(kind) && e["target"] == json!(target))
}

/// A plain org member rewrites their own settings over and over; the admin's earlier
/// entries about them (user created, key issued) are still listed. Filters narrow the
/// list, newest last; a bad filter is a 400 that names it.
#[test]
fn a_members_settings_churn_leaves_the_admins_entries_and_filters_work() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let admin_id = admin.get_ok("/api/v1/users/me")["id"]
        .as_str()
        .expect("a user id")
        .to_string();
    let org = create_org(&admin, "churners");
    let member = create_user(&admin, json!({"name": "member", "organization_id": org}));
    let as_member = c.caller(1, Some(&member.key), "member");
    let tokens: Vec<String> = (0..CHURN).map(|i| secret(&format!("churn{i}"))).collect();
    for token in &tokens {
        let body = hf_token(token);
        as_member.expect("PUT", "/api/v1/users/me/settings", Some(&body), 200);
    }

    let by_admin = entries(admin.get_ok(&format!("{AUDIT}?actor={admin_id}")));
    assert!(has(&by_admin, "user_created", &member.id), "{by_admin:?}");
    assert!(
        has(&by_admin, "api_key_issued", &member.key_id),
        "{by_admin:?}"
    );
    assert!(has(&by_admin, "org_created", &org), "{by_admin:?}");
    assert!(by_admin
        .iter()
        .all(|e| e["actor_user_id"] == json!(admin_id)));

    let churn = entries(admin.get_ok(&format!("{AUDIT}?actor={}&kind=hf_token_set", member.id)));
    assert_eq!(churn.len(), CHURN, "{churn:?}");
    let seqs: Vec<u64> = churn.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "newest last: {seqs:?}"
    );

    // The newest N; and a time window, inclusive at both ends.
    let newest = entries(admin.get_ok(&format!("{AUDIT}?kind=hf_token_set&limit=3")));
    assert_eq!(newest.len(), 3);
    assert_eq!(newest.last(), churn.last());
    let (from, to) = (&churn[10]["at"], &churn[20]["at"]);
    let window = entries(admin.get_ok(&format!(
        "{AUDIT}?actor={}&since={}&until={}",
        member.id,
        from.as_str().unwrap(),
        to.as_str().unwrap()
    )));
    let (lo, hi) = (at_ms(&churn[10]), at_ms(&churn[20]));
    let expected = churn
        .iter()
        .filter(|e| (lo..=hi).contains(&at_ms(e)))
        .count();
    assert!(window.len() == expected && expected >= 11, "{window:?}");

    for (query, name) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let refusal = admin.expect("GET", &format!("{AUDIT}?{query}"), None, 400);
        let message = refusal.to_string();
        assert!(message.contains(name), "{query}: {message}");
    }

    // The same through `helix audit list`.
    let helix = |args: &[&str]| {
        let out = Command::new(helix_bin())
            .args(["--output", "json", "audit", "list"])
            .args(args)
            .env("HELIX_URL", format!("http://{}", c.node(1).api_addr))
            .env("HELIX_API_KEY", &c.admin_key)
            .env_remove("HF_TOKEN")
            .output()
            .expect("run helix audit list");
        c.transcript.record(
            format!("helix audit list {}", args.join(" ")),
            out.stdout.clone(),
        );
        out
    };
    let out = helix(&[
        "--actor",
        &member.id,
        "--kind",
        "hf_token_set",
        "--limit",
        "2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed, churn[CHURN - 2..], "helix audit list --limit 2");
    let out = helix(&["--since", from.as_str().unwrap(), "--actor", &admin_id]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        listed.is_empty(),
        "the admin did nothing after the churn began: {listed:?}"
    );
    let out = helix(&["--since", "last tuesday"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("since"),
        "{stderr}"
    );

    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    c.assert_no_leaks(&tokens);
}
