//! `GET /v1/stores/{store}/changes?cursor=&limit=&wait=`: the stores' pull, answered at once
//! when something changed after the cursor, otherwise held until a change is committed or
//! `wait` seconds pass (a long-poll), so an idle store costs one request per wait, not one a
//! second.
//!
//! The wait holds no state but a wake-up receiver (`FeedHub::watch_changes`): every answer is
//! read from the database, and another HQ process serving the same database would simply
//! answer at the end of the wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use loyalty_http_edge::Path;
use loyalty_protocol::ChangesPage;
use tokio::time::Instant;

use super::auth::require_store;
use super::error::{blocking, ApiError};
use super::sync::check_header;
use super::AppState;
use crate::cursor;

/// Default and largest page of the changes feed.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 5_000;

/// `GET /v1/stores/{store}/changes?cursor=&limit=&wait=`.
#[utoipa::path(get, path = "/v1/stores/{store}/changes", tag = "stores", security(("store" = [])),
    params(("store" = String, Path, description = "The store's id", example = "store-042"),
        ("cursor" = Option<String>, Query, description = "The last page's `next_cursor`; empty for the beginning"),
        ("limit" = Option<u32>, Query, description = "Changes per page"),
        ("wait" = Option<u32>, Query, description = "Seconds to wait for a change when there is none after the cursor (capped at HQ's `max_pull_wait_secs`); absent or 0: answer at once")),
    responses((status = 200, description = "Members, campaigns and redemptions elsewhere changed after the cursor (empty when the wait ran out)", body = loyalty_protocol::ChangesPage), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn changes(
    State(state): State<Arc<AppState>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<ChangesPage>, ApiError> {
    require_store(&state, &headers, &store).await?;
    check_header(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = cursor::decode(query.get("cursor").map_or("", String::as_str))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", e.to_string()))?;
    let limit = super::page_limit::page_limit(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    // A wait longer than HQ allows is shortened, not refused: the store only waits less.
    let wait = match query.get("wait") {
        None => Duration::ZERO,
        Some(w) => w
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ApiError::bad_request("wait must be whole seconds"))?,
    }
    .min(state.max_pull_wait);
    {
        // Recorded as it arrives: a waiting pull is a store in contact.
        let (st, store, headers) = (state.clone(), store.clone(), headers.clone());
        blocking(move || {
            super::operator::note_pull(&st, &store, &headers);
            Ok(())
        })
        .await?;
    }
    let deadline = Instant::now() + wait;
    // Taken before the first read: a change committed after it is in that read or wakes us.
    let mut woken = state.hub.watch_changes();
    let mut stopped = std::pin::pin!(state.hub.stopped());
    let unchanged = cursor::encode(after);
    let mut last = false;
    loop {
        let page = read(&state, &store, after, limit).await?;
        let news = !page.changes.is_empty() || page.has_more || page.next_cursor != unchanged;
        if news || last || Instant::now() >= deadline {
            return Ok(Json(page));
        }
        // Every way out reads the page again, so its `hq_time` is the time the answer leaves:
        // the store measures its clock's skew against it.
        tokio::select! {
            woke = woken.changed() => last = woke.is_err(),
            () = tokio::time::sleep_until(deadline) => {}
            // HQ stopping: the drain must not wait for the rest of the wait.
            () = &mut stopped => last = true,
        }
    }
}

async fn read(
    state: &Arc<AppState>,
    store: &str,
    after: i64,
    limit: usize,
) -> Result<ChangesPage, ApiError> {
    let st = state.clone();
    let store = store.to_owned();
    blocking(move || Ok(st.store.changes(&store, after, limit)?)).await
}
