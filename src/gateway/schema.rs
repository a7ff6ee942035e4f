//! The inference API's bodies as the OpenAPI document shows them. The gateway reads only
//! `model` and `user` and passes each body on as it came, so these types describe what a
//! replica (vLLM) takes and answers; they are never built. Fields beyond these pass through.

use serde::Serialize;
use utoipa::ToSchema;

/// `POST /v1/chat/completions`.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// The model id (as `GET /v1/models` lists it); it picks the replica.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events (`text/event-stream`).
    pub stream: Option<bool>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    /// Requests with the same `user` (or `X-Session-ID` header) stay on one replica.
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// Text, or a list of content parts.
    pub content: serde_json::Value,
}

/// `POST /v1/completions`.
#[derive(Serialize, ToSchema)]
pub struct CompletionRequest {
    pub model: String,
    /// Text, or a list of texts.
    pub prompt: serde_json::Value,
    pub stream: Option<bool>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub user: Option<String>,
}

/// `POST /v1/embeddings`.
#[derive(Serialize, ToSchema)]
pub struct EmbeddingRequest {
    pub model: String,
    /// Text, or a list of texts.
    pub input: serde_json::Value,
    pub user: Option<String>,
}

/// A replica's answer (`chat.completion`, `text_completion` or a `list` of embeddings), or,
/// when streamed, a sequence of `data:` events.
#[derive(Serialize, ToSchema)]
pub struct InferenceAnswer {
    pub object: Option<String>,
    pub model: Option<String>,
}

/// One event of a streamed answer: `data` holds a JSON chunk (`chat.completion.chunk` or
/// `text_completion`), or an error object, and the last event's is `[DONE]`.
#[derive(Serialize, ToSchema)]
pub struct StreamEvent {
    pub data: String,
    pub event: Option<String>,
}
