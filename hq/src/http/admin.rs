//! Admin endpoints: stores, members, campaigns, reconciliation. All need the admin token.
//! A PUT logs at debug: a member import is thousands of them, one info line each drowned the
//! log.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use loyalty_http_edge::Path;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::require_admin;
use super::error::{blocking, ApiError};
use super::AppState;
use crate::store::{MemberInput, MemberView, Reconciliation, ReconciliationFilter};
use crate::token::TokenHash;

/// Ids HQ accepts for stores, members and campaigns: what fits in a URL path and a log line.
pub fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} id must be 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A member profile as HQ saves it, or why not: the PUT's rules, which the bulk import applies
/// to every row.
pub(super) fn check_profile(mut input: MemberInput) -> Result<MemberInput, ApiError> {
    // One card, one key: the text a lane scans (protocol::card), whatever spelling HQ was sent.
    let mut cards = Vec::with_capacity(input.cards.len());
    for (i, text) in input.cards.iter().enumerate() {
        let card = loyalty_protocol::canonical_card(text).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "bad_card",
                format!("cards[{i}]: {e}"),
            )
        })?;
        if !cards.contains(&card) {
            cards.push(card);
        }
    }
    input.cards = cards;
    // The stores and the member API check signatures with it: a key that is not one would
    // only surface later as every QR and app request refused.
    if let Some(key) = &input.qr_public_key {
        if super::app_auth::verifying_key(key).is_none() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "bad_key",
                "qr_public_key must be an Ed25519 public key: 32 bytes, base64 (44 characters ending in `=`)",
            ));
        }
    }
    Ok(input)
}

/// The body as `T`; a key `T` does not know is refused, not ignored (a misspelt `card` must not
/// save a member without cards).
fn parse<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(ApiError::from_body)?;
    let mut unknown = Vec::new();
    let parsed: T =
        serde_ignored::deserialize(&mut serde_json::Deserializer::from_slice(&body), |path| {
            unknown.push(path.to_string())
        })
        .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))?;
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "body must be {shape}: unknown field {}",
            unknown.join(", ")
        )));
    }
    Ok(parsed)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreInput {
    /// The store's bearer token: 8 to 512 characters, unique to the store.
    token: String,
}

