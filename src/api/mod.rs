//! The admin HTTP API. Every node serves all of it: reads come from the local replica (after
//! a read-index barrier unless `?stale=true`), writes are proposed through the leader.

mod audit;
mod cluster;
mod error;
mod keyring;
mod keys;
mod metrics;
mod models;
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
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cluster::LEAVE_PATH;
pub use error::ApiError;
pub use request::{Caller, ReadMode};

use crate::cluster::{Cluster, KeyUse};
use crate::gateway::Gateway;
use crate::gossip::Gossip;
use crate::runner::tokens::Tokens;
use crate::server::Limits;
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
    // The OpenAI-compatible routes share the port, with their own body limit and errors, and
    // so does the dashboard (static files that call this API like any client). Every answer
    // says it is helix's; every route is counted by its template (the layer goes last so it
    // sees them all).
    let routes = router(ctx)
        .merge(crate::gateway::router(gateway))
        .merge(crate::ui::router())
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
    Router::new()
        .route("/healthz", get(cluster::healthz))
        .route("/api/v1/version", get(cluster::version))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/v1/system/settings",
            get(system::get_settings).put(system::put_settings),
        )
        .route("/api/v1/system/config", get(system::get_config))
        .route("/api/v1/cluster/status", get(cluster::status))
        .route(crate::peer::JOIN_API_PATH, post(trust::join))
        .route(crate::peer::CA_API_PATH, get(trust::ca))
        .route(
            "/api/v1/cluster/join-tokens",
            get(trust::list_join_tokens).post(trust::create_join_token),
        )
        .route(
            "/api/v1/cluster/join-tokens/{id}",
            axum::routing::delete(trust::revoke_join_token),
        )
        .route("/api/v1/nodes", get(cluster::list_nodes))
        .route("/api/v1/slots", get(slots::list))
        .route("/api/v1/slots/{id}/logs", get(slots::logs))
        .route(
            "/api/v1/nodes/{id}",
            axum::routing::delete(cluster::remove_node),
        )
        .route(cluster::LEAVE_PATH, post(cluster::leave))
        .route(
            "/api/v1/helix-models",
            get(models::list).post(models::create),
        )
        .route(
            "/api/v1/helix-models/{*id}",
            get(models::get_one)
                .put(models::update)
                .delete(models::delete),
        )
        .route(
            "/api/v1/orgs",
            get(tenancy::list_orgs).post(tenancy::create_org),
        )
        .route(
            "/api/v1/orgs/{id}/settings",
            get(token_settings::get_org).put(token_settings::put_org),
        )
        .route(
            "/api/v1/users",
            get(tenancy::list_users).post(tenancy::create_user),
        )
        .route("/api/v1/users/{id}", get(tenancy::get_user))
        .route(
            "/api/v1/users/{id}/settings",
            get(token_settings::get_user).put(token_settings::put_user),
        )
        .route(
            "/api/v1/users/{id}/api-keys",
            get(keys::list_api_keys).post(keys::issue_api_key),
        )
        .route("/api/v1/users/{id}/disable", post(keys::disable_user))
        .route("/api/v1/users/{id}/enable", post(keys::enable_user))
        .route(
            "/api/v1/api-keys/{key_id}",
            axum::routing::delete(keys::revoke_api_key),
        )
        .route(
            "/api/v1/api-keys/{key_id}/rotate",
            post(keys::rotate_api_key),
        )
        .route("/api/v1/audit", get(audit::list_audit))
        .route(operator::SNAPSHOT_PATH, get(operator::save_snapshot))
        .route(keyring::KEYRING_PATH, get(keyring::list_keyring))
        .route(keyring::ROTATE_PATH, post(keyring::rotate_keyring))
        .route(keyring::COMPACT_PATH, post(keyring::compact))
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not accept that method".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ctx)
}
