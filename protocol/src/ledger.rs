//! Which ledger a store's events come from.
//!
//! Each agent ledger file has an identity, a random id made with the file. HQ binds a store to
//! one ledger and takes that ledger's events only in `seq` order with nothing left out
//! ([`crate::EventBatch::after_seq`]): a second ledger pushing for the same store (a cloned box,
//! a ledger replaced by an empty one) is refused with [`LEDGER_CONFLICT`], a batch that does not
//! follow on with [`SEQ_GAP`], and one that disagrees with what HQ already holds at those `seq`s
//! (a restored backup that recorded new sales) with [`SEQ_CONFLICT`]. Nothing of a refused
//! batch is written. The store's operator then re-bases the ledger, an explicit, recorded step:
//! `PUT /v1/stores/{store}/ledger` with a [`LedgerBinding`] binds the new identity, which
//! continues after `after_seq`, the last event HQ already holds from it.

use serde::{Deserialize, Serialize};

/// 409: the push comes from another ledger than the one HQ holds this store's events from.
pub const LEDGER_CONFLICT: &str = "ledger_conflict";
/// 409: the batch does not follow on from what HQ holds of this ledger.
pub const SEQ_GAP: &str = "seq_gap";
/// 409: HQ holds another event at a `seq` of the batch.
pub const SEQ_CONFLICT: &str = "seq_conflict";

/// `PUT /v1/stores/{store}/ledger`: bind the store to a ledger (the operator's re-base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerBinding {
    pub protocol: u32,
    /// The ledger's new identity.
    pub ledger_id: String,
    /// Events of this ledger up to this `seq` are already at HQ (under this or an earlier
    /// identity); the next push continues after it.
    pub after_seq: i64,
    /// Why, in the operator's words; kept in HQ's record of re-bases.
    pub reason: String,
}

/// `GET` or `PUT /v1/stores/{store}/ledger`: the ledger HQ takes this store's events from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerState {
    pub protocol: u32,
    /// `None` until the store's first push.
    pub ledger_id: Option<String>,
    /// The last `seq` HQ holds from that ledger.
    pub watermark: i64,
    /// The identity bound before this one, after a re-base.
    #[serde(default)]
    pub previous_ledger_id: Option<String>,
}
