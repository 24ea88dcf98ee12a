//! One fact recorded at a store.

use serde::{Deserialize, Serialize};

/// Prefix of an account that holds a card's points until HQ links the card to a member.
pub const CARD_ACCOUNT_PREFIX: &str = "card:";

/// The account a card's points are held under until the card is attached to a member.
pub fn card_account(card: &str) -> String {
    format!("{CARD_ACCOUNT_PREFIX}{card}")
}

/// A fact recorded once, at one store. HQ stores it by `event_id`; pushing it again is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// UUIDv7, unique across all stores.
    pub event_id: String,
    pub store_id: String,
    /// Per-store sequence number: strictly increasing in push order, gaps allowed.
    pub seq: i64,
    /// `sale`, `refund`, `redemption`, `gift_issued` or `gift_redeemed`.
    #[schema(value_type = String)]
    pub kind: EventKind,
    /// A member id, or `card:<number>` ([`card_account`]) for a card not yet linked to a member.
    /// `None` only for events that move no points.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub lane: Option<String>,
    /// Signed delta on the account's balance: positive for a sale or gift credit, negative for a
    /// refund or redemption.
    pub points: i64,
    /// Kind-specific fields; see [`EventKind`] and [`Event::validate`].
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The rule or campaign version that computed the points.
    #[serde(default)]
    pub rule_version: Option<String>,
    /// RFC 3339 UTC with milliseconds, e.g. `2025-03-01T10:15:00.123Z`.
    pub recorded_at: String,
    /// The store's own dedup key (receipt id, redemption id, gift key).
    pub idempotency_key: String,
}

/// What an [`Event`] records, with the payload fields each kind requires.
///
/// Serialized as a plain string. A kind this build does not know deserializes into
/// [`EventKind::Unknown`] so one odd event is rejected on its own instead of failing the batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventKind {
    /// `receipt_id`, `total_cents`, optional `card`, `member_id`. Points >= 0.
    Sale,
    /// `refund_id`, `receipt_id`, `total_cents`, `points_due`, `uncollected`. Points <= 0.
    Refund,
    /// `redemption_id` and either `points` or `gift_id`. Points <= 0.
    Redemption,
    /// `gift_id`, `campaign_id`, `campaign_version`, `member_id`, `once_per_member`,
    /// `expires_at`, optional `zone`. Points >= 0.
    GiftIssued,
    /// `gift_id`, `redemption_id`. Points <= 0.
    GiftRedeemed,
    /// `void_id`, `redemption_ids`, `gift_ids`: a voided basket gave back what was redeemed for
    /// it (the points, as a credit; the gifts, open again). Points >= 0.
    RedemptionVoided,
    /// Any other kind, kept verbatim.
    Unknown(String),
}

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Sale => "sale",
            EventKind::Refund => "refund",
            EventKind::Redemption => "redemption",
            EventKind::GiftIssued => "gift_issued",
            EventKind::GiftRedeemed => "gift_redeemed",
            EventKind::RedemptionVoided => "redemption_voided",
            EventKind::Unknown(s) => s,
        }
    }
}

impl From<String> for EventKind {
    fn from(s: String) -> Self {
        match s.as_str() {
            "sale" => EventKind::Sale,
            "refund" => EventKind::Refund,
            "redemption" => EventKind::Redemption,
            "gift_issued" => EventKind::GiftIssued,
            "gift_redeemed" => EventKind::GiftRedeemed,
            "redemption_voided" => EventKind::RedemptionVoided,
            _ => EventKind::Unknown(s),
        }
    }
}

impl From<EventKind> for String {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Unknown(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
