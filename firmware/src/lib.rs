//! Loyalty Edge zone sensor node: the serial wire format, the phone-token format, and the
//! chip-agnostic node application.
//!
//! - [`wire`]: frames between a node and the agent ([`wire::Uplink`] node -> agent,
//!   [`wire::Downlink`] agent -> node): postcard payloads behind a version/kind header, a
//!   CRC-32C trailer, COBS framing with `0x00` delimiters, and a streaming
//!   [`wire::FrameDecoder`] that resynchronises after garbage or a cut frame.
//! - [`token`]: the phone-token manufacturer data (parse and build), and [`ad`] for walking an
//!   advertisement's AD structures. [`ibeacon`] builds the store beacon.
//! - `aggregate` (feature `node`): per-device RSSI aggregation over the report interval in a
//!   bounded table.
//! - `node` (feature `node`): the tasks (scan -> aggregate -> uplink, check-in -> uplink, beacon,
//!   heartbeat, commands) behind `node::run`, generic over a `node::Radio` and
//!   `embedded-io-async` serial halves, so a board only wires hardware.
//!
//! # Features
//! With no features the crate is `wire`, `token`, `ad` and `ibeacon` only: this is what the
//! agent links, and it brings no embassy crate, so no time driver ends up in a std program.
//! `node` adds embassy-time without a driver (the board's HAL provides one); `mock-time` adds
//! embassy-time's mock driver for host tests; `sim` adds the std driver and the simulator's I/O.
//! Both `mock-time` and `sim` define the time driver symbol, so they are never built together.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std", feature = "mock-time"))]
extern crate std;

pub use heapless;

pub mod ad;
pub mod ibeacon;
pub mod token;
pub mod wire;

#[cfg(feature = "node")]
pub mod aggregate;
#[cfg(feature = "node")]
pub mod node;

#[cfg(feature = "sim")]
pub mod sim;

/// This crate's version, reported in [`wire::Hello`].
pub const FIRMWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
