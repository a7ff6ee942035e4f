//! The OpenAPI 3.1 document of everything a node serves on its API port (the admin API and
//! the OpenAI-compatible inference API), generated from the handlers' `#[utoipa::path]`
//! annotations and the request and answer types, and served at `GET /api/v1/openapi.json`.
//!
//! Adding a route: annotate its handler with `#[utoipa::path]` (the path as the document
//! shows it, its parameters, its body and every status it answers, errors as `ErrorBody`, or
//! `OpenAiErrorBody` under `/v1/`), add it to `api::routes` (or `gateway::routes`), and name
//! the handler in `paths(...)` below. The tests here fail while the routes and the document
//! disagree.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::{audit, cluster, keyring, keys, metrics, models, operator, slots, system, tenancy};
use super::{token_settings, trust};
use crate::gateway;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "helix",
        description = "The admin API and the OpenAI-compatible inference API of a helix node. \
            Every node serves all of it. Send an API key as `Authorization: Bearer KEY`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        cluster::healthz,
        cluster::readyz,
        cluster::version,
        serve,
        system::get_settings,
        system::put_settings,
        system::get_config,
        cluster::status,
        trust::join,
        trust::ca,
        trust::list_join_tokens,
        trust::create_join_token,
        trust::revoke_join_token,
        cluster::list_nodes,
        cluster::remove_node,
        cluster::leave,
        slots::list,
        slots::logs,
        models::list,
        models::create,
        models::get_one,
        models::update,
        models::delete,
        models::token_source,
        token_settings::get_model,
        token_settings::put_model,
        tenancy::list_orgs,
        tenancy::create_org,
        token_settings::get_org,
        token_settings::put_org,
        tenancy::list_users,
        tenancy::create_user,
        tenancy::get_user,
        token_settings::get_user,
        token_settings::put_user,
        keys::list_api_keys,
        keys::issue_api_key,
        keys::disable_user,
        keys::enable_user,
        keys::revoke_api_key,
        keys::rotate_api_key,
        audit::list_audit,
        operator::save_snapshot,
        keyring::list_keyring,
        keyring::rotate_keyring,
        keyring::compact,
        metrics::metrics,
        gateway::list_models,
        gateway::chat_completions,
        gateway::completions,
        gateway::embeddings,
    ),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    tags(
        (name = "health", description = "Liveness, readiness, version and this document: no key needed"),
        (name = "cluster", description = "Membership, joining, slots"),
        (name = "models", description = "The models the cluster runs"),
        (name = "tenancy", description = "Organizations and users"),
        (name = "keys", description = "API keys, and disabling users"),
        (name = "settings", description = "Hugging Face tokens at each level, shown only as set or not"),
        (name = "operator", description = "Audit log, backups, keyring, log compaction"),
        (name = "inference", description = "OpenAI-compatible: routed to a ready replica of the body's `model`"),
    )
)]
struct HelixApi;

/// The `api_key` scheme every operation but the public ones asks for.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A helix API key (`helix user create` prints one)"))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = HelixApi::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// This document. Public: it holds no secret and says nothing about the cluster.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "get_openapi_document", tag = "health", security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

#[cfg(test)]
mod tests;
