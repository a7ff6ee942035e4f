//! The admin HTTP API. Every node serves all of it: reads come from the local replica (after
//! a read-index barrier unless `?stale=true`), writes are proposed through the leader.

mod audit;
mod cluster;
mod error;
mod keyring;
mod keys;
mod metrics;
mod models;
mod openapi;
mod operator;
mod request;
mod slots;
mod system;
mod tenancy;
mod token_settings;
mod track;
mod trust;
pub mod types;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cluster::LEAVE_PATH;
pub use error::{ApiError, ErrorBody};
pub use request::{Caller, ReadMode};

use crate::cluster::{Cluster, KeyUse};
use crate::gateway::Gateway;
use crate::gossip::Gossip;
use crate::runner::fence::Fenced;
use crate::runner::tokens::Tokens;
use crate::server::{Limits, Routes};
use crate::slot_log::SlotLogs;
use crate::state::Sealer;

/// Largest JSON body we accept; larger ones get 413 and change nothing.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiContext {
    pub cluster: Cluster,
    /// This node's runner view of the tokens: its own `HF_TOKEN`, whether the cluster-wide
    /// token opens here.
    pub tokens: Tokens,
    /// Seals tokens with the keyring's current key before they are proposed.
    pub sealer: Sealer,
    /// Keys seen in use, for their coarse "last used".
    pub key_use: KeyUse,
    /// Which nodes gossip says are alive, for `system/config`.
    pub gossip: Gossip,
    /// `GET /metrics` without an admin key (`[metrics] public = true`).
    pub metrics_public: bool,
    /// The logs of the slots that run here.
    pub logs: SlotLogs,
    /// The slots this node's runner fenced, if it did (`/readyz` says so).
    pub fenced: Fenced,
}

/// Serve the admin API on `listener` until `shutdown`: over TLS with the current
/// configuration in `tls` (renewed certificates take effect), or plain HTTP (loopback, or
/// an operator's explicit `--insecure-http`).
pub async fn serve(
    listener: TcpListener,
    ctx: ApiContext,
    gateway: Gateway,
    tls: Option<watch::Receiver<Arc<rustls::ServerConfig>>>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    // The OpenAI-compatible routes share the port, with their own body limit and errors.
    // Every answer says it is helix's; every route is counted by its template (the layer
    // goes last so it sees them all).
    let routes = router(ctx)
        .merge(crate::gateway::router(gateway))
        .layer(axum::middleware::map_response(server_header))
        .layer(axum::middleware::from_fn(track::track));
    crate::server::serve(listener, routes, tls, limits, "api", shutdown).await
}

/// Says that helix answered (see [`crate::server::SERVER_HEADER`]).
async fn server_header(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(crate::server::SERVER_HEADER),
    );
    response
}

fn router(ctx: ApiContext) -> Router {
    routes()
        .into_router()
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not accept that method".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ctx)
}

/// Every admin route. To add one: give its handler a `#[utoipa::path]` (the path as the
/// document shows it, its parameters, body, and every status it answers), add it here, and
/// name the handler in `paths(...)` in `openapi.rs`; `openapi`'s tests fail until all three
/// agree. Add routes only here, never with `.route()` on the router, which the tests cannot
/// see; one deliberately left out of the document (not JSON: Prometheus text, static files)
/// goes in `NOT_DOCUMENTED` in `openapi/tests.rs`, with why.
fn routes() -> Routes<ApiContext> {
    Routes::default()
        .get("/healthz", cluster::healthz)
        .get("/readyz", cluster::readyz)
        .get("/api/v1/version", cluster::version)
        .get(openapi::OPENAPI_PATH, openapi::serve)
        .get(metrics::METRICS_PATH, metrics::metrics)
        .get("/api/v1/system/settings", system::get_settings)
        .put("/api/v1/system/settings", system::put_settings)
        .get("/api/v1/system/config", system::get_config)
        .get("/api/v1/cluster/status", cluster::status)
        .post(crate::peer::JOIN_API_PATH, trust::join)
        .get(crate::peer::CA_API_PATH, trust::ca)
        .get("/api/v1/cluster/join-tokens", trust::list_join_tokens)
        .post("/api/v1/cluster/join-tokens", trust::create_join_token)
        .delete("/api/v1/cluster/join-tokens/{id}", trust::revoke_join_token)
        .get("/api/v1/nodes", cluster::list_nodes)
        .delete("/api/v1/nodes/{id}", cluster::remove_node)
        .post(cluster::LEAVE_PATH, cluster::leave)
        .get("/api/v1/slots", slots::list)
        .get("/api/v1/slots/{id}/logs", slots::logs)
        .get("/api/v1/helix-models", models::list)
        .post("/api/v1/helix-models", models::create)
        // A model id may contain `/`: one pattern catches the model and its sub-resources
        // (the `openapi` tests list the paths the document shows for it).
        .get(models::MODEL_ROUTE, models::get_any)
        .put(models::MODEL_ROUTE, models::put_any)
        .delete(models::MODEL_ROUTE, models::delete)
        .get("/api/v1/orgs", tenancy::list_orgs)
        .post("/api/v1/orgs", tenancy::create_org)
        .get("/api/v1/orgs/{id}/settings", token_settings::get_org)
        .put("/api/v1/orgs/{id}/settings", token_settings::put_org)
        .get("/api/v1/users", tenancy::list_users)
        .post("/api/v1/users", tenancy::create_user)
        .get("/api/v1/users/{id}", tenancy::get_user)
        .get("/api/v1/users/{id}/settings", token_settings::get_user)
        .put("/api/v1/users/{id}/settings", token_settings::put_user)
        .get("/api/v1/users/{id}/api-keys", keys::list_api_keys)
        .post("/api/v1/users/{id}/api-keys", keys::issue_api_key)
        .post("/api/v1/users/{id}/disable", keys::disable_user)
        .post("/api/v1/users/{id}/enable", keys::enable_user)
        .delete("/api/v1/api-keys/{key_id}", keys::revoke_api_key)
        .post("/api/v1/api-keys/{key_id}/rotate", keys::rotate_api_key)
        .get("/api/v1/audit", audit::list_audit)
        .get(operator::SNAPSHOT_PATH, operator::save_snapshot)
        .get(keyring::KEYRING_PATH, keyring::list_keyring)
        .post(keyring::ROTATE_PATH, keyring::rotate_keyring)
        .post(keyring::COMPACT_PATH, keyring::compact)
        // The dashboard: static files that call this API like any other client.
        .get(crate::ui::ENTRY_PATH, crate::ui::redirect)
        .get(crate::ui::INDEX_PATH, crate::ui::index)
        .get(crate::ui::FILES_PATH, crate::ui::file)
}
