//! The pure core: points rules, refunds and redemptions as functions of (fact, state, time).
//!
//! Nothing here performs I/O or reads a clock: the ledger loads the state, calls these functions
//! inside its write transaction and stores what they decide. That keeps every rule testable by
//! property tests without a database and makes a replayed fact produce the same decision.
//!
//! Main types: [`Rules`] (earn rate, tier multipliers, bonus campaigns), [`earn`] for a sale,
//! [`refund`] for a full or partial refund of a sale, [`redeem`] for spending points,
//! [`gifts::decide`] for location-triggered gifts.

mod earn;
pub mod gift_spec;
pub mod gifts;
mod refund;
mod rules;

pub use earn::{earn, Earning};
pub use refund::{redeem, refund, RedeemError, RefundDecision, RefundError, SaleRecord};
pub use rules::{Boost, DailyHours, MemberProfile, Multiplier, PointsCampaign, Rules};
