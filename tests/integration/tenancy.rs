//! Issue 4, tenancy and the whole token hierarchy, as users see it: real `helix` processes
//! driven over the HTTP API.
//!
//! - Where a launch's token comes from: tokens set level by level (node environment, system,
//!   organization, owner user, model) reach the next launch of the vLLM test double, which
//!   records the sha256 of the `HF_TOKEN` it got; clearing a level falls through to the next.
//! - Who may do what: the permission table of `docs/security.md` (every route × no key /
//!   unknown key / revoked key / plain user / org owner / admin), and what non-admins may not
//!   do to other tenants.
//! - In every test that sets a token: no token value appears in any file under any data dir,
//!   in any node's output, in any vLLM log, or in any API response body the test received.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Where a launch's token comes from

/// Two nodes, each with its own `HF_TOKEN`: node 1 runs the model; node 2 has no GPU and
/// takes the API calls, so tokens are sealed there and opened on node 1. Alice owns org
/// `acme` and the prewarm model.
struct TokenLevels {
    c: Cluster,
    env1: String,
    env2: String,
    org: String,
    alice: NewUser,
    model: &'static str,
    /// The admin, on node 2.
    admin: Client,
    /// Alice, on node 2 and on node 1.
    alice2: Client,
    alice1: Client,
}

impl TokenLevels {
    fn start() -> TokenLevels {
        let (env1, env2) = (secret("envone"), secret("envtwo"));
        let c = Cluster::builder()
            .node(NodeSpec::gpus("80GB").env("HF_TOKEN", &env1))
            .node(NodeSpec::none().env("HF_TOKEN", &env2))
            .start();
        let admin = c.caller(2, Some(&c.admin_key), "admin");
        let org = create_org(&admin, "acme");
        let alice = create_user(
            &admin,
            json!({"name": "alice", "organization_id": org, "org_role": "owner"}),
        );
        let alice2 = c.caller(2, Some(&alice.key), "alice");
        let alice1 = c.caller(1, Some(&alice.key), "alice@1");
        TokenLevels {
            c,
            env1,
            env2,
            org,
            alice,
            model: "acme/gated-model",
            admin,
            alice2,
            alice1,
        }
    }

    /// Creates the model (prewarm, owned by Alice, in her org), with `token` as its own if
    /// given; returns the answer.
    fn create_model(&self, token: Option<&str>) -> Value {
        let mut model = json!({
            "id": self.model, "name": "gated", "memory": "10GB", "prewarm": true,
            "owner_user_id": self.alice.id, "organization_id": self.org,
            // The double prints the token it got: every vLLM log must show it redacted.
            "runtime_args": ["--fake-echo-token"],
        });
        if let Some(token) = token {
            model["huggingface_token"] = json!(token);
        }
        self.admin.expect("POST", MODELS, Some(&model), 201)
    }

    fn model_path(&self) -> String {
        format!("{MODELS}/{}", self.model)
    }

    fn org_settings(&self) -> String {
        format!("/api/v1/orgs/{}/settings", self.org)
    }

    /// The first launch, once it runs.
    fn first_launch(&self) -> (Value, Value) {
        self.c.wait_launched_and_running(2, self.model, 0)
    }

    /// A fresh launch, once it runs.
    fn relaunch(&self) -> (Value, Value) {
        self.c.relaunch(2, self.model)
    }

    /// The launch got `token` from level `source`, on node 1, and token-source says so to
    /// the owner and to an admin.
    fn expect_level(&self, source: &str, token: &str, (launch, slot): (Value, Value)) {
        assert_eq!(
            launch["hf_token_sha256"],
            json!(sha256_hex(token)),
            "the launch should get the {source} token: {launch}"
        );
        assert_eq!(launch["hf_token_present"], json!(true), "{launch}");
        assert!(
            !launch["argv"].to_string().contains(token),
            "the token must not be in argv"
        );
        assert_eq!(slot["hf_token_source"], json!(source), "slot: {slot}");
        assert_eq!(
            slot["node_id"].as_u64(),
            Some(self.c.id(1)),
            "the slot runs on node1: {slot}"
        );
        let token_source = format!("{}/token-source", self.model_path());
        for caller in [&self.alice2, &self.admin] {
            let ts = caller.get_ok(&token_source);
            assert_eq!(
                ts["source"],
                json!(source),
                "token-source ({}): {ts}",
                caller.who
            );
            match source {
                "user" => assert_eq!(ts["user_id"], json!(self.alice.id), "{ts}"),
                "organization" => assert_eq!(ts["organization_id"], json!(self.org), "{ts}"),
                _ => {}
            }
        }
    }

    fn set_system(&self, token: &str) -> Value {
        self.admin
            .expect("PUT", SETTINGS, Some(&hf_token(token)), 200)
    }

    /// Alice, owner of the org, sets or clears its token.
    fn set_org(&self, token: &str) -> Value {
        self.alice2
            .expect("PUT", &self.org_settings(), Some(&hf_token(token)), 200)
    }

    /// Alice sets or clears her own token, through node 1.
    fn set_user(&self, token: &str) -> Value {
        self.alice1.expect(
            "PUT",
            "/api/v1/users/me/settings",
            Some(&hf_token(token)),
            200,
        )
    }

    fn set_model(&self, token: &str) -> Value {
        self.admin
            .expect("PUT", &self.model_path(), Some(&hf_token(token)), 200)
    }
}

/// From the bottom up: each node's own `HF_TOKEN`, then system, organization, user, model.
#[test]
fn a_launch_takes_the_token_of_the_highest_level_set() {
    let t = TokenLevels::start();
    let [system, org, user, model] = ["system", "org", "user", "model"].map(secret);
    let created = t.create_model(None);
    assert_eq!(created["owner_user_id"], json!(t.alice.id), "{created}");
    assert_eq!(created["organization_id"], json!(t.org), "{created}");
    assert_eq!(created["huggingface_token_set"], json!(false), "{created}");
    // Node 1 launches: its own HF_TOKEN, not node 2's.
    t.expect_level("environment", &t.env1, t.first_launch());

    let v = t.set_system(&system);
    assert_eq!(v["huggingface_token_source"], json!("database"), "{v}");
    t.expect_level("system", &system, t.relaunch());

    let v = t.set_org(&org);
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    t.expect_level("organization", &org, t.relaunch());

    let v = t.set_user(&user);
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    assert_eq!(v["id"], json!(t.alice.id), "{v}");
    t.expect_level("user", &user, t.relaunch());

    let v = t.set_model(&model);
    assert_eq!(v["huggingface_token_set"], json!(true), "{v}");
    t.expect_level("model", &model, t.relaunch());

    // Reads that talk about tokens, to have their answers checked too.
    for caller in [&t.admin, &t.alice2, &t.alice1] {
        for path in [
            t.model_path(),
            MODELS.to_string(),
            SLOTS.to_string(),
            "/api/v1/users/me/settings".to_string(),
            t.org_settings(),
            USERS.to_string(),
            ORGS.to_string(),
            "/api/v1/nodes".to_string(),
        ] {
            caller.get_ok(&path);
        }
    }
    t.admin.get_ok(SETTINGS);
    t.admin.get_ok(CONFIG);
    t.c.assert_no_leaks(&[&t.env1, &t.env2, &system, &org, &user, &model]);
}

