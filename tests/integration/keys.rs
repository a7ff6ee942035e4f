//! Issue 11, API keys as an operator meets them: the bootstrap key is listed and revocable,
//! keys rotate, and a disabled user is shut out everywhere at once.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

/// `GET /users/{user}/api-keys` as `caller`.
fn keys_of(caller: &Client, user: &str) -> Vec<Value> {
    let v = caller.expect("GET", &format!("{USERS}/{user}/api-keys"), None, 200);
    v.as_array().expect("a list").clone()
}

/// The bootstrap node prints the key id; `helix user keys` lists it as `bootstrap`; it
/// cannot be revoked while it is the last admin key, can once another admin exists, and is
/// then refused.
#[test]
fn the_bootstrap_key_is_listed_and_revocable_once_another_admin_exists() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let printed = c
        .stdout_lines(1)
        .iter()
        .find_map(|l| l.strip_prefix("admin API key id: ").map(str::to_owned))
        .expect("the bootstrap prints the admin key id");
    let key_id = printed.split_whitespace().next().unwrap().to_string();

    let url = format!("http://{}", c.node(1).api_addr);
    let out = Command::new(helix_bin())
        .args(["--url", &url, "--api-key", &c.admin_key, "--output", "json"])
        .args(["user", "keys"])
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(key_id));
    assert_eq!(listed[0]["name"], json!("bootstrap"));

    let revoke = format!("/api/v1/api-keys/{key_id}");
    let refused = admin.send("DELETE", &revoke, None);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(refused
        .error_message()
        .contains("last key of the last enabled admin"));

    let second = create_user(&admin, json!({"name": "second-admin", "admin": true}));
    let as_second = c.caller(1, Some(&second.key), "second-admin");
    let admin_id = admin.get_ok("/api/v1/users/me")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(keys_of(&as_second, &admin_id)[0]["id"], json!(key_id));
    as_second.expect("DELETE", &revoke, None, 204);
    admin.expect("GET", "/api/v1/users/me", None, 401);
    assert!(keys_of(&as_second, &admin_id).is_empty());
}

/// A named key rotated through another node: the new key (same name) works on both nodes,
/// the old one is refused on both; use of a key shows up, coarsely, as its last use.
#[test]
fn a_rotated_key_works_and_the_old_one_is_refused() {
    let c = Cluster::builder()
        .nodes(2)
        .server("key_use_report_ms = 200")
        .start();
    let admin = c.client(1);
    let user = create_user(&admin, json!({"name": "rotator"}));
    let as_user = c.caller(1, Some(&user.key), "rotator");
    let issued = as_user.expect(
        "POST",
        &format!("{USERS}/me/api-keys"),
        Some(&json!({"name": "laptop"})),
        201,
    );
    let old_key = issued["api_key"].as_str().unwrap().to_string();
    let old_id = issued["id"].as_str().unwrap().to_string();

    let old_on_2 = c.caller(2, Some(&old_key), "laptop@2");
    let rotated = old_on_2.expect(
        "POST",
        &format!("/api/v1/api-keys/{old_id}/rotate"),
        None,
        200,
    );
    assert_eq!(rotated["name"], json!("laptop"), "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    for k in [1, 2] {
        c.caller(k, Some(&old_key), "old")
            .expect("GET", "/api/v1/users/me", None, 401);
        let new = c.caller(k, Some(&new_key), "new");
        assert_eq!(new.get_ok("/api/v1/users/me")["id"], json!(user.id));
    }
    let names: Vec<(Value, Value)> = keys_of(&as_user, "me")
        .iter()
        .map(|k| (k["id"].clone(), k["name"].clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            (json!(user.key_id), Value::Null),
            (json!(new_id), json!("laptop"))
        ]
    );
    let audit = admin.get_ok("/api/v1/audit");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == json!("api_key_rotated") && e["target"] == json!(old_id)),
        "{audit}"
    );
    wait_until(WAIT, "the new key's last use is recorded", || {
        keys_of(&as_user, "me")
            .iter()
            .any(|k| k["id"] == json!(new_id) && k["last_used"].is_string())
    });
}

/// Disabled through node 2, a user's two keys get 401 on every node, for reads and writes;
/// an admin cannot disable themselves; enabled again, both keys work everywhere.
#[test]
fn a_disabled_users_keys_are_refused_on_every_node_until_enabled() {
    let c = Cluster::new(2);
    let admin = c.client(2);
    let user = create_user(&admin, json!({"name": "switched"}));
    let (_, second_key) = issue_key(&admin, &user.id);
    let keys = [user.key.clone(), second_key];
    let me = "/api/v1/users/me";
    let settings = "/api/v1/users/me/settings";

    let shown = format!("{USERS}/{}", user.id);
    admin.expect("POST", &format!("{shown}/disable"), None, 204);
    assert_eq!(admin.get_ok(&shown)["disabled"], json!(true));
    for k in [1, 2] {
        for key in &keys {
            let caller = c.caller(k, Some(key), "disabled");
            caller.expect("GET", me, None, 401);
            caller.expect("PUT", settings, Some(&json!({})), 401);
        }
    }
    let refused = admin.send("POST", &format!("{USERS}/me/disable"), None);
    assert_eq!(refused.status, 409, "{}", refused.text());

    c.client(1)
        .expect("POST", &format!("{shown}/enable"), None, 204);
    assert_eq!(admin.get_ok(&shown)["disabled"], json!(false));
    for k in [1, 2] {
        for key in &keys {
            let caller = c.caller(k, Some(key), "enabled");
            assert_eq!(caller.get_ok(me)["id"], json!(user.id));
        }
    }
    let kinds: Vec<Value> = admin
        .get_ok("/api/v1/audit")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == json!(user.id))
        .map(|e| e["kind"].clone())
        .collect();
    assert!(
        kinds.ends_with(&[json!("user_disabled"), json!("user_enabled")]),
        "{kinds:?}"
    );
}
