//! Models as the runner sees them: prewarm model bodies, and waiting on their slots.

use std::time::Duration;

use serde_json::{json, Value};

use super::api::{MODELS, SLOTS};
use super::cluster::{Cluster, NodeSpec};
use super::fake_vllm::pid_of;
use super::process::pid_alive;
use super::wait::{wait_for, wait_until, WAIT};

/// A prewarm model of `memory` with a context length of 8192.
pub fn model_json(id: &str, memory: &str, runtime_args: &[&str]) -> Value {
    json!({
        "id": id,
        "name": id,
        "type": "chat",
        "runtime": "vllm",
        "memory": memory,
        "context_length": 8192,
        "enabled": true,
        "prewarm": true,
        "runtime_args": runtime_args,
    })
}

impl Cluster {
    /// Creates `model` through node `k` (201 expected).
    pub fn create_model(&self, k: usize, model: &Value) -> Value {
        self.client(k).expect("POST", MODELS, Some(model), 201)
    }

    /// `GET /api/v1/slots` on node `k`.
    pub fn slots(&self, k: usize) -> Result<Vec<Value>, String> {
        let v = self.client(k).poll_json(SLOTS)?;
        v.as_array()
            .cloned()
            .ok_or_else(|| format!("GET {SLOTS}: not an array: {v}"))
    }

    /// The slot of `model_id` as node `k` lists it.
    pub fn slot(&self, k: usize, model_id: &str) -> Result<Option<Value>, String> {
        Ok(self
            .slots(k)?
            .into_iter()
            .find(|s| s["model_id"] == json!(model_id)))
    }

    /// Waits until node `k` lists a slot for `model_id` for which `pred` holds.
    pub fn wait_slot(
        &self,
        k: usize,
        model_id: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(
            timeout,
            &format!("the slot of {model_id} {what} (GET {SLOTS} on node{k})"),
            || match self.slot(k, model_id)? {
                Some(s) if pred(&s) => Ok(s),
                Some(s) => Err(s.to_string()),
                None => Err("no slot".into()),
            },
        )
    }

    /// Node 1 without GPUs, nodes 2 and 3 with one GPU each (node 3 as `third` says), and
    /// `model` with two replicas (run with `runtime_args`), one on each: returns the cluster
    /// and the running replicas.
    pub fn with_two_replicas(
        model: &str,
        runtime_args: &[&str],
        third: NodeSpec,
    ) -> (Cluster, Vec<Value>) {
        let c = Cluster::builder()
            .node(NodeSpec::none())
            .node(NodeSpec::gpus("80GB"))
            .node(third)
            .start();
        let mut body = model_json(model, "10GB", runtime_args);
        body["replicas"] = json!(2);
        c.create_model(1, &body);
        let slots = c.wait_replicas_running(1, model, 2);
        (c, slots)
    }

    /// Waits until node `k` lists exactly `n` running replicas of `model_id`; returns them.
    pub fn wait_replicas_running(&self, k: usize, model_id: &str, n: usize) -> Vec<Value> {
        wait_for(
            WAIT,
            &format!("{n} replicas of {model_id} run (GET {SLOTS} on node{k})"),
            || {
                let running: Vec<Value> = self
                    .slots(k)?
                    .into_iter()
                    .filter(|s| s["model_id"] == json!(model_id) && s["state"] == "running")
                    .collect();
                match running.len() {
                    len if len == n => Ok(running),
                    len => Err(format!("{len} running")),
                }
            },
        )
    }

    pub fn wait_running(&self, k: usize, model_id: &str) -> Value {
        self.wait_slot(k, model_id, WAIT, "is running", |s| s["state"] == "running")
    }

    /// Waits until a slot of `model_id` fails and says the model is gated.
    pub fn wait_failed_gated(&self, k: usize, model_id: &str) -> Value {
        self.wait_slot(k, model_id, WAIT, "fails as gated", |s| {
            s["state"] == "failed"
                && s["last_error"]
                    .as_str()
                    .is_some_and(|e| e.to_lowercase().contains("gated"))
        })
    }

    /// The node index a slot is placed on.
    pub fn node_of(&self, slot: &Value) -> usize {
        let id = slot["node_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("slot without node: {slot}"));
        self.index_of(id)
            .unwrap_or_else(|| panic!("unknown node id {id}"))
    }

    /// Forces a fresh launch of prewarm model `model_id` through node `k` (prewarm off: its
    /// slot is removed and its process stopped; prewarm on: placed and launched again), waits
    /// until it runs, and returns the new launch record and the slot.
    pub fn relaunch(&self, k: usize, model_id: &str) -> (Value, Value) {
        let path = format!("{MODELS}/{model_id}");
        let before = self.launches_of_model(model_id);
        let admin = self.client(k);
        admin.expect("PUT", &path, Some(&json!({ "prewarm": false })), 200);
        wait_for(
            WAIT,
            &format!("the slot of {model_id} is removed"),
            || match self.slot(k, model_id)? {
                None => Ok(()),
                Some(s) => Err(s.to_string()),
            },
        );
        if let Some(pid) = before.last().map(pid_of) {
            wait_until(
                WAIT,
                &format!("the vLLM process {pid} of {model_id} is stopped"),
                || !pid_alive(pid),
            );
        }
        admin.expect("PUT", &path, Some(&json!({ "prewarm": true })), 200);
        self.wait_launched_and_running(k, model_id, before.len())
    }

    /// Waits for a launch of `model_id` after the first `after` ones, and for its slot to
    /// run; returns the last launch (the one that runs) and the slot.
    pub fn wait_launched_and_running(
        &self,
        k: usize,
        model_id: &str,
        after: usize,
    ) -> (Value, Value) {
        wait_until(WAIT, &format!("{model_id} is launched again"), || {
            self.launches_of_model(model_id).len() > after
        });
        let slot = self.wait_running(k, model_id);
        // A launch may have been retried meanwhile: the last one runs.
        let launch = self
            .launches_of_model(model_id)
            .pop()
            .expect("a launch was recorded");
        (launch, slot)
    }
}
