//! Issue 13, the dashboard at `/ui/`, in a real browser (headless Chromium over WebDriver)
//! against a 3-node cluster: what the pages show is what the API says, and the actions an
//! admin, an organization's owner and a user take there reach the cluster. Tokens typed in
//! the page are shown only as set or not set, and never appear in the page.

use serde_json::{json, Value};

use crate::common::browser::Browser;
use crate::common::cluster::ClusterBuilder;
use crate::common::{
    create_org, create_user, secret, Client, Cluster, NodeSpec, MODELS, ORGS, SETTINGS, WAIT,
};

/// The dashboard of node `k`, logged in with `key` (after checking the view says who).
fn log_in(b: &Browser, c: &Cluster, k: usize, key: &str, who: &str) {
    b.goto(&format!("http://{}/ui/", c.node(k).api_addr));
    b.type_into("#api-key", key);
    b.click("#login");
    b.wait_contains("#who-name", who);
}

fn view(b: &Browser, name: &str) {
    b.click(&format!("#nav a[data-view=\"{name}\"]"));
}

fn model_cell(id: &str, cell: &str) -> String {
    format!("#models-table tr[data-model=\"{id}\"] {cell}")
}

/// The page holds none of `tokens`, and no token field keeps what was typed.
fn assert_page_hides(b: &Browser, tokens: &[&str]) {
    let source = b.source();
    for token in tokens {
        assert!(!source.contains(token), "the page shows a token: {source}");
    }
    let typed = b.eval(
        "return [...document.querySelectorAll('input[type=password]')].map(i => i.value).join('')",
    );
    assert_eq!(typed, json!(""), "a token field still holds what was typed");
}

fn set_system_token_visible(b: &Browser, state: &str) {
    b.wait_text("#system-token-state", state, |t| t == state);
}

/// A cluster whose leader outlasts a busy machine: Chromium shares the CI's two cores with
/// the nodes, and these tests are about the page, not about failover.
fn patient_cluster() -> ClusterBuilder {
    Cluster::builder()
        .raft("heartbeat_ms = 100")
        .raft("election_timeout_min_ms = 1000")
        .raft("election_timeout_max_ms = 2000")
}

#[test]
fn an_admin_runs_the_cluster_from_the_dashboard() {
    let c = patient_cluster()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .node(NodeSpec::gpus("80GB"))
        .start();
    let admin = c.client(1);
    let page = c.client(3).get("/ui/");
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    let b = Browser::start();
    b.goto(&format!("http://{}/ui/", c.node(3).api_addr));
    b.type_into("#api-key", "hx_not_a_key_of_this_cluster");
    b.click("#login");
    b.wait_text("#message", "the refused key", |t| t.contains("401"));
    assert_eq!(
        b.try_text("#nav").unwrap_or_default(),
        "",
        "nav shown without a key"
    );

    log_in(&b, &c, 3, &c.admin_key, "(admin)");

    // Health and nodes: what the API says.
    let status = admin.get_ok("/api/v1/cluster/status");
    let leader = status["leader_id"].as_u64().expect("a leader");
    b.wait_contains("#health-summary", &format!("node {leader}"));
    b.wait_contains(
        "#quorum-state",
        "healthy: 3 of 3 voters reachable, 2 needed",
    );
    for member in status["members"].as_array().expect("members") {
        let id = &member["id"];
        b.wait_text(
            &format!("#members-table tr[data-node=\"{id}\"]"),
            &format!("node {id} reachable"),
            |t| t.contains("yes"),
        );
    }
    view(&b, "nodes");
    b.wait_contains("#nodes-table", "0 B of 80 GB in use");

    // Models: created from the page, one runs on a GPU and one waits, saying why.
    view(&b, "models");
    let create = |id: &str, memory: &str| {
        b.type_into("#model-id", id);
        b.type_into("#model-name", id);
        b.type_into("#model-memory", memory);
        b.click("#model-create");
    };
    create("ui/bad", "lots");
    b.wait_text("#message", "the refused memory", |t| {
        t.contains("400") && t.contains("memory")
    });
    create("ui/chat", "20GB");
    b.wait_contains("#notice", "Model ui/chat created.");
    b.wait_contains(&model_cell("ui/chat", ""), "running");
    let slot = c.wait_slot(1, "ui/chat", WAIT, "runs", |s| s["state"] == "running");
    let node = slot["node_id"].as_u64().expect("placed");
    b.wait_contains(&model_cell("ui/chat", ""), &format!("on node {node}"));
    create("ui/huge", "200GB");
    let pending = c.wait_slot(1, "ui/huge", WAIT, "says why it waits", |s| {
        s["pending_reason"].is_string()
    });
    let reason = pending["pending_reason"].as_str().expect("a reason");
    b.wait_contains(&model_cell("ui/huge", ""), &format!("pending: {reason}"));
    view(&b, "nodes");
    b.wait_contains(
        &format!("#nodes-table tr[data-node=\"{node}\"]"),
        "20 GB of 80 GB in use",
    );

    // A model created elsewhere shows up on its own (the page refreshes itself).
    admin.expect(
        "POST",
        MODELS,
        Some(&json!({"id": "api/made", "name": "made", "memory": "1GB"})),
        201,
    );
    view(&b, "models");
    b.wait_contains(&model_cell("api/made", ""), "api/made");

    // Disable, enable, delete.
    b.click(&format!(
        "{} button[data-action=\"disable\"]",
        model_cell("ui/chat", "")
    ));
    b.wait_text(&model_cell("ui/chat", "td.enabled"), "disabled", |t| {
        t == "no"
    });
    assert_eq!(
        admin.get_ok(&format!("{MODELS}/ui/chat"))["enabled"],
        json!(false)
    );
    b.click(&format!(
        "{} button[data-action=\"enable\"]",
        model_cell("ui/chat", "")
    ));
    b.wait_text(&model_cell("ui/chat", "td.enabled"), "enabled", |t| {
        t == "yes"
    });
    b.click(&format!(
        "{} button[data-action=\"delete\"]",
        model_cell("ui/chat", "")
    ));
    b.accept_dialog();
    b.wait_gone(&model_cell("ui/chat", ""));
    assert_eq!(admin.get(&format!("{MODELS}/ui/chat")).status, 404);

    // The system token: set and cleared, shown only as set or not set.
    view(&b, "tokens");
    set_system_token_visible(&b, "not set");
    let token = secret("ui_system");
    b.type_into("#system-token", &token);
    b.click("#system-token-set");
    set_system_token_visible(&b, "set");
    assert_eq!(admin.get_ok(SETTINGS)["huggingface_token_set"], json!(true));
    assert_page_hides(&b, &[&token]);
    b.click("#system-token-clear");
    set_system_token_visible(&b, "not set");
    assert_eq!(
        admin.get_ok(SETTINGS)["huggingface_token_set"],
        json!(false)
    );

    // The audit log's newest entry is the clearing.
    let newest = admin.get_ok("/api/v1/audit?limit=1");
    let newest = &newest[0];
    view(&b, "audit");
    let (seq, kind) = (
        newest["seq"].to_string(),
        newest["kind"].as_str().expect("kind"),
    );
    b.wait_text(
        "#audit-table tbody tr:first-child",
        &format!("entry {seq} ({kind}) first"),
        |row| row.split_whitespace().next() == Some(seq.as_str()) && row.contains(kind),
    );
    assert_page_hides(&b, &[&token]);

    // Log out: the key is gone from the tab.
    b.click("#logout");
    b.wait_contains("#login-view", "Log in");
    assert_eq!(b.eval("return sessionStorage.length"), json!(0));
}

