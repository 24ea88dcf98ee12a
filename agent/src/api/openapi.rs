//! The local API's OpenAPI document, generated from the handlers' `#[utoipa::path]` and the
//! types they take and answer. Served at `GET /openapi.json`, printed by `loyalty-agent
//! openapi`, checked in as `docs/openapi/agent.json` (a test compares the served one with it).
//! The types here only describe answers the handlers build as JSON values.

use crate::ledger::OpenGift;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Loyalty Edge store agent",
        description = "The local API of `loyalty-agent`: the POS records sales, refunds and redemptions at a lane; the cashier's page, health and metrics. Every error answer is `{\"error\": code, \"message\": sentence}`. A retried request (same receipt, refund or redemption id) gets the first answer. See README.md, \"The local API in short\"."
    ),
    paths(
        super::handlers::sale,
        super::handlers::lane,
        super::handlers::clear,
        super::quote::quote,
        super::handlers::redeem,
        super::handlers::void,
        super::handlers::refund,
        super::handlers::member,
        super::lane_page::page,
        super::lane_page::events,
        super::handlers::health,
        super::handlers::metrics,
        openapi_json,
    ),
    components(schemas(LaneAnswer, LaneMember, Health, HealthStatus, Cleared)),
    tags(
        (name = "lanes", description = "What the POS and the cashier's page use"),
        (name = "members", description = "Members as this store knows them"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct AgentApi;

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = AgentApi::openapi();
    // The package version, not utoipa's default of the crate's: one document per release.
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

/// `GET /v1/lanes/{lane}`.
#[derive(Serialize, ToSchema)]
pub struct LaneAnswer {
    pub lane: String,
    /// Who is at the lane: null when nobody is identified (a sale, a clear, a refused scan or
    /// the session timeout ended the session).
    pub member: Option<LaneMember>,
    /// The last refused scan on the lane, until the next scan or the end of the session.
    pub rejected_scan: Option<RejectedScan>,
    /// The lane's scanner, null when the lane has none configured.
    pub scanner: Option<ScannerView>,
}

/// A scan the lane refused; the scanned text is never shown.
#[derive(Serialize, ToSchema)]
pub struct RejectedScan {
    /// `bad_check_digit`, `malformed`, `forged_qr`, `unknown_member` ...
    pub code: String,
    pub message: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// A lane's scanner as the lane shows it.
#[derive(Serialize, ToSchema)]
pub struct ScannerView {
    pub connected: bool,
    /// `{"state": "connected", "port"}`, `{"state": "retrying", "error", "attempt", "retry_in_ms"}` ...
    pub state: Object,
}

/// A catalogue item as the lane shows it to a member.
#[derive(Serialize, ToSchema)]
pub struct LaneReward {
    pub reward_id: String,
    pub text: String,
    pub cost_points: i64,
    /// The member's balance covers it (spending still needs a fresh app QR).
    pub affordable: bool,
}

/// `POST /v1/lanes/{lane}/clear`.
#[derive(Serialize, ToSchema)]
pub struct Cleared {
    pub lane: String,
    /// `cashier`, `new_basket` or `void`.
    pub reason: String,
    /// Who was identified: `{"member_id", "card"}`, or null when the lane was empty.
    pub ended: Option<Object>,
}

/// Any JSON object.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Object(serde_json::Value);

/// The member (or card) identified at a lane.
#[derive(Serialize, ToSchema)]
pub struct LaneMember {
    /// Null for a card no member holds (it still earns, under `card`).
    pub member_id: Option<String>,
    /// What the lane page greets the member by.
    pub display_name: Option<String>,
    /// Seconds before the session ends on its own.
    pub session_ends_in_secs: u64,
    /// The points catalogue with what this member can afford.
    pub rewards: Vec<LaneReward>,
    pub card: Option<String>,
    /// Whether a member holds the card or QR.
    pub known: bool,
    pub tier: Option<String>,
    /// The account's balance as this store shows it.
    pub balance: i64,
    pub gifts: Vec<OpenGift>,
    /// Whether the next redemption of points may spend (a fresh app QR was scanned).
    pub can_spend: bool,
    /// Why not, when `can_spend` is false.
    pub spend_refused: Option<String>,
}

/// `ok`, or `degraded` with `degraded_by` naming the components at fault.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

/// `GET /healthz` (README, "The local API in short").
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// Of `ledger`, `hq`, `scanners`, `proximity`.
    pub degraded_by: Vec<String>,
    pub store: String,
    /// `ledger`, `scanners` (by lane), `hq`, `proximity`: each component's state and details.
    #[schema(value_type = Object)]
    pub components: serde_json::Value,
}
