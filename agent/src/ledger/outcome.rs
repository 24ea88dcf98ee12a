//! What each ledger command answers, typed, and why it may refuse.
//!
//! An answer is stored with its event (`events.response`, as JSON of these types) so a retried
//! command returns the first answer; the serialized shapes are the local API's answers
//! (README), so changing a field here changes the contract.

use crate::engine::reward::{Discount, Reward};
use serde::{Deserialize, Serialize};

/// The idempotency keys the ledger stores events under, one definition for the writer and for
/// the API's replay of a retried request.
pub mod keys {
    pub fn sale(receipt_id: &str) -> String {
        format!("sale:{receipt_id}")
    }

    pub fn refund(refund_id: &str) -> String {
        format!("refund:{refund_id}")
    }

    /// Points and gifts share one redemption id space.
    pub fn redemption(redemption_id: &str) -> String {
        format!("redeem:{redemption_id}")
    }

    pub fn gift(gift_id: &str) -> String {
        format!("gift:{gift_id}")
    }

    pub fn void(void_id: &str) -> String {
        format!("void:{void_id}")
    }
}

/// A gift issued to a member and not yet handed over, as the lane and the sale answer show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenGift {
    pub gift_id: String,
    pub gift: String,
    pub campaign_id: String,
    pub campaign_version: i64,
    pub zone: Option<String>,
    pub issued_at: String,
    pub expires_at: String,
    /// What the POS applies when it is handed over; `None`: `gift` is free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
}

/// `POST /v1/lanes/{lane}/sales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleOutcome {
    pub receipt_id: String,
    /// `None`: nobody identified, or a card not linked to a member (see `card`).
    pub member_id: Option<String>,
    /// The card the points were held under, when the sale was identified by card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    pub points_earned: i64,
    /// The account's balance after the sale; `None` when nothing was credited.
    pub balance: Option<i64>,
    /// The member's open gifts, so the POS can remind the cashier to hand them over.
    #[serde(default)]
    pub gifts: Vec<OpenGift>,
    /// The rules that computed the points (`rules.version`, tier, campaigns): a quote that says
    /// the same version earned the same. `None` when nothing was credited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_version: Option<String>,
    /// Each basket line's points, for a sale sent with lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LinePoints>,
}

/// What one basket line earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinePoints {
    /// 1-based, in the order the POS sent the lines.
    pub line: usize,
    pub sku: String,
    pub points: i64,
}

/// What a refund took back of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineRefunded {
    pub line: usize,
    pub quantity: i64,
    pub refunded_cents: i64,
    /// Points due back for these units (taken from the balance as far as it goes).
    pub points_due: i64,
}

/// A command's answer, and whether it is the answer first recorded under the command's id (a
/// retry: nothing was written) rather than a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<T> {
    pub answer: T,
    pub retry: bool,
}

/// `POST /v1/lanes/{lane}/refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundOutcome {
    pub refund_id: String,
    pub receipt_id: String,
    /// The cents refunded: as sent, or the refunded lines' share of their totals.
    #[serde(default)]
    pub refunded_cents: i64,
    /// For a refund of given lines, each of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineRefunded>,
    pub points_taken_back: i64,
    /// Points the member had already spent, recorded instead of a negative balance.
    pub points_uncollected: i64,
    pub balance: Option<i64>,
}

/// A redemption of points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointsRedeemed {
    pub redemption_id: String,
    pub member_id: String,
    pub points_spent: i64,
    pub balance: i64,
    /// The catalogue item the points bought, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_id: Option<String>,
    /// The discount lines the POS applies to the basket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Discount>,
}

/// A gift handed over at a lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GiftHandedOver {
    pub redemption_id: String,
    pub member_id: String,
    pub gift_id: String,
    pub gift: String,
    pub redeemed: bool,
    /// The discount lines the POS applies, when the gift is a reward and a basket was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Discount>,
}

