//! The local HTTP API of CONTRACT.md: POS sales, refunds and redemptions, lane and member
//! views, health and metrics. Bad input is always a 4xx with an error body, never a 500; every
//! error body is JSON, axum's own rejections included (`loyalty_http_edge::errors`).

mod basket;
mod error;
mod handlers;
pub mod in_flight;
pub mod lane_page;
mod lane_view;
pub mod openapi;
mod quote;
mod replay;

pub use error::ApiError;

use crate::checkout::{Identifier, Lanes};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::proximity::sensor_node::NodeHealth;
use crate::scan::ScannerHealth;
use axum::routing::{get, post};
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub lanes: Arc<Lanes>,
    pub identifier: Identifier,
    pub metrics: Arc<Metrics>,
    pub scanners: Arc<BTreeMap<String, Arc<ScannerHealth>>>,
    pub sensors: Arc<BTreeMap<String, Arc<NodeHealth>>>,
    pub store_id: String,
    /// None when no HQ is configured (a store run on imported members).
    pub sync: Option<Arc<crate::sync::SyncHealth>>,
    /// None when no zones are configured.
    pub tracking: Option<Arc<crate::proximity::pipeline::TrackingHealth>>,
    /// The agent's own Bluetooth adapters, by sensor name.
    pub adapters: Arc<BTreeMap<String, Arc<crate::proximity::BluetoothHealth>>>,
    /// The cashier pages' live feeds.
    pub live: Arc<lane_page::LivePages>,
    /// Requests with the same id take turns (a retry waits for the first, then replays it).
    pub in_flight: Arc<in_flight::InFlight>,
}

pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/v1/lanes/{lane}/sales", post(handlers::sale))
        .route("/v1/lanes/{lane}", get(handlers::lane))
        .route("/v1/lanes/{lane}/clear", post(handlers::clear))
        .route("/v1/lanes/{lane}/quotes", post(quote::quote))
        .route("/v1/lanes/{lane}/voids", post(handlers::void))
        .route("/v1/lanes/{lane}/redemptions", post(handlers::redeem))
        .route("/v1/lanes/{lane}/refunds", post(handlers::refund))
        .route("/v1/members/{member_id}", get(handlers::member))
        .route("/lane/{lane}", get(lane_page::page))
        .route("/lane/{lane}/events", get(lane_page::events))
        .route("/healthz", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(loyalty_http_edge::errors::not_found)
        .method_not_allowed_fallback(loyalty_http_edge::errors::method_not_allowed)
        .layer(axum::middleware::from_fn(
            loyalty_http_edge::errors::json_errors,
        ))
        // Outermost, so the status counted is the one the client gets.
        .layer(axum::middleware::from_fn_with_state(
            metrics.http(),
            loyalty_http_edge::metrics::record,
        ))
        .with_state(state)
}