#[test]
fn clearing_a_level_falls_through_to_the_next() {
    let t = TokenLevels::start();
    let [system, org, user, model] = ["system", "org", "user", "model"].map(secret);
    t.set_system(&system);
    t.set_org(&org);
    t.set_user(&user);
    let created = t.create_model(Some(&model));
    assert_eq!(created["huggingface_token_set"], json!(true), "{created}");
    t.expect_level("model", &model, t.first_launch());

    let v = t.set_model("");
    assert_eq!(v["huggingface_token_set"], json!(false), "{v}");
    t.expect_level("user", &user, t.relaunch());

    // Through her id this time, not `me`.
    t.alice2.expect(
        "PUT",
        &format!("{USERS}/{}/settings", t.alice.id),
        Some(&hf_token("")),
        200,
    );
    t.expect_level("organization", &org, t.relaunch());

    // An admin may clear an org's token too.
    let v = t
        .admin
        .expect("PUT", &t.org_settings(), Some(&hf_token("")), 200);
    assert_eq!(v["huggingface_token_set"], json!(false), "{v}");
    t.expect_level("system", &system, t.relaunch());

    let v = t.set_system("");
    assert_eq!(v["huggingface_token_source"], json!("environment"), "{v}");
    t.expect_level("environment", &t.env1, t.relaunch());
    t.c.assert_no_leaks(&[&t.env1, &t.env2, &system, &org, &user, &model]);
}

#[test]
fn a_token_the_model_prints_is_redacted_in_its_vllm_log() {
    let c = Cluster::builder().node(NodeSpec::gpus("80GB")).start();
    let token = secret("echoed");
    c.set_system_token(1, &token);
    let m = "acme/echo-model";
    // The double prints the token it got.
    c.create_model(1, &model_json(m, "10GB", &["--fake-echo-token"]));
    let slot = c.wait_running(1, m);
    let vllm_log = c
        .node(1)
        .data_dir
        .join("slots")
        .join(slot["id"].as_str().expect("slot id"))
        .join("vllm.log");
    wait_until(
        WAIT,
        &format!("{} shows the echoed token redacted", vllm_log.display()),
        || std::fs::read_to_string(&vllm_log).is_ok_and(|l| l.contains("token is ***")),
    );
    c.assert_no_leaks(&[&token]);
}

/// The audit log names every change of a token (who, what, which level), never the value.
#[test]
fn every_token_change_is_audited_without_its_value() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let org = create_org(&admin, "audited");
    let alice = create_user(
        &admin,
        json!({"name": "alice", "organization_id": org, "org_role": "owner"}),
    );
    let as_alice = c.caller(1, Some(&alice.key), "alice");
    let model = "acme/audited-model";
    admin.expect(
        "POST",
        MODELS,
        Some(
            &json!({"id": model, "memory": "1GB", "name": "audited", "owner_user_id": alice.id,
                     "organization_id": org}),
        ),
        201,
    );
    let tokens = ["system", "org", "user", "model"].map(secret);
    let org_settings = format!("{ORGS}/{org}/settings");
    let user_settings = format!("{USERS}/{}/settings", alice.id);
    let model_path = format!("{MODELS}/{model}");
    for (caller, path, token) in [
        (&admin, SETTINGS, &tokens[0]),
        (&as_alice, &org_settings, &tokens[1]),
        (&as_alice, &user_settings, &tokens[2]),
        (&admin, &model_path, &tokens[3]),
        (&admin, &model_path, &String::new()),
        (&as_alice, &user_settings, &String::new()),
        (&admin, &org_settings, &String::new()),
        (&admin, SETTINGS, &String::new()),
    ] {
        caller.expect("PUT", path, Some(&hf_token(token)), 200);
    }

    let audit = admin.get_ok("/api/v1/audit");
    let entries = audit.as_array().expect("audit is an array");
    for (kind, level, target, actor) in [
        ("hf_token_set", "system", None, None),
        ("hf_token_set", "organization", Some(&org), Some(&alice.id)),
        ("hf_token_set", "user", Some(&alice.id), Some(&alice.id)),
        ("hf_token_set", "model", Some(&model.to_string()), None),
        ("hf_token_cleared", "model", Some(&model.to_string()), None),
        ("hf_token_cleared", "user", Some(&alice.id), Some(&alice.id)),
        ("hf_token_cleared", "organization", Some(&org), None),
        ("hf_token_cleared", "system", None, None),
    ] {
        let found = entries.iter().any(|e| {
            e["kind"] == json!(kind)
                && e["level"] == json!(level)
                && target.is_none_or(|t| e["target"] == json!(t))
                && actor.is_none_or(|a| e["actor_user_id"] == json!(a))
        });
        assert!(found, "no audit entry {kind}/{level}/{target:?}: {audit}");
    }
    // Non-admins may not read it.
    as_alice.expect("GET", "/api/v1/audit", None, 403);

    // `helix audit list` shows the same, and no value.
    let out = Command::new(helix_bin())
        .args(["--output", "json", "audit", "list"])
        .env("HELIX_URL", format!("http://{}", c.node(1).api_addr))
        .env("HELIX_API_KEY", &c.admin_key)
        .env_remove("HF_TOKEN")
        .output()
        .expect("run helix audit list");
    assert!(out.status.success(), "helix audit list: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("hf_token_cleared"), "{stdout}");
    c.transcript.record("helix audit list".into(), out.stdout);
    c.transcript
        .record("helix audit list (stderr)".into(), out.stderr);
    c.assert_no_leaks(&tokens.each_ref().map(String::as_str));
}

