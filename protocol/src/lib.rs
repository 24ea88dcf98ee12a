//! What the store agent shares with HQ, the member's app and the simulator: the agent-HQ sync
//! types first, then the app's and the radio's formats.
//!
//! - [`Event`] is one fact recorded at a store (a sale, refund, redemption or gift), with its
//!   [`EventKind`] and a per-kind payload checked by [`Event::validate`].
//! - Push: the agent sends an [`EventBatch`] to `POST /v1/stores/{store}/events` and HQ answers a
//!   [`PushResponse`]: one [`EventOutcome`] per event and the store's watermark.
//! - Pull: `GET /v1/stores/{store}/changes?cursor=&limit=` answers a [`ChangesPage`] of
//!   [`Change`]s (members with balances and allowances, campaigns, gifts redeemed elsewhere).
//! - Every request and answer carries [`PROTOCOL_VERSION`], in the [`PROTOCOL_HEADER`] header
//!   and in the body; [`check_version`] turns a mismatch into a [`VersionMismatch`].
//! - Errors are answered as an [`ErrorBody`].
//! - [`ledger`]: which ledger a store's events come from, and the re-base that changes it.
//! - [`bounds`]: the most points an event may move and a balance may hold, on both sides.
//! - [`card`]: the one canonical text of a card number, for the scanner, imports and HQ.
//! - [`rotating_id`]: the member app's rotating phone ids, which the agent resolves.
//! - [`trace`]: the sighting-trace format the agent records and replays and the simulator writes.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod bounds;
pub mod card;
mod changes;
mod error_body;
mod event;
pub mod ledger;
mod push;
pub mod rotating_id;
pub mod trace;
mod validate;
mod version;

pub use app::{app_signed_text, APP_AUTH_CONTEXT, APP_AUTH_SCHEME};
pub use bounds::{MAX_BALANCE, MAX_EVENT_POINTS};
pub use card::{canonical_card, CardError};
pub use changes::{
    CampaignRecord, Change, ChangesPage, GiftRedeemedElsewhere, MemberProfile, MemberRecord,
};
pub use error_body::ErrorBody;
pub use event::{card_account, Event, EventKind, CARD_ACCOUNT_PREFIX};
pub use ledger::{LedgerBinding, LedgerState, LEDGER_CONFLICT, SEQ_CONFLICT, SEQ_GAP};
pub use push::{EventBatch, EventOutcome, OutcomeStatus, PushResponse};
pub use validate::InvalidEvent;
pub use version::{check_version, VersionMismatch, PROTOCOL_HEADER, PROTOCOL_VERSION};
