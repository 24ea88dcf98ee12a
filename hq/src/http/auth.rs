//! Bearer tokens: the admin's, and one per store.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use super::error::{blocking, ApiError};
use super::AppState;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Compares without stopping at the first differing byte, so timing does not reveal a prefix.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if same(t, &state.admin_token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the admin token is not valid")),
        None => Err(ApiError::unauthorized(
            "missing Authorization: Bearer <admin token>",
        )),
    }
}

/// The caller must hold the token of `store`: no or an unknown token is 401, another store's
/// token is 403.
pub async fn require_store(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    store: &str,
) -> Result<(), ApiError> {
    let Some(token) = bearer(headers).map(str::to_owned) else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <store token>",
        ));
    };
    let st = state.clone();
    let owner = blocking(move || Ok(st.store.store_for_token(&token)?)).await?;
    match owner {
        None => Err(ApiError::unauthorized("the store token is not valid")),
        Some(owner) if owner == store => Ok(()),
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
    fn bearer_and_compare() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
