//! The `limit` query parameter of the routes that refuse an out-of-range page size (400) rather
//! than clamp it: a feed a store or an operator pages through must get the page size it asked
//! for or be told why not.

use super::error::ApiError;
use std::collections::HashMap;

/// `limit` from `query`: `default` when absent, 1 to `max` when given, anything else refused.
pub fn page_limit(
    query: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be 1 to {max}"))),
    }
}
