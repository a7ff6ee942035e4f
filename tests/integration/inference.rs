//! The OpenAI-compatible API: any node answers for a model whose replica runs elsewhere,
//! streams as the replica produces, keeps sessions on one replica, spreads the rest, and
//! refuses in OpenAI's error shape.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

fn chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 4,
    })
}

/// A node without GPUs and one with, a model placed on the second: node 1 answers for it.
fn two_nodes(models: &[Value]) -> Cluster {
    let c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .start();
    for model in models {
        c.create_model(1, model);
        c.wait_running(1, model["id"].as_str().unwrap());
    }
    c
}

#[test]
fn a_node_without_a_replica_answers_through_the_node_that_has_one() {
    let model = "acme/chat";
    let c = two_nodes(&[model_json(model, "10GB", &[])]);
    let slot = c.slot(1, model).unwrap().expect("a slot");
    let slot_id = slot["id"].as_str().unwrap();

    for k in [1, 2] {
        let answer = c.client(k).post("/v1/chat/completions", &chat(model));
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(
            answer.header("x-helix-node"),
            Some(c.id(2).to_string().as_str())
        );
        assert_eq!(answer.header("x-helix-slot"), Some(slot_id));
        let body = answer.json();
        assert_eq!(body["object"], "chat.completion", "{body}");
        assert_eq!(body["helix_test_slot"], json!(slot_id));
        assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");
    }
    let text = c.client(1).post(
        "/v1/completions",
        &json!({"model": model, "prompt": "once upon", "max_tokens": 3}),
    );
    assert_eq!(text.status, 200, "{}", text.text());
    assert_eq!(text.json()["object"], "text_completion");
    let embedding = c.client(1).post(
        "/v1/embeddings",
        &json!({"model": model, "input": ["a", "b"]}),
    );
    assert_eq!(embedding.status, 200, "{}", embedding.text());
    assert_eq!(embedding.json()["data"].as_array().unwrap().len(), 2);

    let models = c.client(1).get_ok("/v1/models");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], model, "{models}");

    // The CLI's way, with a prompt no log may hold.
    let canary = "zebra-canary-prompt-7f3a";
    let out = c.cli(1, &["chat", model, canary, "--max-tokens", "3"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("served by slot {slot_id}")),
        "{printed}"
    );
    c.assert_no_leaks(&[canary]);
}

/// With 300 ms between tokens, the first chunk reaches the client long before the replica
/// has produced the last one: nothing is buffered on the way (two hops: node 1, then node 2).
#[test]
fn a_streamed_answer_arrives_in_pieces() {
    let model = "acme/slow";
    let c = two_nodes(&[model_json(model, "10GB", &["--fake-token-ms", "300"])]);
    let mut answer = open_stream(&c, model, 10);
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );

    let mut received = String::new();
    let mut first_chunk_at = None;
    let mut buffer = [0u8; 4096];
    loop {
        let n = answer.read(&mut buffer).expect("read the stream");
        if n == 0 {
            break;
        }
        first_chunk_at.get_or_insert_with(Instant::now);
        received.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let ended_at = Instant::now();
    let first = first_chunk_at.expect("some chunk");
    assert!(
        ended_at - first >= Duration::from_millis(1500),
        "the answer came in one piece ({:?} between first chunk and end)",
        ended_at - first
    );
    let events: Vec<&str> = received
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{received}");
    assert!(events.len() >= 11, "one event per token: {received}");
}

fn error_of(answer: &Resp) -> Value {
    let body = answer.json();
    for field in ["message", "type", "param", "code"] {
        assert!(
            body["error"].get(field).is_some(),
            "no error.{field}: {body}"
        );
    }
    body["error"].clone()
}

