//! The operator's view: `GET /v1/admin/stores`, and the contacts (push, pull, agent version)
//! it shows, recorded by the store routes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Serialize;

use super::auth::require_admin;
use super::error::{blocking, ApiError};
use super::AppState;
use crate::store::StoreView;

/// The agent's `User-Agent` prefix; what follows is its version.
const AGENT_PRODUCT: &str = "loyalty-agent/";

/// The agent version a request says (`User-Agent: loyalty-agent/<version>`), if it is one: at
/// most 64 characters of what a version holds, so a header cannot fill the store list.
pub fn agent_version(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let version = ua.strip_prefix(AGENT_PRODUCT)?.split_whitespace().next()?;
    let ok = (1..=64).contains(&version.len())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    ok.then(|| version.to_owned())
}

/// Records a store's pull (the store list and the last-contact gauge). A failure is logged,
/// never the store's problem: its pull goes on.
pub fn note_pull(state: &AppState, store: &str, headers: &HeaderMap) {
    let at = chrono::Utc::now();
    state.metrics.contact(store, at.timestamp());
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Err(e) = state
        .store
        .note_pull(store, &at, agent_version(headers).as_deref())
    {
        tracing::warn!(store = %store, error = %e, "Could not record the store's pull.");
    }
}

/// `GET /v1/admin/stores`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreList {
    pub stores: Vec<StoreView>,
}

/// `GET /v1/admin/stores`: every registered store with its state.
#[utoipa::path(get, path = "/v1/admin/stores", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "Every registered store, by id: its ledger (id, watermark), last push and pull, events stored today (UTC) and agent version", body = StoreList), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn stores(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<StoreList>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let stores = blocking(move || Ok(st.store.stores(&crate::clock::now())?)).await?;
    Ok(Json(StoreList { stores }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_version_is_read_from_its_user_agent_only() {
        let with = |ua: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::USER_AGENT, ua.parse().unwrap());
            agent_version(&h)
        };
        assert_eq!(with("loyalty-agent/0.9.1"), Some("0.9.1".into()));
        assert_eq!(
            with("loyalty-agent/1.0.0-rc.1 (linux)"),
            Some("1.0.0-rc.1".into())
        );
        assert_eq!(with("curl/8.5.0"), None);
        assert_eq!(with("loyalty-agent/<script>"), None);
        assert_eq!(agent_version(&HeaderMap::new()), None);
    }
}
