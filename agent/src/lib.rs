//! Loyalty Edge store agent. `docs/ARCHITECTURE.md` draws how these fit together; start at
//! [`app`].
//!
//! - [`app`]: the running agent, wired and stopped in order; [`lock`]: one agent per data dir.
//! - [`config`]: agent.toml, every problem located.
//! - [`serial`]: serial ports and the supervision every serial device shares; [`backoff`].
//! - [`scan`]: lane scanners, framing, card and app-QR decoding; [`checkout`]: who is at a lane.
//! - [`proximity`]: phone sightings, rotating ids, zone tracking, presence facts.
//! - [`engine`]: the pure rules (the `loyalty-rules` crate).
//! - [`ledger`]: SQLite, one group-committing writer, typed answers, identity, backup, re-base.
//! - [`sync`]: HQ client and loop; [`rebase`]: the operator's re-base of a restored ledger.
//! - [`api`]: the local HTTP API and the cashier's lane page; [`metrics`]; [`systemd`].
//! - [`cli`], [`ops`], [`import`], [`doctor`]: operator commands; [`member`]: the reference member
//!   client; `demo` (feature `demo`: the simulation it plays comes from `loyalty-sim`).

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod app;
pub mod background;
pub mod backoff;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod data_dir;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
/// The pure rules, a crate of their own (`rules/`, `loyalty-rules`), under the name the agent's
/// modules have always used.
pub use loyalty_rules as engine;
pub mod import;
pub mod ledger;
pub mod lock;
pub mod manpage;
pub mod member;
pub mod metrics;
pub mod ops;
pub mod ports;
pub mod proximity;
pub mod rebase;
pub mod scan;
pub mod serial;
pub mod sync;
pub mod systemd;
