//! Loyalty Edge store agent.
//!
//! Modules follow DESIGN.md: [`config`] (agent.toml), [`scan`] (serial scanners, framing,
//! card and app-QR decoding), [`checkout`] (who is at each lane), [`engine`] (pure points
//! rules), [`ledger`] (SQLite, one group-committing writer), [`api`] (the local HTTP API),
//! [`app`] (the running agent and its shutdown), [`ops`] and [`cli`] (operator commands).

pub mod api;
pub mod app;
pub mod backoff;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctor;
/// The pure rules, a crate of their own (`rules/`, `loyalty-rules`), under the name the agent's
/// modules have always used.
pub use loyalty_rules as engine;
pub mod import;
pub mod ledger;
pub mod lock;
pub mod member;
pub mod metrics;
pub mod ops;
pub mod proximity;
pub mod rebase;
pub mod scan;
pub mod serial;
pub mod sync;
pub mod systemd;
