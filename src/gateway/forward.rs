//! Sending a request to a replica and its answer back: over loopback when the replica runs
//! here, through the owning node's peer port otherwise. A replica that fails before its
//! answer starts is followed by the next in the routing order, each tried once; once bytes
//! have gone to the client, an upstream error ends a stream with an SSE error event.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::json;

use super::in_flight::{InFlight, InFlightGuard};
use super::route::{Candidate, Liveness, Load};
use super::{Gateway, OpenAiError};
use crate::gossip::GossipView;
use crate::metrics::names;

/// Routing on the committed state alone: a slot reported running is ready, on a node
/// presumed alive; the load is this gateway's own requests in flight.
pub(super) struct CommittedLiveness<'a> {
    pub in_flight: &'a InFlight,
}

impl Liveness for CommittedLiveness<'_> {
    fn node_alive(&self, _node_id: u64) -> bool {
        true
    }

    fn slot_ready(&self, _node_id: u64, _slot_id: &str) -> bool {
        true
    }

    fn load(&self, _node_id: u64, slot_id: &str) -> Load {
        Load {
            in_flight: self.in_flight.get(slot_id),
            ..Load::default()
        }
    }
}

/// Routing on gossip: a node is alive when gossip says so (this one always is), a replica
/// ready when its node says so; its load is what its vLLM last reported plus this gateway's
/// own requests in flight.
pub(super) struct GossipLiveness<'a> {
    pub view: &'a GossipView,
    pub in_flight: &'a InFlight,
}

impl Liveness for GossipLiveness<'_> {
    fn node_alive(&self, node_id: u64) -> bool {
        self.view.maybe_alive(node_id)
    }

    /// A replica its node has not reported on yet (it just started) is taken as the
    /// committed state has it: running.
    fn slot_ready(&self, node_id: u64, slot_id: &str) -> bool {
        self.view.slot(node_id, slot_id).is_none_or(|s| s.ready)
    }

    fn load(&self, node_id: u64, slot_id: &str) -> Load {
        let facts = self
            .view
            .slot(node_id, slot_id)
            .copied()
            .unwrap_or_default();
        Load {
            waiting: facts.waiting,
            running: facts.running,
            kv_cache: facts.kv_cache,
            in_flight: self.in_flight.get(slot_id),
        }
    }
}

/// Answers that mean "this replica cannot take it now": another may. 421 is the peer
/// port's own "that replica does not run here".
fn try_another(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 421 | 502 | 503)
}

impl Gateway {
    pub(super) async fn forward(
        &self,
        model: &str,
        path: &str,
        body: Bytes,
        tries: Vec<Candidate>,
        started: Instant,
    ) -> Result<Response, OpenAiError> {
        let mut failures = Vec::new();
        for (attempt, candidate) in tries.into_iter().enumerate() {
            if attempt > 0 {
                ::metrics::counter!(names::GATEWAY_RETRIES).increment(1);
            }
            let guard = self.in_flight.enter(&candidate.slot_id);
            match self.send(&candidate, path, body.clone()).await {
                Ok(answer) if try_another(answer.status()) => {
                    upstream_error("status");
                    failures.push(format!(
                        "{} answered {}",
                        candidate.slot_id,
                        answer.status()
                    ))
                }
                Ok(answer) => return Ok(relay(answer, &candidate, guard, started)),
                Err(why) => {
                    upstream_error("unreachable");
                    failures.push(format!("{}: {why}", candidate.slot_id))
                }
            }
            tracing::warn!(model, slot = %candidate.slot_id, node = candidate.node_id,
                "replica failed before answering; trying another");
        }
        Err(OpenAiError::unavailable(
            format!("no replica of {model:?} answered ({})", failures.join("; ")),
            1,
        ))
    }

    async fn send(
        &self,
        candidate: &Candidate,
        path: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, String> {
        let (port, peer_addr) = self.cluster.replica().read(|s| {
            let port = s.slots.get(&candidate.slot_id).and_then(|s| s.status.port);
            let peer = s.nodes.get(&candidate.node_id).map(|n| n.peer_addr.clone());
            (port, peer)
        });
        if candidate.node_id == self.cluster.node_id() {
            let port = port.ok_or("it has no port yet")?;
            self.loopback
                .send(port, path, body)
                .await
                .map_err(|e| e.to_string())
        } else {
            let addr = peer_addr.ok_or("its node has no address")?;
            self.peers
                .infer(
                    candidate.node_id,
                    &addr,
                    &candidate.slot_id,
                    path,
                    body,
                    self.tuning.request_timeout,
                )
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn upstream_error(kind: &'static str) {
    ::metrics::counter!(names::GATEWAY_UPSTREAM_ERRORS, "kind" => kind).increment(1);
}

/// The replica's answer to the client, chunk by chunk as it comes; `guard` counts the
/// request in flight until the answer ends or the client goes away. The first chunk's
/// arrival, counted from `started`, is the time to first token.
fn relay(
    answer: reqwest::Response,
    candidate: &Candidate,
    guard: InFlightGuard,
    started: Instant,
) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let events = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let slot_id = candidate.slot_id.clone();
    let mut first = Some(started);
    let chunks = futures::stream::unfold(
        (answer.bytes_stream(), Some(guard), false),
        move |(mut upstream, guard, ended)| {
            let slot_id = slot_id.clone();
            let first = first.take();
            async move {
                if ended {
                    return None;
                }
                let next = upstream.next().await;
                if let (Some(started), Some(Ok(_))) = (first, &next) {
                    ::metrics::histogram!(names::GATEWAY_TTFT)
                        .record(started.elapsed().as_secs_f64());
                }
                match next {
                    Some(Ok(bytes)) => Some((Ok(bytes), (upstream, guard, false))),
                    Some(Err(e)) if events => {
                        upstream_error("stream");
                        tracing::warn!(slot = %slot_id, error = %e, "replica failed mid-stream");
                        let event = json!({"error": {
                            "message": format!("the replica failed mid-answer: {e}"),
                            "type": "upstream_error", "param": null, "code": null,
                        }});
                        let bytes = Bytes::from(format!("data: {event}\n\n"));
                        Some((Ok(bytes), (upstream, guard, true)))
                    }
                    Some(Err(e)) => {
                        upstream_error("stream");
                        Some((Err(e), (upstream, guard, true)))
                    }
                    None => None,
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) =
        content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert("x-helix-node", HeaderValue::from(candidate.node_id));
    if let Ok(slot) = HeaderValue::from_str(&candidate.slot_id) {
        headers.insert("x-helix-slot", slot);
    }
    response
}