#[test]
fn owners_and_users_set_their_tokens_from_the_dashboard() {
    let c = patient_cluster().nodes(3).start();
    let admin = c.client(1);
    let org = create_org(&admin, "acme");
    let alice = create_user(
        &admin,
        json!({"name": "alice", "organization_id": org, "org_role": "owner"}),
    );
    admin.expect(
        "POST",
        MODELS,
        Some(&json!({"id": "acme/chat", "name": "chat", "memory": "20GB",
                     "owner_user_id": alice.id, "organization_id": org})),
        201,
    );
    let alice_api = Client::new(&c.node(2).api_addr).key(&alice.key);
    let source = |b: &Browser, expected: &str| {
        b.wait_text(
            "#model-tokens-table tr[data-model=\"acme/chat\"] td.source",
            &format!("the token source {expected}"),
            |t| t == expected,
        );
    };

    // Alice, owner of acme: no system token for her, her organization's and her own.
    let b = Browser::start();
    log_in(&b, &c, 2, &alice.key, "alice");
    view(&b, "tokens");
    let org_token = format!("#orgs-table tr[data-org=\"{org}\"] td.token");
    b.wait_text(&org_token, "acme's token not set", |t| t == "not set");
    source(&b, "none");
    assert_eq!(b.try_text("#system-token-box").unwrap_or_default(), "");
    let org_secret = secret("ui_org");
    b.type_into("#org-token", &org_secret);
    b.click("#org-token-set");
    b.wait_text(&org_token, "acme's token set", |t| t == "set");
    source(&b, "organization (acme)");
    let settings = alice_api.get_ok(&format!("{ORGS}/{org}/settings"));
    assert_eq!(settings["huggingface_token_set"], json!(true), "{settings}");

    view(&b, "profile");
    b.wait_text("#user-token-state", "her token not set", |t| t == "not set");
    let user_secret = secret("ui_user");
    b.type_into("#user-token", &user_secret);
    b.click("#user-token-set");
    b.wait_text("#user-token-state", "her token set", |t| t == "set");
    assert_eq!(
        alice_api.get_ok("/api/v1/users/me")["huggingface_token_set"],
        json!(true)
    );
    view(&b, "tokens");
    source(&b, "user (alice)");
    b.click("#org-token-clear");
    b.wait_text(&org_token, "acme's token cleared", |t| t == "not set");
    view(&b, "audit");
    b.wait_contains("#audit-table", "Only an admin");
    assert_page_hides(&b, &[&org_secret, &user_secret]);

    // As the model's owner she sets its own token, which now comes first.
    view(&b, "models");
    b.select("#model-token-model", "acme/chat");
    let model_secret = secret("ui_model");
    b.type_into("#model-token", &model_secret);
    b.click("#model-token-set");
    b.wait_text(
        &model_cell("acme/chat", "td.token"),
        "the model's token set",
        |t| t == "set",
    );
    b.wait_text(&model_cell("acme/chat", "td.source"), "source model", |t| {
        t == "model"
    });
    let model: Value = admin.get_ok(&format!("{MODELS}/acme/chat/token-source"));
    assert_eq!(model["source"], json!("model"), "{model}");
    assert_page_hides(&b, &[&org_secret, &user_secret, &model_secret]);

    // Disabled by an admin meanwhile: the page stops at the log-in form and says why.
    admin.expect(
        "POST",
        &format!("/api/v1/users/{}/disable", alice.id),
        None,
        204,
    );
    b.wait_contains("#message", "The API refused the key");
    b.wait_contains("#login-view", "Log in");
    assert_eq!(b.eval("return sessionStorage.length"), json!(0));
}