/// Token settings say when they last changed, for an org as for a user.
#[test]
fn token_settings_report_when_they_were_changed() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    let token = secret("dated");
    let org = admin.expect("POST", ORGS, Some(&json!({"name": "dated"})), 201);
    let user = admin.expect("POST", USERS, Some(&json!({"name": "dated"})), 201);
    for (what, created, settings) in [
        (
            "org",
            &org["created"],
            format!("{ORGS}/{}/settings", org["id"].as_str().unwrap()),
        ),
        (
            "user",
            &user["created"],
            format!("{USERS}/{}/settings", user["id"].as_str().unwrap()),
        ),
    ] {
        let created = rfc3339(created);
        // Times are in milliseconds: the change must come at least one later to differ.
        wait_until(WAIT, "the clock has moved past the creation", || {
            now() >= created + time::Duration::MILLISECOND
        });
        let put = admin.expect("PUT", &settings, Some(&hf_token(&token)), 200);
        let get = admin.get_ok(&settings);
        for (how, v) in [("PUT", &put), ("GET", &get)] {
            assert_eq!(rfc3339(&v["created"]), created, "{what} {how}: {v}");
            assert!(
                rfc3339(&v["updated"]) > created,
                "{what} settings ({how}) should say they were updated after they were \
                 created: {v}"
            );
        }
    }
    c.assert_no_leaks(&[&token]);
}

fn rfc3339(v: &Value) -> OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not an RFC 3339 string: {v}"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

fn now() -> OffsetDateTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    OffsetDateTime::UNIX_EPOCH + since_epoch
}

// ---------------------------------------------------------------------------------------------
// Read your writes, whichever node you ask

/// Writes through the leader, each followed at once by writes through both followers that
/// name what it created.
const PAIRS: usize = 20;

/// Runs `create` through the leader of a three-node cluster [`PAIRS`] times, each time
/// followed at once, on both followers together, by `refer(follower, created id, name)`;
/// returns the followers' refusals and how many writes they were asked for.
fn refusals(
    create: impl Fn(&Client, &str) -> String,
    refer: impl Fn(&Client, &str, &str) -> Resp + Sync,
) -> (Vec<String>, usize) {
    let c = Cluster::new(3);
    let leader = c.wait_leader(&[1, 2, 3]);
    let followers: Vec<usize> = (1..=3).filter(|&k| k != leader).collect();
    let mut refused = Vec::new();
    for i in 0..PAIRS {
        let id = create(&c.client(leader), &format!("ryw-{i}"));
        std::thread::scope(|s| {
            let answers: Vec<_> = followers
                .iter()
                .map(|&k| {
                    let (client, id, refer) = (c.client(k), &id, &refer);
                    s.spawn(move || (k, refer(&client, id, &format!("ryw-{i}-n{k}"))))
                })
                .collect();
            for answer in answers {
                let (k, r) = answer.join().expect("a follower write panicked");
                if r.status != 201 {
                    refused.push(format!("node{k}: {}: {}", r.status, r.text()));
                }
            }
        });
    }
    (refused, PAIRS * followers.len())
}

