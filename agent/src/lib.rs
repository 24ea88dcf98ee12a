//! Loyalty Edge store agent.
//!
//! Modules follow DESIGN.md: [`config`] (agent.toml), [`scan`] (serial scanners, framing,
//! card and app-QR decoding), [`engine`] (pure points rules), [`metrics`].

pub mod config;
pub mod engine;
pub mod ledger;
pub mod metrics;
pub mod scan;
