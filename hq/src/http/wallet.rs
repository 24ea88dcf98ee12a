//! `GET /wallet`: the member's wallet page, one self-contained HTML file (no external asset).
//! How it proves who it is: README "The member's wallet page".

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("wallet.html");

#[utoipa::path(get, path = "/wallet", tag = "app",
    responses((status = 200, description = "The member's wallet page", content_type = "text/html; charset=utf-8", body = String), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page runs its own inline script only, and talks to HQ only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
