//! The pure core: points rules, refunds and redemptions as functions of (fact, state, time).
//!
//! Nothing here performs I/O or reads a clock: the ledger loads the state, calls these functions
//! inside its write transaction and stores what they decide. That keeps every rule testable by
//! property tests without a database and makes a replayed fact produce the same decision.
//!
//! Main types: [`Rules`] (earn rate, tier multipliers, bonus campaigns), [`earn`] for a sale,
//! [`refund`] for a full or partial refund of a sale, [`redeem`] for spending points,
//! [`gifts::decide`] for location-triggered gifts, [`campaign::validate`] for a campaign body
//! as HQ publishes it (the agent's `[[points.campaigns]]` tables go through the same checks).
//!
//! A crate of its own so that "the rules do no I/O" is a compile-time fact (its dependencies are
//! chrono, chrono-tz with its zone database compiled in, serde and toml), and so that HQ
//! validates a campaign with the code the stores run. Store-local time (weekdays, hours, the
//! day of per-day limits) is [`StoreTimeZone`]: see [`time_zone`] for the daylight-saving rules.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod basket;
pub mod campaign;
mod earn;
pub mod gift_spec;
pub mod gifts;
mod refund;
pub mod reward;
mod rules;
pub mod time_zone;

pub use basket::{BasketLine, LineScope};
pub use earn::{earn, earn_basket, Earning};
pub use refund::{
    redeem, refund, refund_lines, LineRecord, LinesRefundDecision, RedeemError, RefundDecision,
    RefundError, SaleRecord,
};
pub use rules::{Boost, DailyHours, MemberProfile, Multiplier, PointsCampaign, Rules};
pub use time_zone::{StoreTimeZone, TimeZoneError};

/// Ids appear in URLs, file names and log lines: keep them plain (letters, digits, `-`, `_`).
pub fn is_identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