/// Each refusal in OpenAI's shape, with the status a client expects; a user sees and uses
/// only the models they may.
#[test]
fn refusals_come_in_openai_s_shape() {
    let open = "acme/open";
    let c = Cluster::builder()
        .node(NodeSpec::none())
        .node(NodeSpec::gpus("80GB"))
        .config("[gateway]\nmax_body_bytes = 4096")
        .start();
    c.create_model(1, &model_json(open, "10GB", &[]));
    c.wait_running(1, open);
    let admin = c.client(1);
    let mut cold = model_json("acme/cold", "10GB", &[]);
    cold["prewarm"] = json!(false);
    c.create_model(1, &cold);
    let user = create_user(&admin, json!({"name": "plain"}));
    let as_user = c.client(1).key(&user.key);

    let anonymous = Client::new(&c.node(1).api_addr).post("/v1/chat/completions", &chat(open));
    assert_eq!(anonymous.status, 401);
    assert_eq!(error_of(&anonymous)["type"], "authentication_error");
    let bad_key = Client::new(&c.node(1).api_addr)
        .key("hx_nope")
        .post("/v1/chat/completions", &chat(open));
    assert_eq!(bad_key.status, 401, "{}", bad_key.text());

    let forbidden = as_user.post("/v1/chat/completions", &chat(open));
    assert_eq!(forbidden.status, 403, "{}", forbidden.text());
    assert_eq!(error_of(&forbidden)["param"], "model");
    let listed = as_user.get_ok("/v1/models");
    assert_eq!(
        listed["data"],
        json!([]),
        "the user may use no model: {listed}"
    );

    let unknown = admin.post("/v1/chat/completions", &chat("acme/none"));
    assert_eq!(unknown.status, 404);
    assert_eq!(error_of(&unknown)["code"], "model_not_found");
    for body in [
        json!(["a list"]),
        json!({"model": 7}),
        json!({"messages": []}),
    ] {
        let bad = admin.post("/v1/chat/completions", &body);
        assert_eq!(bad.status, 400, "{body}: {}", bad.text());
        error_of(&bad);
    }
    let not_json = admin.send_raw("POST", "/v1/completions", Some(b"{nope"));
    assert_eq!(not_json.status, 400, "{}", not_json.text());
    let huge = format!(r#"{{"model": "{open}", "prompt": "{}"}}"#, "x".repeat(8192));
    let too_large = admin.send_oversized("POST", "/v1/completions", huge.into_bytes());
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    assert!(error_of(&too_large)["message"]
        .as_str()
        .unwrap()
        .contains("4096"));

    let cold_answer = admin.post("/v1/chat/completions", &chat("acme/cold"));
    assert_eq!(cold_answer.status, 503, "{}", cold_answer.text());
    assert!(cold_answer.header("retry-after").is_some());
    assert!(error_of(&cold_answer)["message"]
        .as_str()
        .unwrap()
        .contains("not prewarm"));
}

/// Where each of `n` chat requests went, by slot, sent by `clients` threads at once.
fn spread(
    c: &Cluster,
    k: usize,
    model: &str,
    n: usize,
    clients: usize,
    user: Option<&str>,
) -> BTreeMap<String, usize> {
    let per_client = n / clients;
    let counts = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let client = c.client(k);
                for _ in 0..per_client {
                    let mut body = chat(model);
                    if let Some(user) = user {
                        body["user"] = json!(user);
                    }
                    let answer = client.post("/v1/chat/completions", &body);
                    assert_eq!(answer.status, 200, "{}", answer.text());
                    let slot = answer.header("x-helix-slot").unwrap().to_string();
                    *counts.lock().unwrap().entry(slot).or_insert(0) += 1;
                }
            });
        }
    });
    counts.into_inner().unwrap()
}

/// Two replicas on two nodes: 200 requests from 8 clients through a third node split
/// between them; one session's requests all go to one.
#[test]
fn two_replicas_share_requests_and_a_session_sticks_to_one() {
    let model = "acme/twice";
    let (c, slots) =
        Cluster::with_two_replicas(model, &["--fake-token-ms", "5"], NodeSpec::gpus("80GB"));
    let nodes: std::collections::BTreeSet<_> =
        slots.iter().map(|s| s["node_id"].as_u64()).collect();
    assert_eq!(nodes.len(), 2, "replicas on distinct nodes: {slots:?}");

    let counts = spread(&c, 1, model, 200, 8, None);
    assert_eq!(counts.len(), 2, "{counts:?}");
    // Routing follows load, so on a busy machine the replica that answers faster rightly
    // gets more; both must still take a real share (the even split of equal replicas is
    // the router's unit test).
    for (slot, n) in &counts {
        assert!(*n >= 50, "{slot} got {n} of 200: {counts:?}");
    }
    let sticky = spread(&c, 1, model, 40, 4, Some("alice"));
    assert_eq!(
        sticky.len(),
        1,
        "a session moved between replicas: {sticky:?}"
    );
}

