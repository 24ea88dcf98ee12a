//! One-time enrolment links an admin issues for a member's browser wallet. HQ keeps only the
//! code's SHA-256: a leaked database does not hold usable links.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use loyalty_http_edge::Path;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::require_admin;
use super::error::{blocking, ApiError};
use super::AppState;

/// The stored form of a code.
pub fn hash(code: &str) -> String {
    Sha256::digest(code.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /v1/admin/members/{member_id}/enrolments`: `{"code","wallet_path","expires_at"}`; the
/// member opens `wallet_path` (HQ's `/wallet#enrol=<code>`) once, within its validity.
#[utoipa::path(post, path = "/v1/admin/members/{member_id}/enrolments", tag = "admin", security(("admin" = [])),
    params(("member_id" = String, Path, description = "A member id")),
    responses((status = 200, description = "A one-time wallet enrolment link", body = super::openapi::EnrolmentLink), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(member): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let code = URL_SAFE_NO_PAD.encode(bytes);
    let ttl = state.app.enrolment_ttl_secs;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ttl);
    let st = state.clone();
    let (m, h) = (member.clone(), hash(&code));
    let known = blocking(move || {
        Ok(st
            .store
            .create_enrolment(&m, &h, expires.timestamp_millis())?)
    })
    .await?;
    if !known {
        return Err(ApiError::not_found(format!("no member {member}")));
    }
    tracing::info!(member = %member, ttl_secs = ttl, "Enrolment link issued.");
    Ok(Json(json!({
        "member_id": member,
        "code": code,
        "wallet_path": format!("/wallet#enrol={code}"),
        "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}
