//! Admin endpoints of the webhooks: endpoints, their delivery log and dead letters, redelivery.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use loyalty_http_edge::Path;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::require_admin;
use super::error::{blocking, ApiError};
use super::AppState;
use crate::store::feed::TYPES;
use crate::store::webhooks::{Endpoint, EndpointView, Message};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    event_types: Vec<String>,
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// `PUT /v1/admin/webhooks/{endpoint_id}` `{"url","event_types"[,"secret"]}`: answers the
/// endpoint with its secret (`whsec_<base64>`, made by HQ when none is given).
#[utoipa::path(put, path = "/v1/admin/webhooks/{endpoint_id}", tag = "webhooks", security(("admin" = [])),
    params(("endpoint_id" = String, Path, description = "1 to 64 letters, digits, `-`, `_` or `.`")),
    request_body = EndpointInput,
    responses((status = 200, description = "The endpoint with its signing secret", body = crate::store::webhooks::Endpoint), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    Path(endpoint_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Endpoint>, ApiError> {
    require_admin(&state, &headers)?;
    super::admin::check_id("endpoint", &endpoint_id)?;
    let body = body.map_err(ApiError::from_body)?;
    let input: EndpointInput = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("body must be {{\"url\", \"event_types\": [...], \"secret\"}}: {e}"),
        )
    })?;
    let url = reqwest::Url::parse(&input.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            unprocessable(
                "bad_url",
                format!("url {:?} is not an http(s) URL", input.url),
            )
        })?;
    if input.event_types.is_empty() {
        return Err(unprocessable(
            "bad_event_types",
            format!("event_types: name at least one of {}", TYPES.join(", ")),
        ));
    }
    for t in &input.event_types {
        if !TYPES.contains(&t.as_str()) {
            return Err(unprocessable(
                "bad_event_types",
                format!("event_types: {t:?} is not one of {}", TYPES.join(", ")),
            ));
        }
    }
    let secret = match input.secret {
        Some(s) => {
            let ok = s
                .strip_prefix("whsec_")
                .and_then(|b| STANDARD.decode(b).ok())
                .is_some_and(|k| (24..=64).contains(&k.len()));
            if !ok {
                return Err(unprocessable(
                    "bad_secret",
                    "secret must be whsec_ and 24 to 64 bytes in base64".into(),
                ));
            }
            s
        }
        None => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            format!("whsec_{}", STANDARD.encode(key))
        }
    };
    let endpoint = Endpoint {
        endpoint_id,
        url: url.to_string(),
        secret,
        event_types: input.event_types,
    };
    let st = state.clone();
    let e = endpoint.clone();
    blocking(move || Ok(st.store.put_webhook(&e)?)).await?;
    tracing::info!(endpoint = %endpoint.endpoint_id, url = %endpoint.url, "Webhook endpoint saved.");
    Ok(Json(endpoint))
}

/// `DELETE /v1/admin/webhooks/{endpoint_id}`: its undelivered messages are dropped.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{endpoint_id}", tag = "webhooks", security(("admin" = [])),
    params(("endpoint_id" = String, Path, description = "An endpoint id")),
    responses((status = 200, description = "Deleted, with its undelivered messages", body = super::openapi::EndpointDeleted), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(endpoint_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let id = endpoint_id.clone();
    if !blocking(move || Ok(st.store.delete_webhook(&id)?)).await? {
        return Err(ApiError::not_found(format!(
            "no webhook endpoint {endpoint_id}"
        )));
    }
    Ok(Json(json!({ "endpoint_id": endpoint_id, "deleted": true })))
}

/// `GET /v1/admin/webhooks`: endpoints with pending, delivered and dead counts.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "webhooks", security(("admin" = [])),
    responses((status = 200, description = "Every endpoint with its queue's counts", body = super::openapi::Endpoints), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let endpoints: Vec<EndpointView> = blocking(move || Ok(st.store.webhooks()?)).await?;
    Ok(Json(json!({ "endpoints": endpoints })))
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/admin/webhooks/{endpoint_id}/messages?state=pending|delivered|dead`: the delivery
/// log, newest first, each message with every attempt.
#[utoipa::path(get, path = "/v1/admin/webhooks/{endpoint_id}/messages", tag = "webhooks", security(("admin" = [])),
    params(("endpoint_id" = String, Path, description = "An endpoint id"),
        ("state" = Option<String>, Query, description = "`pending`, `delivered` or `dead`"),
        ("limit" = Option<usize>, Query, description = "At most this many (1 to 1000, default 100)")),
    responses((status = 200, description = "The delivery log, newest first", body = super::openapi::Messages), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Path(endpoint_id): Path<String>,
    Query(q): Query<MessagesQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    if let Some(s) = &q.state {
        if !matches!(s.as_str(), "pending" | "delivered" | "dead") {
            return Err(ApiError::bad_request(
                "state must be pending, delivered or dead",
            ));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let st = state.clone();
    let id = endpoint_id.clone();
    let found: Option<Vec<Message>> =
        blocking(move || Ok(st.store.webhook_messages(&id, q.state.as_deref(), limit)?)).await?;
    let messages =
        found.ok_or_else(|| ApiError::not_found(format!("no webhook endpoint {endpoint_id}")))?;
    Ok(Json(json!({ "messages": messages })))
}

/// `POST /v1/admin/webhooks/{endpoint_id}/messages/{webhook_id}/redeliver`: sends it again
/// (same `webhook-id`), with a fresh dead-letter deadline.
#[utoipa::path(post, path = "/v1/admin/webhooks/{endpoint_id}/messages/{webhook_id}/redeliver", tag = "webhooks", security(("admin" = [])),
    params(("endpoint_id" = String, Path, description = "An endpoint id"), ("webhook_id" = String, Path, description = "`msg_<n>`")),
    responses((status = 200, description = "Queued again, same `webhook-id`", body = super::openapi::Redelivered), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    Path((endpoint_id, webhook_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let message_id = webhook_id
        .strip_prefix("msg_")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| ApiError::not_found(format!("no message {webhook_id}")))?;
    let st = state.clone();
    let id = endpoint_id.clone();
    if !blocking(move || Ok(st.store.redeliver(&id, message_id)?)).await? {
        return Err(ApiError::not_found(format!(
            "endpoint {endpoint_id} has no message {webhook_id}"
        )));
    }
    state.hub.webhooks.notify_one();
    tracing::info!(endpoint = %endpoint_id, webhook_id = %webhook_id, "Redelivery requested.");
    Ok(Json(
        json!({ "webhook_id": webhook_id, "state": "pending" }),
    ))
}
