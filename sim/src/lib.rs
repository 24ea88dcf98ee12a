//! The simulation kit: what the demo plays, and what the tests and benches drive the real
//! programs with. None of it ships in the store box (the agent depends on it only through its
//! `demo` feature, off in the `.deb`).
//!
//! - [`rf_model`]: a floor plan, sensors and walking phones, synthesised into sighting traces in
//!   the format the agent replays (`loyalty_protocol::trace`).
//! - [`hq`]: the reference HQ served in-process on a loopback port, with its admin API a call
//!   away ([`hq::LocalHq`]).
//! - [`hq_process`]: a real `loyalty-hq` process on a free port, killed when dropped.
//! - [`process`]: what the benches read of a running process (resident memory).
//! - `pg` (feature `postgres`): a throwaway PostgreSQL cluster and a fresh database per test,
//!   for HQ's suite on PostgreSQL (`LOYALTY_HQ_TEST_BACKEND=postgres`) and the benches.
//! - `test_ca` (feature `test-ca`): a certificate authority and a server certificate made on
//!   the spot, for tests of HTTPS between the agent and HQ.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod hq;
pub mod hq_process;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod process;
pub mod rf_model;
#[cfg(feature = "test-ca")]
pub mod test_ca;
