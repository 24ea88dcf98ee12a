//! `GET /admin`: the operator's page, one self-contained HTML file (vanilla JS, no build
//! step). It holds no data: it calls the admin API with the token the operator types, kept in
//! the tab's sessionStorage, so the page itself needs no token (README "HQ's admin page").

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("admin.html");

#[utoipa::path(get, path = "/admin", tag = "operations",
    responses((status = 200, description = "The operator's page (stores, a member's history, reconciliation); it asks for the admin token", content_type = "text/html; charset=utf-8", body = String), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Its own inline script only, talking to HQ only; no other site may frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
