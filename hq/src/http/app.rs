//! The member API (`/v1/app/...`): a member's profile, gifts, history and live feed, each
//! behind the member's own app signature (`app_auth`), and the exchange of a one-time
//! enrolment code for a browser's key.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::Stream;
use loyalty_http_edge::Path;
use serde::Deserialize;
use serde_json::{json, Value};

use super::app_auth::{require_member, verifying_key};
use super::error::{blocking, ApiError};
use super::AppState;
use crate::store::app::{AppGift, AppProfile, EnrolRefusal};
use crate::store::feed::FeedItem;

/// Feed rows read per database round while catching up.
const FEED_PAGE: usize = 200;

/// `{"id","type","timestamp","data"}`.
fn item_json(item: &FeedItem) -> Value {
    let mut v: Value = serde_json::from_str(&item.body).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(item.id));
    }
    v
}

/// `GET /v1/app/members/{member}/profile`: balance, tier, display name.
#[utoipa::path(get, path = "/v1/app/members/{member}/profile", tag = "app", security(("app_signature" = [])),
    params(("member" = String, Path, description = "The member the signature is for")),
    responses((status = 200, description = "The member's profile", body = crate::store::app::AppProfile), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn profile(
    State(state): State<Arc<AppState>>,
    Path(member): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<AppProfile>, ApiError> {
    require_member(&state, &headers, "GET", uri.path(), &member).await?;
    let st = state.clone();
    let m = member.clone();
    blocking(move || Ok(st.store.app_profile(&m)?))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no member {member}")))
}

/// `GET /v1/app/members/{member}/gifts`: open, redeemed and expired, newest first.
#[utoipa::path(get, path = "/v1/app/members/{member}/gifts", tag = "app", security(("app_signature" = [])),
    params(("member" = String, Path, description = "The member the signature is for")),
    responses((status = 200, description = "The member's gifts, newest first", body = super::openapi::Gifts), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn gifts(
    State(state): State<Arc<AppState>>,
    Path(member): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_member(&state, &headers, "GET", uri.path(), &member).await?;
    let st = state.clone();
    let gifts: Vec<AppGift> = blocking(move || Ok(st.store.app_gifts(&member)?)).await?;
    Ok(Json(json!({ "gifts": gifts })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /v1/app/members/{member}/history?before=&limit=`: newest first; `next_before` pages on.
#[utoipa::path(get, path = "/v1/app/members/{member}/history", tag = "app", security(("app_signature" = [])),
    params(("member" = String, Path, description = "The member the signature is for"),
        ("before" = Option<i64>, Query, description = "Items older than this id (the last page's `next_before`)"),
        ("limit" = Option<usize>, Query, description = "1 to 100, default 20")),
    responses((status = 200, description = "Feed items, newest first", body = super::openapi::History), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    Path(member): Path<String>,
    Query(q): Query<HistoryQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_member(&state, &headers, "GET", uri.path(), &member).await?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let st = state.clone();
    let items = blocking(move || Ok(st.store.feed_before(&member, q.before, limit)?)).await?;
    let next_before = (items.len() == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(item_json).collect::<Vec<_>>(),
        "next_before": next_before,
    })))
}

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<i64>,
}

/// `GET /v1/app/members/{member}/feed`: server-sent events, one per feed row (`id:` the row,
/// `event:` its type, `data:` `{"id","type","timestamp","data"}`), from after `Last-Event-ID`
/// (or `?after=`) or, without either, from now on.
#[utoipa::path(get, path = "/v1/app/members/{member}/feed", tag = "app", security(("app_signature" = [])),
    params(("member" = String, Path, description = "The member the signature is for"),
        ("after" = Option<i64>, Query, description = "Start after this item id (or send `Last-Event-ID`)")),
    responses((status = 200, description = "Server-sent events: `id:` the item's id, `event:` its type, `data:` the item", content_type = "text/event-stream", body = String), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn feed(
    State(state): State<Arc<AppState>>,
    Path(member): Path<String>,
    Query(q): Query<FeedQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    require_member(&state, &headers, "GET", uri.path(), &member).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after);
    // Subscribed before reading the newest id: a row committed in between is either counted in
    // `latest` or announced to this receiver, never neither.
    let rx = state.hub.subscribe(&member, 0);
    let st = state.clone();
    let m = member.clone();
    let latest = blocking(move || Ok(st.store.feed_latest(&m)?)).await?;
    state.hub.note(&member, latest);
    let position = resume.unwrap_or(latest).max(0);
    let stopped = Box::pin(state.hub.stopped());
    tracing::debug!(member = %member, position, "Member feed opened.");
    let feed = Feed {
        state,
        member,
        position,
        rx,
        stopped,
        pending: std::collections::VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        let event = Event::default()
            .id(item.id.to_string())
            .event(item.kind.clone())
            .data(item_json(&item).to_string());
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Feed {
    state: Arc<AppState>,
    member: String,
    position: i64,
    rx: tokio::sync::watch::Receiver<i64>,
    stopped: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    pending: std::collections::VecDeque<FeedItem>,
}

impl Feed {
    /// The next row after `position`, waiting for one; `None` ends the stream (HQ stopping).
    async fn next(&mut self) -> Option<FeedItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.position = item.id;
                return Some(item);
            }
            if *self.rx.borrow_and_update() > self.position {
                let st = self.state.clone();
                let (m, after) = (self.member.clone(), self.position);
                match blocking(move || Ok(st.store.feed_after(&m, after, FEED_PAGE)?)).await {
                    Ok(items) if !items.is_empty() => {
                        self.pending.extend(items);
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
            tokio::select! {
                changed = self.rx.changed() => changed.ok()?,
                _ = &mut self.stopped => return None,
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolInput {
    code: String,
    public_key: String,
}

/// `POST /v1/app/enrol` `{"code","public_key"}`: spends a one-time enrolment code and lets
/// `public_key` (Ed25519, 32 bytes base64) sign for the code's member from now on.
#[utoipa::path(post, path = "/v1/app/enrol", tag = "app",
    request_body = EnrolInput,
    responses((status = 200, description = "The key now signs for this member", body = super::openapi::Enrolled), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let input: EnrolInput = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("body must be {{\"code\", \"public_key\"}}: {e}"),
        )
    })?;
    if verifying_key(&input.public_key).is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_key",
            "public_key must be an Ed25519 public key: 32 bytes, base64",
        ));
    }
    let hash = super::enrolment::hash(&input.code);
    let st = state.clone();
    let key = input.public_key.trim().to_owned();
    let out = blocking(move || Ok(st.store.enrol(&hash, &key)?)).await?;
    match out {
        Ok(member) => {
            tracing::info!(member = %member, "App key enrolled.");
            Ok(Json(json!({ "member_id": member })))
        }
        Err(why) => {
            let (code, message) = match why {
                EnrolRefusal::Unknown => ("enrolment_unknown", "no such enrolment code"),
                EnrolRefusal::Used => (
                    "enrolment_used",
                    "this enrolment link was already used: ask for a new one",
                ),
                EnrolRefusal::Expired => (
                    "enrolment_expired",
                    "this enrolment link has expired: ask for a new one",
                ),
            };
            tracing::warn!(code, "Enrolment refused.");
            Err(ApiError::new(StatusCode::FORBIDDEN, code, message))
        }
    }
}
