//! The OpenAI-compatible API every node serves on its API port: `GET /v1/models`, `POST
//! /v1/chat/completions`, `/v1/completions` and `/v1/embeddings`, routed by the body's
//! `model` to a ready replica (`route.rs`), on this node over loopback or on another through
//! that node's peer port, and answered as the replica streams (`forward.rs`).
//!
//! Callers use their helix API key. Request bodies are bounded and never logged.

mod error;
mod forward;
mod in_flight;
mod route;
pub mod schema;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use self::error::{OpenAiError, OpenAiErrorBody};
pub use self::in_flight::InFlight;
pub use self::route::{Candidate, Liveness, Load, NotReady};
use crate::cluster::{Cluster, KeyUse};
use crate::config::GatewayTuning;
use crate::crypto::hash_api_key;
use crate::gossip::Gossip;
use crate::loopback::Loopback;
use crate::metrics::names;
use crate::peer::PeerClient;
use crate::server::Routes;
use crate::state::{Model, User};
use schema::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, InferenceAnswer, StreamEvent,
};

/// What every gateway request can reach. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    cluster: Cluster,
    /// Requests to replicas on other nodes go through their peer port (mutual TLS).
    peers: PeerClient,
    /// Requests to replicas on this node.
    loopback: Loopback,
    tuning: GatewayTuning,
    in_flight: InFlight,
    /// Which nodes are alive and which replicas ready, and their load.
    gossip: Gossip,
    /// Keys seen in use, for their coarse "last used" (shared with the admin API).
    key_use: KeyUse,
}

impl Gateway {
    pub fn new(
        cluster: Cluster,
        peers: PeerClient,
        loopback: Loopback,
        tuning: GatewayTuning,
        in_flight: InFlight,
        gossip: Gossip,
        key_use: KeyUse,
    ) -> Gateway {
        Gateway {
            cluster,
            peers,
            loopback,
            tuning,
            in_flight,
            gossip,
            key_use,
        }
    }

    /// The user behind the request's bearer key. A key made a moment ago on another node
    /// is found once this node has caught up.
    async fn caller(&self, headers: &HeaderMap) -> Result<User, OpenAiError> {
        let key = crate::server::bearer(headers).ok_or_else(|| {
            OpenAiError::unauthorized("send a helix API key as `Authorization: Bearer KEY`")
        })?;
        let hash = hash_api_key(key);
        let user = self
            .cluster
            .check_current(|s| s.user_by_key_hash(&hash).cloned().ok_or(()))
            .await
            .map_err(|()| OpenAiError::unauthorized("the API key is unknown or revoked"))?;
        self.key_use.note(&hash);
        Ok(user)
    }
}

/// The routes, bounded to `tuning.max_body_bytes` per request.
pub fn router(gateway: Gateway) -> Router {
    let limit = gateway.tuning.max_body_bytes;
    routes()
        .into_router()
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Every inference route; adding one is done as for the admin API (`api::routes`).
pub fn routes() -> Routes<Gateway> {
    Routes::default()
        .get("/v1/models", list_models)
        .post("/v1/chat/completions", chat_completions)
        .post("/v1/completions", completions)
        .post("/v1/embeddings", embeddings)
}

/// OpenAI's list of models.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelEntry {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// The owning user's id, or `helix`.
    pub owned_by: String,
}

/// The models the caller may use, in OpenAI's list shape.
#[utoipa::path(get, path = "/v1/models", operation_id = "list_openai_models", tag = "inference",
    responses(
        (status = 200, description = "The models this key may use", body = ModelList),
        (status = 401, description = "No API key, or one that is unknown or revoked", body = OpenAiErrorBody),
    ))]