#[test]
fn a_user_can_join_an_org_created_through_another_node_a_moment_ago() {
    let (refused, asked) = refusals(create_org, |follower, org, name| {
        follower.post(USERS, &json!({"name": name, "organization_id": org}))
    });
    assert!(
        refused.is_empty(),
        "{} of {asked} users naming an org just created through the leader were refused by a \
         follower, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
}

#[test]
fn a_model_can_name_an_owner_created_through_another_node_a_moment_ago() {
    let (refused, asked) = refusals(
        |leader, name| create_user(leader, json!({ "name": name })).id,
        |follower, owner, name| {
            follower.post(
                MODELS,
                &json!({"id": format!("ryw/{name}"), "memory": "1GB", "name": name, "owner_user_id": owner}),
            )
        },
    );
    assert!(
        refused.is_empty(),
        "{} of {asked} models naming an owner just created through the leader were refused by \
         a follower, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
}

// ---------------------------------------------------------------------------------------------
// Who may do what: the permission table of docs/security.md

/// Who calls, in the order of the table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    NoKey,
    UnknownKey,
    RevokedKey,
    User,
    OrgOwner,
    Admin,
}

const CALLERS: [Who; 6] = [
    Who::NoKey,
    Who::UnknownKey,
    Who::RevokedKey,
    Who::User,
    Who::OrgOwner,
    Who::Admin,
];

/// What the table's rows need to name: the caller's own ids and other people's.
struct Fixture {
    org_a: String,
    org_b: String,
    /// Owned by the org owner, in org A.
    owned_model: String,
    /// Owned by the admin, in org A.
    admin_model: String,
    /// Owned by the plain member, in org A.
    users_model: String,
    user: NewUser,
    owner: NewUser,
    revoked: NewUser,
    admin_id: String,
    /// A member of org B, unrelated to every caller.
    victim: NewUser,
    /// Spare keys each caller may revoke: (key id) per caller index.
    own_spare: Vec<String>,
    /// Someone else's key per caller index.
    others_key: Vec<String>,
    /// Like `own_spare` and `others_key`, for the rotation rows.
    own_rotatable: Vec<String>,
    others_rotatable: Vec<String>,
    /// The user the admin disables and enables again.
    switched: NewUser,
}

impl Fixture {
    fn self_id(&self, who: Who) -> String {
        match who {
            Who::NoKey | Who::UnknownKey => "me".into(),
            Who::RevokedKey => self.revoked.id.clone(),
            Who::User => self.user.id.clone(),
            Who::OrgOwner => self.owner.id.clone(),
            Who::Admin => self.admin_id.clone(),
        }
    }
    /// A model the caller owns (the ones without a key: any).
    fn own_model(&self, who: Who) -> &str {
        match who {
            Who::User => &self.users_model,
            Who::Admin => &self.admin_model,
            _ => &self.owned_model,
        }
    }
    /// A model the caller does not own: for the org owner, one of their own org owned by
    /// someone else.
    fn others_model(&self, who: Who) -> &str {
        match who {
            Who::OrgOwner => &self.admin_model,
            _ => &self.owned_model,
        }
    }
    /// Another user: for the org owner, a member of their own org (owning an org gives no
    /// power over its members' tokens or keys); for everyone else, a member of org B.
    fn other_id(&self, who: Who) -> String {
        match who {
            Who::OrgOwner => self.user.id.clone(),
            _ => self.victim.id.clone(),
        }
    }
}

type RowFn = Box<dyn Fn(&Fixture, usize, Who) -> (String, Option<Value>)>;

struct Row {
    method: &'static str,
    /// The route as docs/security.md names it.
    route: &'static str,
    request: RowFn,
    /// Expected status per caller, in [`CALLERS`] order.
    expect: [u16; 6],
}

fn row(
    method: &'static str,
    route: &'static str,
    expect: [u16; 6],
    request: impl Fn(&Fixture, usize, Who) -> (String, Option<Value>) + 'static,
) -> Row {
    Row {
        method,
        route,
        request: Box::new(request),
        expect,
    }
}

fn fixed(path: &'static str) -> impl Fn(&Fixture, usize, Who) -> (String, Option<Value>) {
    move |_, _, _| (path.to_string(), None)
}

const OPEN: [u16; 6] = [200, 200, 200, 200, 200, 200];
const ANY_KEY: [u16; 6] = [401, 401, 401, 200, 200, 200];
const ADMIN: [u16; 6] = [401, 401, 401, 403, 403, 200];
const ADMIN_201: [u16; 6] = [401, 401, 401, 403, 403, 201];
const ADMIN_204: [u16; 6] = [401, 401, 401, 403, 403, 204];
const SELF: [u16; 6] = [401, 401, 401, 200, 200, 200];
const SELF_201: [u16; 6] = [401, 401, 401, 201, 201, 201];
const SELF_204: [u16; 6] = [401, 401, 401, 204, 204, 204];
const ORG_OWNER: [u16; 6] = [401, 401, 401, 403, 200, 200];
const JOIN_TOKENS: &str = "/api/v1/cluster/join-tokens";

fn table() -> Vec<Row> {
    vec![
        row("GET", "/healthz", OPEN, fixed("/healthz")),
        row("GET", "/readyz", OPEN, fixed("/readyz")),
        row("GET", "/metrics", ADMIN, fixed("/metrics")),
        row("GET", "/api/v1/system/settings", ADMIN, fixed(SETTINGS)),
        row("PUT", "/api/v1/system/settings", ADMIN, |_, _, _| {
            (SETTINGS.into(), Some(json!({})))
        }),
        row(
            "GET",
            "/api/v1/system/config",
            ADMIN,
            fixed("/api/v1/system/config"),
        ),
        row(
            "GET",
            "/api/v1/cluster/status",
            ANY_KEY,
            fixed("/api/v1/cluster/status"),
        ),
        row(
            "GET",
            "/api/v1/cluster/ca",
            OPEN,
            fixed("/api/v1/cluster/ca"),
        ),
        row(
            "GET",
            "/api/v1/cluster/join-tokens",
            ADMIN,
            fixed(JOIN_TOKENS),
        ),
        row("POST", "/api/v1/cluster/join-tokens", ADMIN, |_, _, _| {
            (JOIN_TOKENS.into(), Some(json!({"ttl": "1m", "uses": 1})))
        }),
        // Admins pass the check; the id names no token, so they get 404 (not 2xx).
        row(
            "DELETE",
            "/api/v1/cluster/join-tokens/{id}",
            [401, 401, 401, 403, 403, 404],
            fixed("/api/v1/cluster/join-tokens/0000000000000000"),
        ),
        // Takes a join token, not an API key: one for another cluster is refused, whoever
        // sends it.
        row("POST", "/api/v1/cluster/join", [403; 6], |_, _, _| {
            let token = format!(
                "helix-join.{}.{}.{}",
                "0".repeat(16),
                "0".repeat(32),
                "ab".repeat(32)
            );
            (
                "/api/v1/cluster/join".into(),
                Some(json!({
                    "token": token,
                    "csr_pem": "",
                    "api_addr": "127.0.0.1:1",
                    "peer_addr": "127.0.0.1:2",
                })),
            )
        }),
        row("GET", "/api/v1/nodes", ANY_KEY, fixed("/api/v1/nodes")),
        // Admins pass the check; the id names no member, so they get 404 (not 2xx).
        row(
            "DELETE",
            "/api/v1/nodes/{id}",
            [401, 401, 401, 403, 403, 404],
            fixed("/api/v1/nodes/987654"),
        ),
        // Admins pass the check; the id is not the answering node's, so they get 409 and
        // the node stays.
        row(
            "POST",
            "/api/v1/node/leave",
            [401, 401, 401, 403, 403, 409],
            |_, _, _| {
                (
                    "/api/v1/node/leave".into(),
                    Some(json!({ "node_id": 987654 })),
                )
            },
        ),
        row("GET", "/api/v1/slots", ANY_KEY, fixed(SLOTS)),
        row("GET", "/api/v1/helix-models", ANY_KEY, fixed(MODELS)),
        row("POST", "/api/v1/helix-models", ADMIN_201, |_, i, _| {
            let id = format!("table/new-{i}");
            (
                MODELS.into(),
                Some(json!({ "id": id, "memory": "1GB", "name": id })),
            )
        }),
        row("GET", "/api/v1/helix-models/{id}", ANY_KEY, |f, _, _| {
            (format!("{MODELS}/{}", f.owned_model), None)
        }),
        row("PUT", "/api/v1/helix-models/{id}", ADMIN, |f, i, _| {
            (
                format!("{MODELS}/{}", f.owned_model),
                Some(json!({ "description": format!("edit {i}") })),
            )
        }),
        row(
            "DELETE",
            "/api/v1/helix-models/{id}",
            ADMIN_204,
            |_, i, _| (format!("{MODELS}/table/doomed-{i}"), None),
        ),
        row(
            "GET",
            "/api/v1/helix-models/{id}/token-source (caller owns the model)",
            SELF,
            |f, _, w| {
                let model = f.own_model(w);
                (format!("{MODELS}/{model}/token-source"), None)
            },
        ),
        row(
            "GET",
            "/api/v1/helix-models/{id}/token-source (caller does not own the model)",
            ADMIN,
            |f, _, w| {
                let model = f.others_model(w);
                (format!("{MODELS}/{model}/token-source"), None)
            },
        ),
        row(
            "PUT",
            "/api/v1/helix-models/{id}/settings (caller owns the model)",
            SELF,
            |f, _, w| {
                let model = f.own_model(w);
                (format!("{MODELS}/{model}/settings"), Some(json!({})))
            },
        ),
        row(
            "PUT",
            "/api/v1/helix-models/{id}/settings (caller does not own the model)",
            ADMIN,
            |f, _, w| {
                let model = f.others_model(w);
                (format!("{MODELS}/{model}/settings"), Some(json!({})))
            },
        ),
        row("GET", "/api/v1/orgs", ANY_KEY, fixed("/api/v1/orgs")),
        row("POST", "/api/v1/orgs", ADMIN_201, |_, i, _| {
            (
                "/api/v1/orgs".into(),
                Some(json!({ "name": format!("table-org-{i}") })),
            )
        }),
        row(
            "GET",
            "/api/v1/orgs/{id}/settings (caller's org)",
            ORG_OWNER,
            |f, _, _| (format!("/api/v1/orgs/{}/settings", f.org_a), None),
        ),
        row(
            "PUT",
            "/api/v1/orgs/{id}/settings (caller's org)",
            ORG_OWNER,
            |f, _, _| {
                (
                    format!("/api/v1/orgs/{}/settings", f.org_a),
                    Some(json!({})),
                )
            },
        ),
        row(
            "GET",
            "/api/v1/orgs/{id}/settings (another org)",
            ADMIN,
            |f, _, _| (format!("/api/v1/orgs/{}/settings", f.org_b), None),
        ),
        row(
            "PUT",
            "/api/v1/orgs/{id}/settings (another org)",
            ADMIN,
            |f, _, _| {
                (
                    format!("/api/v1/orgs/{}/settings", f.org_b),
                    Some(json!({})),
                )
            },
        ),
        row("GET", "/api/v1/users", ANY_KEY, fixed("/api/v1/users")),
        row("POST", "/api/v1/users", ADMIN_201, |_, i, _| {
            (
                "/api/v1/users".into(),
                Some(json!({ "name": format!("table-user-{i}") })),
            )
        }),
        row("GET", "/api/v1/users/{id} (self)", SELF, |f, _, w| {
            (format!("/api/v1/users/{}", f.self_id(w)), None)
        }),
        row("GET", "/api/v1/users/me", SELF, fixed("/api/v1/users/me")),
        row(
            "GET",
            "/api/v1/users/{id} (another user)",
            ADMIN,
            |f, _, w| (format!("/api/v1/users/{}", f.other_id(w)), None),
        ),
        row(
            "GET",
            "/api/v1/users/{id}/settings (self)",
            SELF,
            |f, _, w| (format!("/api/v1/users/{}/settings", f.self_id(w)), None),
        ),
        row(
            "PUT",
            "/api/v1/users/{id}/settings (self)",
            SELF,
            |f, _, w| {
                (
                    format!("/api/v1/users/{}/settings", f.self_id(w)),
                    Some(json!({})),
                )
            },
        ),
        row(
            "GET",
            "/api/v1/users/{id}/settings (another user)",
            ADMIN,
            |f, _, w| (format!("/api/v1/users/{}/settings", f.other_id(w)), None),
        ),
        row(
            "PUT",
            "/api/v1/users/{id}/settings (another user)",
            ADMIN,
            |f, _, w| {
                (
                    format!("/api/v1/users/{}/settings", f.other_id(w)),
                    Some(json!({})),
                )
            },
        ),
        row(
            "POST",
            "/api/v1/users/{id}/api-keys (self)",
            SELF_201,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.self_id(w)), None),
        ),
        row(
            "POST",
            "/api/v1/users/{id}/api-keys (another user)",
            ADMIN_201,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.other_id(w)), None),
        ),
        row(
            "GET",
            "/api/v1/users/{id}/api-keys (self)",
            SELF,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.self_id(w)), None),
        ),
        row(
            "GET",
            "/api/v1/users/{id}/api-keys (another user)",
            ADMIN,
            |f, _, w| (format!("/api/v1/users/{}/api-keys", f.other_id(w)), None),
        ),
        row(
            "POST",
            "/api/v1/api-keys/{key_id}/rotate (caller's own key)",
            SELF,
            |f, i, _| {
                (
                    format!("/api/v1/api-keys/{}/rotate", f.own_rotatable[i]),
                    None,
                )
            },
        ),
        row(
            "POST",
            "/api/v1/api-keys/{key_id}/rotate (another user's key)",
            ADMIN,
            |f, i, _| {
                let key = &f.others_rotatable[i];
                (format!("/api/v1/api-keys/{key}/rotate"), None)
            },
        ),
        row(
            "POST",
            "/api/v1/users/{id}/disable (another user)",
            ADMIN_204,
            |f, _, _| (format!("/api/v1/users/{}/disable", f.switched.id), None),
        ),
        row("POST", "/api/v1/users/{id}/enable", ADMIN_204, |f, _, _| {
            (format!("/api/v1/users/{}/enable", f.switched.id), None)
        }),
        row(
            "DELETE",
            "/api/v1/api-keys/{key_id} (caller's own key)",
            SELF_204,
            |f, i, _| (format!("/api/v1/api-keys/{}", f.own_spare[i]), None),
        ),
        row(
            "DELETE",
            "/api/v1/api-keys/{key_id} (another user's key)",
            ADMIN_204,
            |f, i, _| (format!("/api/v1/api-keys/{}", f.others_key[i]), None),
        ),
        row("GET", "/api/v1/audit", ADMIN, fixed("/api/v1/audit")),
        row(
            "GET",
            "/api/v1/operator/snapshot",
            ADMIN,
            fixed("/api/v1/operator/snapshot"),
        ),
        row(
            "GET",
            "(any other path)",
            [404, 404, 404, 404, 404, 404],
            fixed("/api/v1/no-such-route"),
        ),
    ]
}