/// `POST /v1/lanes/{lane}/voids`: what a voided basket gave back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoidOutcome {
    pub void_id: String,
    pub member_id: String,
    pub returned: Vec<Returned>,
    /// The member's balance after the points came back.
    pub balance: i64,
}

/// One redemption a void gave back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Returned {
    pub redemption_id: String,
    pub points_returned: i64,
    /// The gift that is open again, for a gift handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_id: Option<String>,
}

/// `POST /v1/lanes/{lane}/redemptions`: points or a gift, one id space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Redeemed {
    Gift(GiftHandedOver),
    Points(PointsRedeemed),
}

/// A gift issued by a presence fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedGift {
    pub gift_id: String,
    pub campaign_id: String,
    pub campaign_version: i64,
    pub gift: String,
    pub zone: Option<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
}

/// What a presence fact issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftsIssued {
    pub member_id: String,
    pub gifts: Vec<IssuedGift>,
}

/// `members import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub members: usize,
    pub cards: usize,
}

/// What recording HQ's answer to a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRecorded {
    pub acked_seq: i64,
    pub dead_lettered: usize,
}

/// What applying one page of HQ's changes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesApplied {
    pub members: usize,
    /// Members whose record was out of bounds and not applied.
    pub skipped: usize,
    pub campaigns: usize,
    pub cursor: String,
}

/// Why the ledger refused a command; nothing was written. The API maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("no sale with receipt_id {0} was recorded in this store")]
    UnknownReceipt(String),
    #[error("{0}")]
    RefundRefused(String),
    #[error("{0}")]
    InsufficientBalance(String),
    #[error("HQ is unreachable and this store may spend at most {allowance} of this member's points until it is back ({spent} already spent here); the points stay on the account")]
    OfflineAllowance { allowance: i64, spent: i64 },
    #[error("{0}; nothing was recorded: check the sale total and the points rules")]
    PointsOutOfBounds(String),
    #[error("this store has issued no gift {0}")]
    UnknownGift(String),
    #[error("this gift belongs to another member than the one at the lane")]
    NotThisMembersGift,
    #[error("this gift was already handed over ({0})")]
    GiftAlreadyRedeemed(String),
    #[error("this gift expired at {0}")]
    GiftExpired(String),
    #[error("{0}; nothing was spent")]
    RewardNotApplicable(String),
    #[error("this store's catalogue has no reward {0}")]
    UnknownReward(String),
    #[error("{0}")]
    VoidRefused(String),
    #[error("{0}; nothing was recorded")]
    RedemptionUnusable(String),
}

impl Refusal {
    /// The `error` code of the API's answer.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownReceipt(_) => "unknown_receipt",
            Refusal::RefundRefused(_) => "refund_refused",
            Refusal::InsufficientBalance(_) => "insufficient_balance",
            Refusal::OfflineAllowance { .. } => "offline_allowance",
            Refusal::PointsOutOfBounds(_) => "points_out_of_bounds",
            Refusal::UnknownGift(_) => "unknown_gift",
            Refusal::NotThisMembersGift => "not_this_members_gift",
            Refusal::GiftAlreadyRedeemed(_) => "gift_already_redeemed",
            Refusal::GiftExpired(_) => "gift_expired",
            Refusal::RewardNotApplicable(_) => "reward_not_applicable",
            Refusal::UnknownReward(_) => "unknown_reward",
            Refusal::VoidRefused(_) => "void_refused",
            Refusal::RedemptionUnusable(_) => "redemption_unusable",
        }
    }
}

/// One command's answer inside the writer, before it reaches its caller's typed reply.
#[derive(Debug)]
pub(crate) enum Answer {
    Sale(Recorded<SaleOutcome>),
    Refund(RefundOutcome),
    Redeemed(Redeemed),
    Voided(VoidOutcome),
    Gifts(GiftsIssued),
    Imported(ImportSummary),
    Pushed(PushRecorded),
    Pulled(ChangesApplied),
    /// A QR nonce: `true` when it was new.
    Nonce(bool),
    Done,
}
