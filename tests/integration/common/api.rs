//! The helix API as the tests use it: routes, and the calls several test files make.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use super::cluster::Cluster;
use super::http::{Client, HttpError, Resp};
use super::process::helix_bin;
use super::wait::{wait_for, WAIT};

pub const SETTINGS: &str = "/api/v1/system/settings";
pub const CONFIG: &str = "/api/v1/system/config";
pub const MODELS: &str = "/api/v1/helix-models";
pub const SLOTS: &str = "/api/v1/slots";
pub const ORGS: &str = "/api/v1/orgs";
pub const USERS: &str = "/api/v1/users";

/// A CLI run's stdout then stderr, for assertion messages.
pub fn transcript(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `{"huggingface_token": token}`: sets a token, or clears it when empty.
pub fn hf_token(token: &str) -> Value {
    json!({ "huggingface_token": token })
}

impl Client {
    /// Creates model `id` (name = id); the response, or no response.
    pub fn try_create_model(&self, id: &str) -> Result<Resp, HttpError> {
        let body = json!({ "id": id, "memory": "1GB", "name": id }).to_string();
        self.try_send("POST", MODELS, Some(("application/json", body.as_bytes())))
    }

    /// Writes model `id`, retrying the same id until it is acknowledged (201, or 409 after an
    /// earlier attempt that may have committed). Panics after `timeout`.
    pub fn create_model_acked(&self, id: &str, timeout: Duration) {
        let mut attempted = false;
        wait_for(
            timeout,
            &format!("model {id} is created through {}", self.addr),
            || {
                let outcome = match self.try_create_model(id) {
                    Ok(r) if r.status == 201 || (r.status == 409 && attempted) => return Ok(()),
                    Ok(r) => format!("status {}: {}", r.status, r.text()),
                    Err(e) => e.to_string(),
                };
                attempted = true;
                Err(outcome)
            },
        )
    }

    /// The model ids this node lists (`stale`: from its local copy, without a read barrier).
    pub fn model_ids(&self, stale: bool) -> Result<BTreeSet<String>, String> {
        let path = if stale {
            format!("{MODELS}?stale=true")
        } else {
            MODELS.to_string()
        };
        let v = self.poll_json(&path)?;
        v.as_array()
            .ok_or_else(|| format!("GET {path}: not an array: {v}"))?
            .iter()
            .map(|m| {
                m["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("model without id: {m}"))
            })
            .collect()
    }
}

/// A user as created: id, key, key id.
pub struct NewUser {
    pub id: String,
    pub key: String,
    pub key_id: String,
}

/// Creates an organization; returns its id.
pub fn create_org(admin: &Client, name: &str) -> String {
    let v = admin.expect("POST", ORGS, Some(&json!({ "name": name })), 201);
    assert_eq!(v["name"], json!(name), "{v}");
    v["id"].as_str().expect("org id").to_string()
}

pub fn create_user(admin: &Client, body: Value) -> NewUser {
    let v = admin.expect("POST", USERS, Some(&body), 201);
    let field = |f: &str| {
        v[f].as_str()
            .unwrap_or_else(|| panic!("no {f} in {v}"))
            .to_string()
    };
    NewUser {
        id: field("id"),
        key: field("api_key"),
        key_id: field("api_key_id"),
    }
}

/// Issues another key for `user_id`; returns (key id, key).
pub fn issue_key(caller: &Client, user_id: &str) -> (String, String) {
    let v = caller.expect("POST", &format!("{USERS}/{user_id}/api-keys"), None, 201);
    (
        v["id"].as_str().expect("key id").to_string(),
        v["api_key"].as_str().expect("key").to_string(),
    )
}

impl Cluster {
    /// The `helix` CLI as the admin, against node `via`.
    pub fn cli(&self, via: usize, args: &[&str]) -> Output {
        std::process::Command::new(helix_bin())
            .args(args)
            .env("HELIX_URL", format!("http://{}", self.node(via).api_addr))
            .env("HELIX_API_KEY", &self.admin_key)
            .output()
            .expect("run helix")
    }

    /// Waits until node `k` lists (stale, local copy) every id in `ids`.
    pub fn wait_models_present(&self, k: usize, ids: &BTreeSet<String>) {
        let c = self.client(k);
        wait_for(
            WAIT,
            &format!(
                "node{k} has all {} acknowledged models (stale read)",
                ids.len()
            ),
            || {
                let have = c.model_ids(true)?;
                let missing: Vec<&String> = ids.difference(&have).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} missing, e.g. {:?}",
                        missing.len(),
                        &missing[..missing.len().min(5)]
                    ))
                }
            },
        )
    }

    /// Waits until `/api/v1/system/config` on node `k` reports `huggingface_token_set == set`.
    pub fn wait_token_set(&self, k: usize, set: bool) {
        let c = self.client(k);
        wait_for(
            WAIT,
            &format!("node{k} system/config reports huggingface_token_set={set}"),
            || {
                let v = c.poll_json(CONFIG)?;
                match v["huggingface_token_set"].as_bool() {
                    Some(b) if b == set => Ok(()),
                    _ => Err(v.to_string()),
                }
            },
        )
    }

    /// PUT the system token through node `k` ("" clears it); returns the settings.
    pub fn set_system_token(&self, k: usize, token: &str) -> Value {
        let v = self
            .client(k)
            .expect("PUT", SETTINGS, Some(&hf_token(token)), 200);
        assert_eq!(
            v["huggingface_token_set"],
            json!(!token.is_empty()),
            "settings after PUT: {v}"
        );
        v
    }
}
