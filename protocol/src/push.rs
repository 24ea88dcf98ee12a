//! Push: the agent's event batch and HQ's per-event answer.

use serde::{Deserialize, Serialize};

use crate::Event;

/// Body of `POST /v1/stores/{store}/events`: the events of one ledger that follow `after_seq`,
/// in `seq` order with none left out (`after_seq + 1`, `after_seq + 2`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventBatch {
    pub protocol: u32,
    pub store_id: String,
    /// The identity of the ledger the events come from (see [`crate::ledger`]).
    pub ledger_id: String,
    /// The last `seq` the agent knows HQ holds: the first event of the batch is `after_seq + 1`.
    pub after_seq: i64,
    pub events: Vec<Event>,
}

/// HQ's answer to a push: one outcome per event, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushResponse {
    pub protocol: u32,
    pub outcomes: Vec<EventOutcome>,
    /// The last `seq` HQ holds from this store's ledger (accepted, duplicate or rejected); every
    /// event up to it is settled at HQ. The agent acknowledges only what it sent, never more.
    pub watermark: i64,
    /// HQ's clock (RFC 3339 UTC, millis), for the agent's skew estimate.
    pub hq_time: String,
}

/// What HQ did with one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventOutcome {
    pub event_id: String,
    #[serde(flatten)]
    pub status: OutcomeStatus,
    /// Reconciliation flags raised by this event, e.g. `overdraft`, `duplicate_gift`,
    /// `refund_without_sale`. A flagged event is still accepted: the fact stands.
    #[serde(default)]
    pub flags: Vec<String>,
}

/// `{"status": "accepted"}`, `{"status": "duplicate"}` or
/// `{"status": "rejected", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Stored now.
    Accepted,
    /// HQ already held this `event_id`; nothing changed.
    Duplicate,
    /// Malformed; never stored as a fact. Permanent: the agent dead-letters it and does not
    /// retry. (A 5xx or a transport failure, by contrast, is transient.)
    Rejected { reason: String },
}