/// A streaming request through node 1 to a slow replica on node 2.
fn open_stream(c: &Cluster, model: &str, max_tokens: u32) -> reqwest::blocking::Response {
    let mut body = chat(model);
    body["stream"] = json!(true);
    body["max_tokens"] = json!(max_tokens);
    let answer = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/chat/completions", c.node(1).api_addr))
        .bearer_auth(&c.admin_key)
        .json(&body)
        .timeout(WAIT)
        .send()
        .expect("a streamed answer");
    assert_eq!(answer.status(), 200);
    answer
}

fn first_chunk(answer: &mut reqwest::blocking::Response) -> String {
    let mut buffer = [0u8; 4096];
    let n = answer.read(&mut buffer).expect("a first chunk");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// A client that goes away mid-answer cancels the replica's work at once: the replica stops
/// counting the request long before its 30-second answer would have ended.
#[test]
fn a_client_that_disconnects_cancels_the_upstream_request() {
    let model = "acme/long";
    let c = two_nodes(&[model_json(model, "10GB", &["--fake-token-ms", "300"])]);
    let port = c.slot(1, model).unwrap().unwrap()["port"].as_u64().unwrap();
    let running = || -> Result<f64, String> {
        let text = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
            .and_then(|r| r.text())
            .map_err(|e| e.to_string())?;
        text.lines()
            .find(|l| l.starts_with("vllm:num_requests_running"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .ok_or(text)
    };
    let mut answer = open_stream(&c, model, 100);
    first_chunk(&mut answer);
    assert_eq!(running(), Ok(1.0));
    let dropped_at = Instant::now();
    drop(answer);
    wait_for(
        WAIT,
        "the replica stops working on the dropped request",
        || match running()? {
            0.0 => Ok(()),
            n => Err(format!("{n} running")),
        },
    );
    assert!(
        dropped_at.elapsed() < Duration::from_secs(20),
        "cancelled only after {:?}",
        dropped_at.elapsed()
    );
}

/// The replica's node dies after the answer began: the stream ends with an SSE error event
/// rather than a silent cut.
#[test]
fn a_stream_whose_replica_dies_ends_with_an_error_event() {
    let model = "acme/fragile";
    let mut c = two_nodes(&[model_json(model, "10GB", &["--fake-token-ms", "300"])]);
    let mut answer = open_stream(&c, model, 100);
    let mut received = first_chunk(&mut answer);
    c.kill9(2);
    answer
        .read_to_string(&mut received)
        .expect("the stream ends cleanly");
    let last = received
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .expect("events");
    let event: Value = serde_json::from_str(last).expect("a JSON event");
    assert_eq!(event["error"]["type"], "upstream_error", "{received}");
}

fn running_slots(c: &Cluster, model: &str) -> Result<Vec<String>, String> {
    let mut ids: Vec<String> = c
        .slots(1)?
        .into_iter()
        .filter(|s| s["model_id"] == model && s["state"] == "running")
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// `--replicas 2` then `1`: a second replica starts and goes, and the first runs on as it
/// was launched, never restarted.
#[test]
fn scaling_replicas_leaves_the_running_ones_alone() {
    let model = "acme/scaled";
    let c = Cluster::builder().node(NodeSpec::gpus("80GB,80GB")).start();
    c.create_model(1, &model_json(model, "10GB", &[]));
    let first = c.wait_running(1, model)["id"].as_str().unwrap().to_string();
    for (replicas, expected) in [(2, 2), (1, 1)] {
        let out = c.cli(
            1,
            &[
                "model",
                "update",
                model,
                "--replicas",
                &replicas.to_string(),
            ],
        );
        assert!(out.status.success(), "{}", transcript(&out));
        let ids = wait_for(
            WAIT,
            &format!("{expected} replicas run"),
            || match running_slots(&c, model)? {
                ids if ids.len() == expected && c.slots(1)?.len() == expected => Ok(ids),
                ids => Err(format!("{ids:?}")),
            },
        );
        assert!(ids.contains(&first), "{ids:?}");
        assert_eq!(
            c.launches(&first).len(),
            1,
            "the first replica was relaunched"
        );
    }
}