/// `PUT /v1/admin/stores/{store_id}` `{"token"}`.
#[utoipa::path(put, path = "/v1/admin/stores/{store_id}", tag = "admin", security(("admin" = [])),
    params(("store_id" = String, Path, description = "1 to 64 letters, digits, `-`, `_` or `.`")),
    request_body = StoreInput,
    responses((status = 200, description = "Registered (or its token replaced)", body = super::openapi::StoreRegistered), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn put_store(
    State(state): State<Arc<AppState>>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    check_id("store", &store_id)?;
    let input: StoreInput = parse(body, "{\"token\": \"...\"}")?;
    if input.token.trim().len() < 8 || input.token.len() > 512 {
        return Err(ApiError::bad_request("token must be 8 to 512 characters"));
    }
    let st = state.clone();
    let id = store_id.clone();
    let token = TokenHash::of(input.token.trim());
    blocking(move || Ok(st.store.put_store(&id, &token)?)).await?;
    tracing::debug!(store = %store_id, "Registered store.");
    Ok(Json(json!({ "store_id": store_id })))
}

/// `PUT /v1/admin/members/{member_id}`.
#[utoipa::path(put, path = "/v1/admin/members/{member_id}", tag = "admin", security(("admin" = [])),
    params(("member_id" = String, Path, description = "1 to 64 letters, digits, `-`, `_` or `.`")),
    request_body = loyalty_protocol::MemberProfile,
    responses((status = 200, description = "Saved: the member as HQ now holds them", body = crate::store::MemberView), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn put_member(
    State(state): State<Arc<AppState>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<MemberView>, ApiError> {
    require_admin(&state, &headers)?;
    check_id("member", &member_id)?;
    let input: MemberInput = parse(
        body,
        "{\"tier\", \"segments\": [...], \"cards\": [...], \"qr_public_key\", \"proximity_key\"}",
    )?;
    let input = check_profile(input)?;
    let st = state.clone();
    let id = member_id.clone();
    let view = blocking(move || {
        st.store.put_member(&id, &input)?;
        // Committed: the stores' waiting pulls read the member now, even if the read below fails.
        st.hub.changes_committed();
        st.store.member(&id)?.ok_or_else(ApiError::internal)
    })
    .await?;
    tracing::debug!(member = %member_id, cards = view.cards.len(), "Saved member.");
    Ok(Json(view))
}

/// `GET /v1/admin/members/{member_id}`.
#[utoipa::path(get, path = "/v1/admin/members/{member_id}", tag = "admin", security(("admin" = [])),
    params(("member_id" = String, Path, description = "A member id")),
    responses((status = 200, description = "The member, balance and flags", body = crate::store::MemberView), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn get_member(
    State(state): State<Arc<AppState>>,
    Path(member_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MemberView>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let id = member_id.clone();
    blocking(move || Ok(st.store.member(&id)?))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no member {member_id}")))
}

/// `PUT /v1/admin/campaigns/{campaign_id}`: a points or gift campaign, checked with the stores'
/// rules (422 `invalid_campaign` with every problem), stored as-is, version bumped.
#[utoipa::path(put, path = "/v1/admin/campaigns/{campaign_id}", tag = "admin", security(("admin" = [])),
    params(("campaign_id" = String, Path, description = "1 to 64 letters, digits, `-`, `_` or `.`")),
    request_body(content = super::openapi::Campaign, description = "A points or a gift campaign (README, \"HQ's API\"); 422 `invalid_campaign` names every problem"),
    responses((status = 200, description = "Saved; the stores apply it at their next pull", body = super::openapi::CampaignSaved), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn put_campaign(
    State(state): State<Arc<AppState>>,
    Path(campaign_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    check_id("campaign", &campaign_id)?;
    let body: Value = parse(body, "a JSON object")?;
    if !body.is_object() {
        return Err(ApiError::bad_request("a campaign must be a JSON object"));
    }
    // The stores' own checks: a campaign HQ accepts is one every store runs, and HQ staff read
    // the sentences a store would otherwise only have logged.
    if let Err(problems) = loyalty_rules::campaign::validate(&campaign_id, 1, &body) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_campaign",
            problems.join("; "),
        ));
    }
    let st = state.clone();
    let id = campaign_id.clone();
    let version = blocking(move || Ok(st.store.put_campaign(&id, &body)?)).await?;
    state.hub.changes_committed();
    tracing::debug!(campaign = %campaign_id, version, "Saved campaign.");
    Ok(Json(
        json!({ "campaign_id": campaign_id, "version": version }),
    ))
}

/// `DELETE /v1/admin/campaigns/{campaign_id}`: the stores learn it through the feed.
#[utoipa::path(delete, path = "/v1/admin/campaigns/{campaign_id}", tag = "admin", security(("admin" = [])),
    params(("campaign_id" = String, Path, description = "A campaign id")),
    responses((status = 200, description = "Deleted; the stores drop it at their next pull", body = super::openapi::CampaignDeleted), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn delete_campaign(
    State(state): State<Arc<AppState>>,
    Path(campaign_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let id = campaign_id.clone();
    let version = blocking(move || Ok(st.store.delete_campaign(&id)?))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {campaign_id}")))?;
    state.hub.changes_committed();
    tracing::info!(campaign = %campaign_id, version, "Deleted campaign.");
    Ok(Json(
        json!({ "campaign_id": campaign_id, "version": version, "deleted": true }),
    ))
}

/// `GET /v1/admin/reconciliation?store=&flag=&since=&until=`.
#[utoipa::path(get, path = "/v1/admin/reconciliation", tag = "admin", security(("admin" = [])),
    params(("store" = Option<String>, Query, description = "Only this store's flags, rejections and ledger bindings"),
        ("flag" = Option<String>, Query, description = "Only flags of this kind (`overdraft`, `unknown_member`, ...); rejections and ledger bindings are then left out"),
        ("since" = Option<String>, Query, description = "From this time on, inclusive (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Before this time, exclusive (RFC 3339)")),
    responses((status = 200, description = "What HQ flagged, what it refused, and every ledger each store was bound to (README, \"Sync with HQ\"): the most recent 1,000 of each that match", body = crate::store::Reconciliation), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}`", body = loyalty_protocol::ErrorBody)))]
pub async fn reconciliation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Reconciliation>, ApiError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = reconciliation_filter(&query)?;
    let st = state.clone();
    Ok(Json(
        blocking(move || Ok(st.store.reconciliation(&filter)?)).await?,
    ))
}

/// The query as a filter; an empty parameter is no filter. Times are rewritten as HQ writes
/// its own (UTC, milliseconds, `Z`), so they compare as text with the stored ones.
fn reconciliation_filter(
    query: &HashMap<String, String>,
) -> Result<ReconciliationFilter, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "store" | "flag" | "since" | "until"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}: store, flag, since, until"
        )));
    }
    let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let time = |name: &str| -> Result<Option<String>, ApiError> {
        text(name)
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(&v)
                    .map(|t| {
                        t.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    })
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "{name} must be an RFC 3339 time like 2025-03-01T10:00:00Z"
                        ))
                    })
            })
            .transpose()
    };
    Ok(ReconciliationFilter {
        store: text("store"),
        flag: text("flag"),
        since: time("since")?,
        until: time("until")?,
    })
}
