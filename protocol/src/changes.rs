//! Pull: the changes feed.

use serde::{Deserialize, Serialize};

/// Answer of `GET /v1/stores/{store}/changes?cursor=&limit=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangesPage {
    pub protocol: u32,
    /// Current state of each entity changed after the cursor, oldest change first.
    pub changes: Vec<Change>,
    /// Opaque; pass it back as `cursor` for the next page. Equal to the request's cursor when
    /// nothing changed.
    pub next_cursor: String,
    /// More changes wait: ask again at once with `next_cursor`.
    pub has_more: bool,
    /// HQ's clock (RFC 3339 UTC, millis).
    pub hq_time: String,
    /// This store's watermark at the time of the page (same database snapshot as the balances).
    pub watermark: i64,
    /// The ledger that watermark counts: an agent whose ledger is another one must not read its
    /// own events into it.
    #[serde(default)]
    pub ledger_id: Option<String>,
}

/// One entity's current state, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    Member(MemberRecord),
    Campaign(CampaignRecord),
    /// A gift redeemed at another store: the agent should mark it redeemed locally.
    RedemptionElsewhere(GiftRedeemedElsewhere),
}

/// A member's profile: who they are to every store, as HQ's admin sets it, the agent imports
/// it and the changes feed carries it. One definition for all three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberProfile {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    /// Card numbers attached to the member, in their canonical text ([`crate::card`]).
    #[serde(default)]
    pub cards: Vec<String>,
    /// The member app's Ed25519 public key, which signs checkout QR codes and member API
    /// requests: the raw 32 bytes in base64 with padding (44 characters ending in `=`), e.g.
    /// as `loyalty-agent member init` prints it (docs/integrators.md).
    #[serde(default)]
    pub qr_public_key: Option<String>,
    /// The member's proximity key (32 hex digits) their phone derives rotating ids from.
    #[serde(default)]
    pub proximity_key: Option<String>,
    /// What the member is called: by the app and wallet page (HQ's member API), and by the
    /// lane page, which greets the member by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A member as HQ knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberRecord {
    pub member_id: String,
    #[serde(flatten)]
    pub profile: MemberProfile,
    /// Sum of the points of every event HQ holds for the member, from all stores, card accounts
    /// of the member's cards included.
    pub balance: i64,
    /// This store's watermark when `balance` was computed: the agent shows
    /// `balance + its own events with seq > balance_watermark`.
    pub balance_watermark: i64,
    /// Points this store may let the member spend while HQ is unreachable.
    pub offline_allowance: i64,
}

/// A campaign body as stored by the admin, with HQ's version counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignRecord {
    pub campaign_id: String,
    /// Bumped on every admin write.
    pub version: i64,
    /// The campaign as the admin PUT it (see `Campaign` in HQ's API).
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub deleted: bool,
}

/// A gift redeemed at `store_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GiftRedeemedElsewhere {
    pub gift_id: String,
    pub member_id: Option<String>,
    pub store_id: String,
    pub event_id: String,
}