/// Two orgs and the users of the table: a plain member and an owner of org A, a user whose
/// key gets revoked, and a victim in org B. Walked on node 2 of two.
fn table_fixture(c: &Cluster) -> Fixture {
    let admin = c.client(1);
    let admin_id = admin.get_ok("/api/v1/users/me")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_a = create_org(&admin, "table-a");
    let org_b = create_org(&admin, "table-b");
    let user = create_user(
        &admin,
        json!({"name": "table-member", "organization_id": org_a}),
    );
    let owner = create_user(
        &admin,
        json!({"name": "table-owner", "organization_id": org_a, "org_role": "owner"}),
    );
    let revoked = create_user(
        &admin,
        json!({"name": "table-revoked", "organization_id": org_a}),
    );
    let victim = create_user(
        &admin,
        json!({"name": "table-victim", "organization_id": org_b}),
    );
    let owned_model = "table/owned".to_string();
    let admin_model = "table/admins".to_string();
    let users_model = "table/users".to_string();
    for body in [
        json!({"id": owned_model, "memory": "1GB", "name": "owned", "owner_user_id": owner.id,
               "organization_id": org_a}),
        json!({"id": admin_model, "memory": "1GB", "name": "admins", "organization_id": org_a}),
        json!({"id": users_model, "memory": "1GB", "name": "users", "owner_user_id": user.id,
               "organization_id": org_a}),
    ] {
        admin.expect("POST", MODELS, Some(&body), 201);
    }
    for i in 0..CALLERS.len() {
        let id = format!("table/doomed-{i}");
        admin.expect(
            "POST",
            MODELS,
            Some(&json!({"id": id, "memory": "1GB", "name": id})),
            201,
        );
    }
    let (victim_spare, _) = issue_key(&admin, &victim.id);
    let (victim_spare_for_admin, _) = issue_key(&admin, &victim.id);
    let (member_spare_for_owner, _) = issue_key(&admin, &user.id);
    let switched = create_user(&admin, json!({"name": "table-switched"}));
    let (victim_rotatable, _) = issue_key(&admin, &victim.id);
    let (victim_rotatable_for_admin, _) = issue_key(&admin, &victim.id);
    let (member_rotatable_for_owner, _) = issue_key(&admin, &user.id);
    let mut own_rotatable = Vec::new();
    let mut others_rotatable = Vec::new();
    for who in CALLERS {
        own_rotatable.push(match who {
            Who::User => issue_key(&admin, &user.id).0,
            Who::OrgOwner => issue_key(&admin, &owner.id).0,
            Who::Admin => issue_key(&admin, &admin_id).0,
            _ => victim_rotatable.clone(),
        });
        others_rotatable.push(match who {
            Who::Admin => victim_rotatable_for_admin.clone(),
            Who::OrgOwner => member_rotatable_for_owner.clone(),
            _ => victim_rotatable.clone(),
        });
    }
    let mut own_spare = Vec::new();
    let mut others_key = Vec::new();
    for who in CALLERS {
        own_spare.push(match who {
            Who::User => issue_key(&admin, &user.id).0,
            Who::OrgOwner => issue_key(&admin, &owner.id).0,
            Who::Admin => issue_key(&admin, &admin_id).0,
            _ => victim_spare.clone(),
        });
        others_key.push(match who {
            Who::Admin => victim_spare_for_admin.clone(),
            Who::OrgOwner => member_spare_for_owner.clone(),
            _ => victim_spare.clone(),
        });
    }

    admin.expect(
        "DELETE",
        &format!("/api/v1/api-keys/{}", revoked.key_id),
        None,
        204,
    );
    // Local-only reads check node 2's replica, which follows within a moment.
    let revoked_on_2 = c.caller(2, Some(&revoked.key), "revoked@2");
    wait_until(WAIT, "node2 refuses the revoked key everywhere", || {
        revoked_on_2.get("/api/v1/cluster/status").status == 401
    });

    Fixture {
        org_a,
        org_b,
        owned_model,
        admin_model,
        users_model,
        user,
        owner,
        revoked,
        admin_id,
        victim,
        own_spare,
        others_key,
        own_rotatable,
        others_rotatable,
        switched,
    }
}

