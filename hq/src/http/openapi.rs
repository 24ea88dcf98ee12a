//! HQ's OpenAPI document, generated from the handlers' `#[utoipa::path]` and the types they
//! take and answer. Served at `GET /openapi.json`, printed by `loyalty-hq openapi`, checked in
//! as `docs/openapi/hq.json` (a test compares the served one with it). The types here only
//! describe bodies the handlers read or build as JSON values; the campaign examples are
//! PUT to a real HQ by that test, so they stay campaigns HQ accepts.

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Loyalty Edge reference HQ",
        description = "`loyalty-hq`: the stores' sync (push, pull, ledger binding), the admin API (stores, members, campaigns, reconciliation, wallet enrolments, webhooks) and the members' app API. Every answer carries `x-loyalty-protocol: 2`; every error is `{\"error\": code, \"message\": sentence}`. See README.md, \"HQ's API\"."
    ),
    paths(
        super::healthz,
        super::metrics::metrics,
        openapi_json,
        super::sync::push,
        super::changes::changes,
        super::sync::ledger,
        super::sync::rebind_ledger,
        super::operator::stores,
        super::admin::put_store,
        super::admin::put_member,
        super::admin::get_member,
        super::history::member_events,
        super::admin::put_campaign,
        super::admin::delete_campaign,
        super::admin::reconciliation,
        super::import::import_members,
        super::enrolment::create,
        super::webhooks::list,
        super::webhooks::put,
        super::webhooks::delete,
        super::webhooks::messages,
        super::webhooks::redeliver,
        super::app::enrol,
        super::app::profile,
        super::app::gifts,
        super::app::history,
        super::app::feed,
        super::wallet::page,
        super::admin_page::page,
    ),
    components(schemas(Campaign, PointsCampaign, GiftCampaign, FeedItem, Health)),
    modifiers(&Security),
    tags(
        (name = "stores", description = "A store agent's sync, with the store's bearer token"),
        (name = "admin", description = "HQ staff and the retailer's back office, with the admin token"),
        (name = "webhooks", description = "Webhook endpoints and their delivery log (admin token)"),
        (name = "app", description = "Members' app and wallet page, signed by the member's key (README, \"App signatures\")"),
        (name = "operations", description = "Health and this document"),
    )
)]
pub struct HqApi;

/// The three ways a request proves who sends it.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin",
            bearer("`Authorization: Bearer <admin token>` (hq.toml `admin_token`)"),
        );
        components.add_security_scheme("store", bearer("`Authorization: Bearer <store token>`, registered with PUT /v1/admin/stores/{store_id}"));
        components.add_security_scheme(
            "app_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`LE-App <member>.<unix>.<nonce>.<signature>`: Ed25519 over `LE-APP1\\n<METHOD>\\n<path>\\n<member>.<unix>.<nonce>`, base64url without padding (README, \"App signatures\")",
            ))),
        );
    }
}

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = HqApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    let body = document().to_pretty_json().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when HQ answers.
    pub status: String,
    /// The sync protocol HQ speaks (2).
    pub protocol: u32,
}

#[derive(Serialize, ToSchema)]
pub struct StoreRegistered {
    pub store_id: String,
}

/// A campaign HQ publishes to every store: `"kind": "points"` (the JSON form of a
/// `[[points.campaigns]]` table of agent.toml), `"kind": "gift"` (a `[[gifts]]` table) or
/// `"kind": "reward"` (an item of the points catalogue). HQ
/// checks it with the stores' own rules and refuses it with 422 `invalid_campaign`, naming
/// every problem, unknown keys included. The campaign's id is the path's; `version` is HQ's.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a description of JSON bodies, never built
pub enum Campaign {
    Points(PointsCampaign),
    Gift(GiftCampaign),
    Reward(CatalogueItem),
}

/// An item of the points catalogue: spend `cost_points` for `reward`, a discount or an item
/// the POS applies as discount lines (never points for points).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "kind": "reward", "cost_points": 150, "text": "A free coffee",
    "reward": {"type": "free_item", "sku": "COF-1"}
}))]
#[allow(dead_code)]
pub struct CatalogueItem {
    pub kind: RewardKind,
    /// 1 to 1000000000 points.
    pub cost_points: i64,
    /// What the member reads, 1 to 80 characters.
    pub text: String,
    pub reward: loyalty_rules::reward::Reward,
}

/// `reward`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    Reward,
}

