//! `GET /metrics`; the HTTP series' middleware is `loyalty_http_edge::metrics::record`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::metrics::CONTENT_TYPE;

/// `GET /metrics`: no token (README "HQ's metrics").
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
}
