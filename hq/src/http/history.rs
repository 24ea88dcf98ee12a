//! `GET /v1/admin/members/{member_id}/events?before=&limit=`: a member's history for the
//! operator, every stored event of their accounts, newest first, in pages.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use loyalty_http_edge::Path;
use serde::Serialize;

use super::auth::require_admin;
use super::error::{blocking, ApiError};
use super::AppState;
use crate::store::{EventPosition, HistoryEvent};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// A page of a member's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberEvents {
    pub member_id: String,
    /// Newest first.
    pub items: Vec<HistoryEvent>,
    /// `before=` for the next (older) page; `null` on the last page.
    pub next_before: Option<String>,
}

/// The cursor is opaque to clients: the last event's time and id, base64url.
fn encode(p: &EventPosition) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}\n{}", p.recorded_at, p.event_id))
}

fn decode(text: &str) -> Option<EventPosition> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (recorded_at, event_id) = text.split_once('\n')?;
    Some(EventPosition {
        recorded_at: recorded_at.to_owned(),
        event_id: event_id.to_owned(),
    })
}

/// `GET /v1/admin/members/{member_id}/events`.
#[utoipa::path(get, path = "/v1/admin/members/{member_id}/events", tag = "admin", security(("admin" = [])),
    params(("member_id" = String, Path, description = "A member id"),
        ("before" = Option<String>, Query, description = "The last page's `next_before`; absent for the newest events"),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 500 (default 50)")),
    responses((status = 200, description = "The member's stored events (their own and their cards' accounts), newest first, with their flags", body = MemberEvents), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn member_events(
    State(state): State<Arc<AppState>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<MemberEvents>, ApiError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = super::page_limit::page_limit(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = match query.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(decode(b).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                "before must be a next_before this route answered",
            )
        })?),
    };
    let st = state.clone();
    let id = member_id.clone();
    // One more than asked, to know whether an older page follows.
    let mut items =
        blocking(move || Ok(st.store.member_events(&id, before.as_ref(), limit + 1)?))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no member {member_id}")))?;
    let next_before = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| {
            encode(&EventPosition {
                recorded_at: e.recorded_at.clone(),
                event_id: e.event_id.clone(),
            })
        })
    } else {
        None
    };
    Ok(Json(MemberEvents {
        member_id,
        items,
        next_before,
    }))
}