/// Extra points for sales in a window: `points = floor(total_cents * per_euro *
/// tier_multiplier * multipliers / 100) + bonuses`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "kind": "points", "multiplier": 2.0,
    "starts": "2026-03-01T00:00:00+01:00", "ends": "2026-06-01T00:00:00+02:00",
    "weekdays": ["fri", "sat"], "hours": "17:00-20:00", "tiers": ["silver", "gold"]
}))]
#[allow(dead_code)]
pub struct PointsCampaign {
    pub kind: PointsKind,
    /// Multiplies the points, 0 to 100; a campaign has `multiplier` or `bonus`, not both.
    pub multiplier: Option<f64>,
    /// Points added once per qualifying sale, after rounding, 0 to 1000000.
    pub bonus: Option<i64>,
    /// RFC 3339; included. Absent: already running.
    pub starts: Option<String>,
    /// RFC 3339; excluded, after `starts`. Absent: never ends.
    pub ends: Option<String>,
    /// Store-local days: `mon` .. `sun` (full names too). Absent: every day.
    pub weekdays: Option<Vec<String>>,
    /// Store-local `"HH:MM-HH:MM"`, from included, to excluded; may wrap past midnight.
    pub hours: Option<String>,
    /// Only members of these tiers. Absent: every tier, and cards without a member.
    pub tiers: Option<Vec<String>>,
    /// Only members in at least one of these segments.
    pub segments: Option<Vec<String>>,
    /// Smallest sale total that gets it, in cents (basket lines in excluded categories do not
    /// count).
    pub min_total_cents: Option<i64>,
    /// Scope to basket lines of this SKU (at most one of `sku`, `category`, `brand`): a
    /// multiplier applies to matching lines, a bonus per unit of each.
    pub sku: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
}

/// A gift issued when a member's phone is seen: walking in, dwelling in a zone, or returning
/// after some days; handed over at a lane with `POST /v1/lanes/{lane}/redemptions {"gift_id"}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "kind": "gift", "gift": "Free coffee", "trigger": "entered_store",
    "limit": "once_per_visit", "valid_for_minutes": 120, "daily_budget": 200
}))]
#[allow(dead_code)]
pub struct GiftCampaign {
    pub kind: GiftKind,
    /// What the cashier hands over.
    pub gift: String,
    /// `entered_store`, `dwelled` (with `zone`, `dwell_seconds`) or `returned` (with
    /// `absent_days`).
    pub trigger: String,
    pub zone: Option<String>,
    pub dwell_seconds: Option<u64>,
    pub absent_days: Option<u32>,
    /// `once_per_visit` (a visit ends after 2 h away), `once_per_day` (store-local) or
    /// `once_per_member`.
    pub limit: String,
    /// Each gift's life; never issued with less than 5 minutes left.
    pub valid_for_minutes: u32,
    /// RFC 3339: no gift outlives it.
    pub expires_at: Option<String>,
    /// RFC 3339: the window in which it issues gifts.
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub tiers: Option<Vec<String>>,
    pub segments: Option<Vec<String>>,
    /// Gifts per store-local day at each store.
    pub daily_budget: Option<u32>,
    /// Points credited with the gift.
    pub points: Option<i64>,
    /// What the POS applies when the gift is handed over with a basket.
    pub reward: Option<loyalty_rules::reward::Reward>,
}

/// `points`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointsKind {
    Points,
}

/// `gift`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GiftKind {
    Gift,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignSaved {
    pub campaign_id: String,
    /// Bumped on every write; stores record credits as `campaign@version`.
    pub version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignDeleted {
    pub campaign_id: String,
    pub version: i64,
    pub deleted: bool,
}

/// A one-time wallet enrolment link: send the member `https://<HQ><wallet_path>`.
#[derive(Serialize, ToSchema)]
pub struct EnrolmentLink {
    pub member_id: String,
    pub code: String,
    /// `/wallet#enrol=<code>`.
    pub wallet_path: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointDeleted {
    pub endpoint_id: String,
    pub deleted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Endpoints {
    pub endpoints: Vec<crate::store::webhooks::EndpointView>,
}

#[derive(Serialize, ToSchema)]
pub struct Messages {
    pub messages: Vec<crate::store::webhooks::Message>,
}

#[derive(Serialize, ToSchema)]
pub struct Redelivered {
    pub webhook_id: String,
    /// `pending`.
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub struct Gifts {
    pub gifts: Vec<crate::store::app::AppGift>,
}

/// One event told to a member (README, "Members' app, live feed and webhooks").
#[derive(Serialize, ToSchema)]
pub struct FeedItem {
    /// Numbered per HQ; pass as `before` or `after`.
    pub id: i64,
    /// `gift.issued`, `points.credited`, `points.debited`, `gift.redeemed` or `gift.expired`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub timestamp: String,
    /// The event's fields, by type (README).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct History {
    pub items: Vec<FeedItem>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    pub member_id: String,
}
