//! Bearer tokens: the admin's, and one per store.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use super::error::{blocking, ApiError};
use super::AppState;
use crate::token::TokenHash;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if TokenHash::of(t).matches(&state.admin_token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the admin token is not valid")),
        None => Err(ApiError::unauthorized(
            "missing Authorization: Bearer <admin token>",
        )),
    }
}

/// The caller must hold the token of `store`: no or an unknown token is 401, another store's
/// token is 403. The path's store's hash is compared in constant time; only a token that does
/// not match it is looked up by its hash, to say whose it is.
pub async fn require_store(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    store: &str,
) -> Result<(), ApiError> {
    let Some(presented) = bearer(headers).map(TokenHash::of) else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <store token>",
        ));
    };
    let st = state.clone();
    let id = store.to_owned();
    let held = blocking(move || Ok(st.store.store_token(&id)?)).await?;
    if held.is_some_and(|h| h.matches(&presented)) {
        return Ok(());
    }
    let st = state.clone();
    let owner = blocking(move || Ok(st.store.store_for_token(&presented)?)).await?;
    match owner {
        None => Err(ApiError::unauthorized("the store token is not valid")),
        Some(owner) => {
            tracing::warn!(token_store = %owner, path_store = %store, "Store token used for another store.");
            Err(ApiError::forbidden(format!(
                "this token belongs to store {owner}, not {store}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_read() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
