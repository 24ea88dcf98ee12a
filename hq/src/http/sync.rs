//! The store-facing sync endpoints: push events, the ledger binding (the pull is `changes.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use loyalty_http_edge::Path;
use loyalty_protocol::{
    check_version, LedgerBinding, LedgerState, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};

use super::auth::require_store;
use super::batch;
use super::error::{blocking, ApiError};
use super::operator;
use super::AppState;
use crate::clock;

/// A request without the header is let through (curl, probes); one with another version is not.
pub(super) fn check_header(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(v) = headers.get(PROTOCOL_HEADER) else {
        return Ok(());
    };
    let found = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "protocol_version",
                format!("{PROTOCOL_HEADER} must be a number; HQ speaks {PROTOCOL_VERSION}"),
            )
        })?;
    Ok(check_version(found)?)
}

/// `POST /v1/stores/{store}/events`.
#[utoipa::path(post, path = "/v1/stores/{store}/events", tag = "stores", security(("store" = [])),
    params(("store" = String, Path, description = "The store's id", example = "store-042")),
    request_body = loyalty_protocol::EventBatch,
    responses((status = 200, description = "One outcome per event", body = loyalty_protocol::PushResponse), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn push(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PushResponse>, ApiError> {
    let started = std::time::Instant::now();
    require_store(&state, &headers, &store).await?;
    // A store in contact, whatever becomes of its push.
    state
        .metrics
        .contact(&store, chrono::Utc::now().timestamp());
    check_header(&headers)?;
    let body = body.map_err(ApiError::from_body)?;
    let st = state.clone();
    let result = blocking(move || {
        let mut push = batch::parse(&body, &store, st.max_batch_events)?;
        push.agent_version = operator::agent_version(&headers);
        Ok(st.store.ingest(&store, push)?)
    })
    .await
    .inspect_err(|e| state.metrics.push_refused(e.code))?;
    state
        .metrics
        .push_applied(&result.outcomes, started.elapsed().as_secs_f64());

    // After the commit: a live feed, the webhook sender or a waiting pull reads what it is
    // told of.
    state.hub.publish(&result.feed);
    if result.changed {
        state.hub.changes_committed();
    }
    Ok(Json(PushResponse {
        protocol: PROTOCOL_VERSION,
        outcomes: result.outcomes,
        watermark: result.watermark,
        hq_time: clock::now(),
    }))
}

/// `GET /v1/stores/{store}/ledger`: the ledger HQ takes this store's events from.
#[utoipa::path(get, path = "/v1/stores/{store}/ledger", tag = "stores", security(("store" = [])),
    params(("store" = String, Path, description = "The store's id", example = "store-042")),
    responses((status = 200, description = "The ledger HQ takes this store's events from", body = loyalty_protocol::LedgerState), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn ledger(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
) -> Result<Json<LedgerState>, ApiError> {
    require_store(&state, &headers, &store).await?;
    check_header(&headers)?;
    let st = state.clone();
    Ok(Json(blocking(move || Ok(st.store.ledger(&store)?)).await?))
}

/// `PUT /v1/stores/{store}/ledger`: the operator's re-base of a restored or replaced ledger
/// (`loyalty-agent rebase`), with the store's own token, recorded in the reconciliation report.
#[utoipa::path(put, path = "/v1/stores/{store}/ledger", tag = "stores", security(("store" = [])),
    params(("store" = String, Path, description = "The store's id", example = "store-042")),
    request_body = loyalty_protocol::LedgerBinding,
    responses((status = 200, description = "Re-based", body = loyalty_protocol::LedgerState), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn rebind_ledger(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LedgerState>, ApiError> {
    require_store(&state, &headers, &store).await?;
    check_header(&headers)?;
    let body = body.map_err(ApiError::from_body)?;
    let binding: LedgerBinding = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be {{\"protocol\", \"ledger_id\", \"after_seq\", \"reason\"}}: {e}"
        ))
    })?;
    check_version(binding.protocol)?;
    let st = state.clone();
    Ok(Json(
        blocking(move || Ok(st.store.rebind_ledger(&store, &binding)?)).await?,
    ))
}