#[test]
fn permission_table_holds_for_every_route_and_caller() {
    let c = Cluster::new(2);
    let fixture = table_fixture(&c);
    let unknown_key = format!("hx_{}", "5a".repeat(32));
    // The table is walked on node 2 (writes are carried out on the leader wherever it is).
    let callers: Vec<Client> = CALLERS
        .iter()
        .map(|who| {
            let key = match who {
                Who::NoKey => None,
                Who::UnknownKey => Some(unknown_key.as_str()),
                Who::RevokedKey => Some(fixture.revoked.key.as_str()),
                Who::User => Some(fixture.user.key.as_str()),
                Who::OrgOwner => Some(fixture.owner.key.as_str()),
                Who::Admin => Some(c.admin_key.as_str()),
            };
            c.caller(2, key, &format!("{who:?}"))
        })
        .collect();

    let mut failures = Vec::new();
    let rows = table();
    for r in &rows {
        for (i, who) in CALLERS.iter().enumerate() {
            let (path, body) = (r.request)(&fixture, i, *who);
            let resp = callers[i].send(r.method, &path, body.as_ref());
            if resp.status != r.expect[i] {
                failures.push(format!(
                    "{} {} as {who:?}: expected {}, got {}: {}",
                    r.method,
                    r.route,
                    r.expect[i],
                    resp.status,
                    resp.text()
                ));
            } else if resp.status >= 400 {
                // Errors are always {"error": "..."}, except the plain-text 404 of no route.
                let _ = resp.error_message();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls disagree with the table:\n{}",
        failures.len(),
        rows.len() * CALLERS.len(),
        failures.join("\n")
    );

    // The writes the table allowed took effect, the refused ones did not.
    let ids = c.client(1).model_ids(false).unwrap();
    for (i, who) in CALLERS.iter().enumerate() {
        let admin_ok = *who == Who::Admin;
        assert_eq!(
            ids.contains(&format!("table/new-{i}")),
            admin_ok,
            "model created by {who:?}"
        );
        assert_eq!(
            ids.contains(&format!("table/doomed-{i}")),
            !admin_ok,
            "model deleted by {who:?}"
        );
    }
}

/// Revoked through one node, a key is refused by a linearizable read and a write on another
/// at once, without waiting; its local-only reads follow within a moment.
#[test]
fn a_revoked_key_is_refused_at_once_through_every_node() {
    let c = Cluster::new(2);
    let admin = c.client(1);
    let doomed = create_user(&admin, json!({"name": "doomed"}));
    let on_2 = c.caller(2, Some(&doomed.key), "doomed@2");
    on_2.get_ok(MODELS);
    let revoke = format!("/api/v1/api-keys/{}", doomed.key_id);
    admin.expect("DELETE", &revoke, None, 204);
    on_2.expect("GET", MODELS, None, 401);
    on_2.expect("PUT", "/api/v1/users/me/settings", Some(&json!({})), 401);
    wait_until(WAIT, "node2 refuses the revoked key everywhere", || {
        on_2.get("/api/v1/cluster/status").status == 401
    });
    // Revoking twice: the key is gone.
    admin.expect("DELETE", &revoke, None, 404);
}

// ---------------------------------------------------------------------------------------------
// Non-admins stay in their lane

/// Org A (Alice owns it, Carol is a member), org B (Bob owns it), Dave in no org; each
/// token set by its rightful owner.
struct Tenants {
    c: Cluster,
    org_a: String,
    org_b: String,
    alice: NewUser,
    carol: NewUser,
    bob: NewUser,
    admin: Client,
    as_alice: Client,
    as_carol: Client,
    as_bob: Client,
    as_dave: Client,
    /// Bob's, org B's, org A's and Carol's.
    tokens: [String; 4],
    /// What the intruders try to set.
    attempt: String,
    audit_len: usize,
}

fn user_settings(id: &str) -> String {
    format!("{USERS}/{id}/settings")
}

fn org_settings(id: &str) -> String {
    format!("{ORGS}/{id}/settings")
}

impl Tenants {
    fn start() -> Tenants {
        let c = Cluster::new(1);
        let admin = c.client(1);
        let org_a = create_org(&admin, "lane-a");
        let org_b = create_org(&admin, "lane-b");
        let alice = create_user(
            &admin,
            json!({"name": "alice", "organization_id": org_a, "org_role": "owner"}),
        );
        let carol = create_user(&admin, json!({"name": "carol", "organization_id": org_a}));
        let bob = create_user(
            &admin,
            json!({"name": "bob", "organization_id": org_b, "org_role": "owner"}),
        );
        let dave = create_user(&admin, json!({"name": "dave"}));
        let as_alice = c.caller(1, Some(&alice.key), "alice");
        let as_carol = c.caller(1, Some(&carol.key), "carol");
        let as_bob = c.caller(1, Some(&bob.key), "bob");
        let as_dave = c.caller(1, Some(&dave.key), "dave");
        let tokens = ["bob", "orgb", "orga", "carol"].map(secret);
        as_bob.expect(
            "PUT",
            &user_settings(&bob.id),
            Some(&hf_token(&tokens[0])),
            200,
        );
        as_bob.expect(
            "PUT",
            &org_settings(&org_b),
            Some(&hf_token(&tokens[1])),
            200,
        );
        as_alice.expect(
            "PUT",
            &org_settings(&org_a),
            Some(&hf_token(&tokens[2])),
            200,
        );
        as_carol.expect(
            "PUT",
            "/api/v1/users/me/settings",
            Some(&hf_token(&tokens[3])),
            200,
        );
        let audit_len = admin.get_ok("/api/v1/audit").as_array().unwrap().len();
        Tenants {
            c,
            org_a,
            org_b,
            alice,
            carol,
            bob,
            admin,
            as_alice,
            as_carol,
            as_bob,
            as_dave,
            tokens,
            attempt: secret("attack"),
            audit_len,
        }
    }

    /// Every token is still set, no audit entry was written, every key works, and no token
    /// leaked.
    fn assert_nothing_changed(&self) {
        for (path, who) in [
            (user_settings(&self.bob.id), "bob"),
            (user_settings(&self.carol.id), "carol"),
            (org_settings(&self.org_a), "org a"),
            (org_settings(&self.org_b), "org b"),
        ] {
            let v = self.admin.get_ok(&path);
            assert_eq!(v["huggingface_token_set"], json!(true), "{who}: {v}");
        }
        assert_eq!(
            self.admin.get_ok("/api/v1/audit").as_array().unwrap().len(),
            self.audit_len,
            "refused calls must not change anything"
        );
        for caller in [&self.as_alice, &self.as_carol, &self.as_bob, &self.as_dave] {
            caller.get_ok("/api/v1/users/me");
        }
        self.assert_no_leaks();
    }

    fn assert_no_leaks(&self) {
        let mut secrets: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
        secrets.push(&self.attempt);
        self.c.assert_no_leaks(&secrets);
    }
}

/// Not even the owner of the org a user belongs to may read or change their token or keys.
#[test]
fn a_user_cannot_read_or_change_another_users_token_or_keys() {
    let t = Tenants::start();
    for (caller, target) in [
        (&t.as_carol, &t.alice.id),
        (&t.as_carol, &t.bob.id),
        (&t.as_alice, &t.bob.id),
        (&t.as_alice, &t.carol.id),
        (&t.as_dave, &t.carol.id),
        (&t.as_bob, &t.alice.id),
    ] {
        let settings = user_settings(target);
        caller.expect("GET", &settings, None, 403);
        caller.expect("PUT", &settings, Some(&hf_token(&t.attempt)), 403);
        caller.expect("PUT", &settings, Some(&hf_token("")), 403);
        caller.expect("GET", &format!("{USERS}/{target}"), None, 403);
        caller.expect("POST", &format!("{USERS}/{target}/api-keys"), None, 403);
    }
    for (caller, key_id) in [
        (&t.as_carol, &t.alice.key_id),
        (&t.as_alice, &t.carol.key_id),
        (&t.as_dave, &t.bob.key_id),
    ] {
        caller.expect("DELETE", &format!("/api/v1/api-keys/{key_id}"), None, 403);
    }
    t.assert_nothing_changed();
}

/// Another org's token; a plain member's own org token; a user with no org at all.
#[test]
fn only_an_owner_of_an_org_reads_or_changes_its_token() {
    let t = Tenants::start();
    for (caller, org) in [
        (&t.as_alice, &t.org_b),
        (&t.as_bob, &t.org_a),
        (&t.as_carol, &t.org_a),
        (&t.as_carol, &t.org_b),
        (&t.as_dave, &t.org_a),
    ] {
        let settings = org_settings(org);
        caller.expect("GET", &settings, None, 403);
        caller.expect("PUT", &settings, Some(&hf_token(&t.attempt)), 403);
        caller.expect("PUT", &settings, Some(&hf_token("")), 403);
    }
    t.assert_nothing_changed();
}

/// Creating users is for admins, with or without `admin`, and no route changes the flag of
/// an existing user.
#[test]
fn nobody_makes_themselves_admin() {
    let t = Tenants::start();
    for caller in [&t.as_carol, &t.as_alice, &t.as_dave] {
        caller.expect(
            "POST",
            USERS,
            Some(&json!({"name": "escalate", "admin": true})),
            403,
        );
        caller.expect(
            "POST",
            USERS,
            Some(&json!({"name": "escalate", "organization_id": t.org_a, "org_role": "owner"})),
            403,
        );
        caller.expect("POST", ORGS, Some(&json!({"name": "mine"})), 403);
        caller.expect("PUT", SETTINGS, Some(&hf_token(&t.attempt)), 403);
        caller.expect("GET", JOIN_TOKENS, None, 403);
        caller.expect("POST", JOIN_TOKENS, Some(&json!({})), 403);
    }
    for method in ["PUT", "PATCH", "POST"] {
        let r = t
            .as_carol
            .send(method, "/api/v1/users/me", Some(&json!({"admin": true})));
        assert!(
            r.status == 404 || r.status == 405,
            "{method} /api/v1/users/me: expected no such route, got {}: {}",
            r.status,
            r.text()
        );
    }
    let r = t
        .as_carol
        .put("/api/v1/users/me/settings", &json!({"admin": true}));
    assert_eq!(r.status, 400, "unknown field `admin`: {}", r.text());
    let me = t.as_carol.get_ok("/api/v1/users/me");
    assert_eq!(me["admin"], json!(false), "{me}");
    assert_eq!(me["org_role"], json!("member"), "{me}");
    t.assert_nothing_changed();
}

#[test]
fn non_admins_see_only_themselves_and_their_own_org() {
    let t = Tenants::start();
    let ids = |list: Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        ids(t.as_carol.get_ok(USERS)),
        vec![t.carol.id.clone()],
        "carol lists users"
    );
    assert_eq!(
        ids(t.as_carol.get_ok(ORGS)),
        vec![t.org_a.clone()],
        "carol lists orgs"
    );
    assert!(ids(t.as_dave.get_ok(ORGS)).is_empty(), "dave has no org");
    t.assert_nothing_changed();
}

/// `token-source` judges the environment level on the node that runs the model (or would run
/// it), not on the node that answers: here only the GPU node has an `HF_TOKEN`.
#[test]
fn token_source_judges_the_environment_on_the_node_that_runs_the_model() {
    let env_token = secret("runner-env");
    let c = Cluster::builder()
        .node(NodeSpec::gpus("80GB").env("HF_TOKEN", &env_token))
        .node(NodeSpec::none())
        .start();
    let admin2 = c.client(2);
    let source = |model: &str| admin2.get_ok(&format!("{MODELS}/{model}/token-source"));

    // Running on node 1, asked of node 2 (which has no HF_TOKEN of its own).
    c.create_model(2, &model_json("env/running", "10GB", &[]));
    let slot = c.wait_running(2, "env/running");
    assert_eq!(slot["node_id"].as_u64(), Some(c.id(1)), "{slot}");
    assert_eq!(slot["hf_token_source"], "environment", "{slot}");
    let v = source("env/running");
    assert_eq!(v["source"], "environment", "{v}");
    assert_eq!(v["node_id"].as_u64(), Some(c.id(1)), "{v}");

    // Not placed (not prewarm): judged on the node it would be placed on.
    let mut idle = model_json("env/idle", "10GB", &[]);
    idle["prewarm"] = json!(false);
    c.create_model(2, &idle);
    let v = source("env/idle");
    assert_eq!(v["source"], "environment", "{v}");
    assert_eq!(v["node_id"].as_u64(), Some(c.id(1)), "{v}");

    // Fits on no node: no node's environment applies.
    let mut huge = model_json("env/huge", "500GB", &[]);
    huge["prewarm"] = json!(false);
    c.create_model(2, &huge);
    let v = source("env/huge");
    assert_eq!(v["source"], "none", "{v}");
    assert!(v.get("node_id").is_none(), "{v}");
    c.assert_no_leaks(&[&env_token]);
}

/// A model's token source is for admins and the model's owner; only admins write models,
/// a model's token included.
#[test]
fn a_models_token_source_is_for_its_owner_and_its_token_for_admins() {
    let t = Tenants::start();
    t.admin.expect(
        "POST",
        MODELS,
        Some(
            &json!({"id": "lane/alices", "memory": "1GB", "name": "a", "owner_user_id": t.alice.id,
                     "organization_id": t.org_a}),
        ),
        201,
    );
    let token_source = format!("{MODELS}/lane/alices/token-source");
    t.as_alice.get_ok(&token_source);
    t.as_carol.expect("GET", &token_source, None, 403);
    t.as_bob.expect("GET", &token_source, None, 403);
    t.as_alice.expect(
        "PUT",
        &format!("{MODELS}/lane/alices"),
        Some(&hf_token(&t.attempt)),
        403,
    );
    t.assert_nothing_changed();
}

#[test]
fn a_user_can_issue_use_and_revoke_their_own_keys() {
    let t = Tenants::start();
    let (key_id, key) = issue_key(&t.as_carol, "me");
    let as_carol2 = t.c.caller(1, Some(&key), "carol-key2");
    as_carol2.get_ok("/api/v1/users/me");
    t.as_carol
        .expect("DELETE", &format!("/api/v1/api-keys/{key_id}"), None, 204);
    as_carol2.expect("GET", "/api/v1/users/me", None, 401);
    t.as_carol.get_ok("/api/v1/users/me");
    t.assert_no_leaks();
}

/// A second user or organization with a name already taken gets 409 naming it; a model
/// update that names no field gets 400 saying there is nothing to change. Nothing changes.
#[test]
fn taken_names_and_empty_updates_are_refused_by_name() {
    let c = Cluster::new(1);
    let admin = c.client(1);
    create_user(&admin, json!({"name": "erin"}));
    let again = admin.post(USERS, &json!({"name": "erin"}));
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(
        again.error_message().contains("a user named \"erin\""),
        "{}",
        again.text()
    );
    create_org(&admin, "globex");
    let again = admin.post(ORGS, &json!({"name": "globex"}));
    assert_eq!(again.status, 409, "{}", again.text());

    c.create_model(1, &model_json("acme/same", "10GB", &[]));
    let empty = admin.put("/api/v1/helix-models/acme/same", &json!({}));
    assert_eq!(empty.status, 400, "{}", empty.text());
    assert!(
        empty.error_message().contains("nothing to change"),
        "{}",
        empty.text()
    );
    let users = admin.get_ok(USERS);
    let erins = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["name"] == "erin")
        .count();
    assert_eq!(erins, 1, "{users}");
}
