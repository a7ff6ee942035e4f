//! Issue 13, the design notes' settings shape and the model rules a client is held to now:
//! `PUT /api/v1/system/settings` also takes `org_hf_tokens` and `user_hf_tokens` maps, all
//! applied or none; a model names its memory (with a unit) and not both `context_length`
//! and a `--max-model-len` that disagrees.

use crate::common::*;
use serde_json::{json, Value};

fn token_set(admin: &Client, path: &str) -> bool {
    admin.get_ok(path)["huggingface_token_set"]
        .as_bool()
        .expect("huggingface_token_set")
}

/// An admin sets and clears organization and user tokens through the system settings, as
/// clients of the original send them: one bad id refuses the whole request, and a plain user
/// may not send the maps, not even for themselves.
#[test]
fn the_settings_maps_set_every_level_together_or_not_at_all() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let org = create_org(&admin, "acme");
    let bob = create_user(&admin, json!({"name": "bob", "organization_id": org}));
    let org_path = format!("{ORGS}/{org}/settings");
    let bob_path = format!("{USERS}/{}/settings", bob.id);

    let body = json!({
        "huggingface_token": "hf_system_map_test_1",
        "org_hf_tokens": { &org: "hf_org_map_test_2" },
        "user_hf_tokens": { &bob.id: "hf_user_map_test_3" },
    });
    let r = admin.expect("PUT", SETTINGS, Some(&body), 200);
    assert_eq!(r["huggingface_token_set"], true, "{r}");
    assert!(token_set(&admin, &org_path) && token_set(&admin, &bob_path));

    // One unknown user: the org's token is not cleared either.
    let bad = json!({
        "org_hf_tokens": { &org: "" },
        "user_hf_tokens": { "no-such-user": "hf_user_map_test_4" },
    });
    let r = admin.put(SETTINGS, &bad);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error_message().contains("no-such-user"), "{}", r.text());
    assert!(
        token_set(&admin, &org_path),
        "a refused request changed the org"
    );

    let bob_client = c.caller(1, Some(&bob.key), "bob");
    let own = json!({ "user_hf_tokens": { &bob.id: "" } });
    assert_eq!(bob_client.put(SETTINGS, &own).status, 403);
    assert!(
        token_set(&admin, &bob_path),
        "a refused request changed bob"
    );

    let clear = json!({ "org_hf_tokens": { &org: "" }, "user_hf_tokens": { &bob.id: "" } });
    admin.expect("PUT", SETTINGS, Some(&clear), 200);
    assert!(!token_set(&admin, &org_path) && !token_set(&admin, &bob_path));
    assert!(
        token_set(&admin, SETTINGS),
        "absent system token left as it was"
    );

    let mut responses = String::new();
    for path in [SETTINGS, org_path.as_str(), bob_path.as_str()] {
        responses.push_str(&admin.get_ok(path).to_string());
    }
    assert!(
        !responses.contains("map_test"),
        "a token came back: {responses}"
    );
}

fn refused(admin: &Client, method: &str, path: &str, body: Value, says: &str) {
    let r = admin.send(method, path, Some(&body));
    assert_eq!(r.status, 400, "{body}: {}", r.text());
    assert!(r.error_message().contains(says), "{body}: {}", r.text());
}

/// A model without memory, with a bare number of bytes, or with its context length given
/// twice is refused with the reason; nothing is stored.
#[test]
fn a_model_names_its_memory_and_one_context_length() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let model = |extra: Value| {
        let mut m = json!({"id": "rules/m", "name": "m"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    refused(
        &admin,
        "POST",
        MODELS,
        model(json!({})),
        "`memory`: is required",
    );
    refused(
        &admin,
        "POST",
        MODELS,
        model(json!({"memory": 39})),
        "under 1 MiB",
    );
    let both = json!({"memory": "10GB", "context_length": 8192,
                      "runtime_args": ["--max-model-len", "4096"]});
    refused(
        &admin,
        "POST",
        MODELS,
        model(both),
        "--max-model-len 4096 conflicts",
    );
    assert_eq!(admin.get(&format!("{MODELS}/rules/m")).status, 404);

    admin.expect("POST", MODELS, Some(&model(json!({"memory": "10GB"}))), 201);
    let path = format!("{MODELS}/rules/m");
    let twice = json!({"context_length": 8192, "runtime_args": ["--max-model-len=4096"]});
    refused(
        &admin,
        "PUT",
        &path,
        twice,
        "--max-model-len 4096 conflicts",
    );
    refused(&admin, "PUT", &path, json!({"memory": "39"}), "under 1 MiB");
    let stored = admin.get_ok(&path);
    assert_eq!(stored["memory"], 10_000_000_000u64, "{stored}");
    assert_eq!(stored["runtime_args"], json!([]), "{stored}");
}