pub async fn list_models(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, OpenAiError> {
    let user = gateway.caller(&headers).await?;
    let data = gateway.cluster.replica().read(|s| {
        s.models
            .values()
            .filter(|m| s.may_use_model(&user, m))
            .map(model_entry)
            .collect()
    });
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

fn model_entry(model: &Model) -> ModelEntry {
    ModelEntry {
        id: model.id.clone(),
        object: "model",
        created: model.created_ms / 1000,
        owned_by: model
            .owner_user_id
            .clone()
            .unwrap_or_else(|| "helix".into()),
    }
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "inference",
    request_body(content = ChatCompletionRequest, example = json!({"model": "Qwen/Qwen2.5-7B-Instruct", "messages": [{"role": "user", "content": "Hi"}]})),
    responses(
        (status = 200, description = "The replica's answer, streamed as events with `\"stream\": true`", content(
            (InferenceAnswer = "application/json"),
            (StreamEvent = "text/event-stream"),
        )),
        (status = 400, description = "The body is not a JSON object, or `model` is missing or not a string", body = OpenAiErrorBody),
        (status = 401, description = "No API key, or one that is unknown or revoked", body = OpenAiErrorBody),
        (status = 403, description = "This key may not use the model", body = OpenAiErrorBody),
        (status = 404, description = "No such model", body = OpenAiErrorBody),
        (status = 413, description = "The body is over the gateway's limit", body = OpenAiErrorBody),
        (status = 503, description = "No replica of the model is ready, or none answered", body = OpenAiErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn chat_completions(
    gateway: State<Gateway>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    infer(gateway, uri, headers, body).await
}

#[utoipa::path(post, path = "/v1/completions", tag = "inference",
    request_body(content = CompletionRequest, example = json!({"model": "Qwen/Qwen2.5-7B-Instruct", "prompt": "Say hi"})),
    responses(
        (status = 200, description = "The replica's answer, streamed as events with `\"stream\": true`", content(
            (InferenceAnswer = "application/json"),
            (StreamEvent = "text/event-stream"),
        )),
        (status = 400, description = "The body is not a JSON object, or `model` is missing or not a string", body = OpenAiErrorBody),
        (status = 401, description = "No API key, or one that is unknown or revoked", body = OpenAiErrorBody),
        (status = 403, description = "This key may not use the model", body = OpenAiErrorBody),
        (status = 404, description = "No such model", body = OpenAiErrorBody),
        (status = 413, description = "The body is over the gateway's limit", body = OpenAiErrorBody),
        (status = 503, description = "No replica of the model is ready, or none answered", body = OpenAiErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn completions(
    gateway: State<Gateway>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    infer(gateway, uri, headers, body).await
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "inference",
    request_body(content = EmbeddingRequest, example = json!({"model": "Qwen/Qwen2.5-7B-Instruct", "input": "hello"})),
    responses(
        (status = 200, description = "The replica's embeddings", content(
            (InferenceAnswer = "application/json"),
        )),
        (status = 400, description = "The body is not a JSON object, or `model` is missing or not a string", body = OpenAiErrorBody),
        (status = 401, description = "No API key, or one that is unknown or revoked", body = OpenAiErrorBody),
        (status = 403, description = "This key may not use the model", body = OpenAiErrorBody),
        (status = 404, description = "No such model", body = OpenAiErrorBody),
        (status = 413, description = "The body is over the gateway's limit", body = OpenAiErrorBody),
        (status = 503, description = "No replica of the model is ready, or none answered", body = OpenAiErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before a retry"))),
    ))]
pub async fn embeddings(
    gateway: State<Gateway>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    infer(gateway, uri, headers, body).await
}

/// What routing reads from a request body: it is passed on as it came.
struct Request {
    model: String,
    /// Requests with the same session stay on one replica (OpenAI's `user`, or the
    /// `X-Session-ID` header).
    session: Option<String>,
}

fn read_request(body: &[u8], headers: &HeaderMap) -> Result<Request, OpenAiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OpenAiError::bad_request(None, format!("the body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| OpenAiError::bad_request(None, "the body must be a JSON object"))?;
    let model = match object.get("model") {
        Some(Value::String(model)) => model.clone(),
        Some(_) => {
            return Err(OpenAiError::bad_request(
                Some("model"),
                "`model` must be a string",
            ))
        }
        None => {
            return Err(OpenAiError::bad_request(
                Some("model"),
                "`model` is required",
            ))
        }
    };
    let session = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            object
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty());
    Ok(Request { model, session })
}

/// An inference request, counted by outcome.
async fn infer(
    State(gateway): State<Gateway>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let answer = route_and_forward(gateway, uri, headers, body, started).await;
    let outcome = match &answer {
        Ok(_) => "answered",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(e) if e.status.is_client_error() => "rejected",
        Err(_) => "error",
    };
    ::metrics::counter!(names::GATEWAY_REQUESTS, "outcome" => outcome).increment(1);
    answer
}

async fn route_and_forward(
    gateway: Gateway,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    started: Instant,
) -> Result<Response, OpenAiError> {
    let user = gateway.caller(&headers).await?;
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => {
            OpenAiError::too_large(gateway.tuning.max_body_bytes)
        }
        other => OpenAiError::bad_request(None, other.body_text()),
    })?;
    let request = read_request(&body, &headers)?;
    let gossip = gateway.gossip.view();
    let (candidates, model) = gateway.cluster.replica().read(|s| {
        let model = s
            .models
            .get(&request.model)
            .ok_or_else(|| OpenAiError::unknown_model(&request.model))?;
        if !s.may_use_model(&user, model) {
            return Err(OpenAiError::forbidden(&request.model));
        }
        // Until this node gossips (it needs the keyring's key), the committed state alone.
        let candidates = if gossip.running {
            let live = forward::GossipLiveness {
                view: &gossip,
                in_flight: &gateway.in_flight,
            };
            route::candidates(s, model, &live)
        } else {
            let live = forward::CommittedLiveness {
                in_flight: &gateway.in_flight,
            };
            route::candidates(s, model, &live)
        }
        .map_err(|n| OpenAiError::unavailable(n.reason, n.retry_after))?;
        Ok((candidates, model.id.clone()))
    })?;
    let order = route::order(
        &candidates,
        request.session.as_deref(),
        &mut rand::thread_rng(),
    );
    let tries: Vec<Candidate> = order.into_iter().map(|i| candidates[i].clone()).collect();
    gateway
        .forward(&model, uri.path(), body, tries, started)
        .await
}
