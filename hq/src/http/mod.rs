//! The HTTP API of CONTRACT.md (`loyalty-hq` table), plus `DELETE` of a campaign and `/healthz`.
//! Every error body is JSON, axum's own rejections included (`loyalty_http_edge::errors`).

mod admin;
mod admin_page;
mod app;
pub mod app_auth;
mod auth;
mod batch;
mod changes;
mod enrolment;
mod error;
mod history;
mod import;
mod metrics;
pub mod openapi;
mod operator;
mod page_limit;
mod sync;
mod wallet;
mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use loyalty_protocol::{PROTOCOL_HEADER, PROTOCOL_VERSION};

pub use error::ApiError;
pub use import::{ImportRefusal, ImportSummary, MAX_ROW_BYTES};

use crate::store::{Push, Store};

/// Splits the body of `POST /v1/stores/{store}/events` into its events, exactly as that handler
/// does: each event checked on its own ([`crate::store::Incoming`]), the whole batch refused for
/// a protocol mismatch (400), an event or batch of another store (403) or more than
/// `max_events` events (413). Public for the fuzz target (`fuzz/`); the server calls it only
/// through the handler.
pub fn parse_push_body(body: &[u8], store: &str, max_events: usize) -> Result<Push, ApiError> {
    batch::parse(body, store, max_events)
}

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Only its hash is kept: compared with a presented token's in constant time.
    pub admin_token: crate::token::TokenHash,
    pub max_batch_events: usize,
    pub hub: Arc<crate::feed_hub::FeedHub>,
    pub app: crate::config::AppSettings,
    /// A pull's `wait=` is capped to this.
    pub max_pull_wait: std::time::Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Every answer says which protocol HQ speaks, errors included, so a mismatched agent can tell.
async fn protocol_header(mut res: Response) -> Response {
    res.headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from(PROTOCOL_VERSION));
    res
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "HQ answers", body = openapi::Health)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "protocol": PROTOCOL_VERSION }))
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/stores/{store}/events", post(sync::push))
        .route("/v1/stores/{store}/changes", get(changes::changes))
        .route(
            "/v1/stores/{store}/ledger",
            get(sync::ledger).put(sync::rebind_ledger),
        )
        .route("/v1/admin/stores", get(operator::stores))
        .route("/v1/admin/stores/{store_id}", put(admin::put_store))
        .route(
            "/v1/admin/members/{member_id}",
            put(admin::put_member).get(admin::get_member),
        )
        .route(
            "/v1/admin/campaigns/{campaign_id}",
            put(admin::put_campaign).delete(admin::delete_campaign),
        )
        .route(
            "/v1/admin/members/{member_id}/events",
            get(history::member_events),
        )
        .route("/v1/admin/reconciliation", get(admin::reconciliation))
        .route("/v1/admin/imports/members", post(import::import_members))
        .route(
            "/v1/admin/members/{member_id}/enrolments",
            post(enrolment::create),
        )
        .route("/v1/admin/webhooks", get(webhooks::list))
        .route(
            "/v1/admin/webhooks/{endpoint_id}",
            put(webhooks::put).delete(webhooks::delete),
        )
        .route(
            "/v1/admin/webhooks/{endpoint_id}/messages",
            get(webhooks::messages),
        )
        .route(
            "/v1/admin/webhooks/{endpoint_id}/messages/{webhook_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/v1/app/enrol", post(app::enrol))
        .route("/v1/app/members/{member}/profile", get(app::profile))
        .route("/v1/app/members/{member}/gifts", get(app::gifts))
        .route("/v1/app/members/{member}/history", get(app::history))
        .route("/v1/app/members/{member}/feed", get(app::feed))
        .route("/wallet", get(wallet::page))
        .route("/admin", get(admin_page::page))
        .fallback(loyalty_http_edge::errors::not_found)
        .method_not_allowed_fallback(loyalty_http_edge::errors::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(
            loyalty_http_edge::errors::json_errors,
        ))
        .layer(axum::middleware::map_response(protocol_header))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.http(),
            loyalty_http_edge::metrics::record,
        ))
        .with_state(state)
}
