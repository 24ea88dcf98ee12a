//! The seam between the chip-agnostic node and a board's BLE stack.
//!
//! A board implements [`Radio`] once over its stack (trouble-host, a SoftDevice, the simulator's
//! trace): scanning and advertising are separate halves because stacks run them concurrently
//! and the node drives them from separate tasks.
//!
//! The traits use `async fn`: the node runs on one single-threaded executor, so the futures need
//! not be `Send` (hence the allowed `async_fn_in_trait` lint).

use core::fmt::Debug;

use heapless::Vec;

/// An advertisement heard by the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Advertiser address (LSB first, as on air).
    pub addr: [u8; 6],
    /// RSSI, dBm.
    pub rssi: i8,
    /// Legacy advertising payload (AD structures). Scan responses may be reported separately.
    pub data: Vec<u8, 31>,
}

/// A central wrote the check-in characteristic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInWrite {
    /// RSSI of the connection, dBm.
    pub rssi: i8,
    /// The written value (the token's 14 manufacturer-data bytes, see [`crate::token`]).
    pub value: Vec<u8, 32>,
}

/// The receive half: passive or active scanning, every advertisement reported (duplicates
/// included: the aggregation needs every RSSI sample).
#[allow(async_fn_in_trait)]
pub trait Scanner {
    /// Stack error.
    type Error: Debug;

    /// The next advertisement.
    async fn next(&mut self) -> Result<Advertisement, Self::Error>;
}

/// The transmit half: connectable advertising of the store iBeacon, offering the check-in GATT
/// service (see `CHECK_IN_SERVICE_UUID` in the board crate).
#[allow(async_fn_in_trait)]
pub trait Beacon {
    /// Stack error.
    type Error: Debug;

    /// Advertises `adv` until a central writes the check-in characteristic, and returns that
    /// write. The implementation handles connections that write nothing (timeout, disconnect)
    /// by advertising again; the node calls this in a loop.
    async fn advertise(&mut self, adv: &[u8]) -> Result<CheckInWrite, Self::Error>;
}

/// A board's radio, split into its two halves by [`crate::node::run`].
pub trait Radio {
    /// Receive half.
    type Scanner: Scanner;
    /// Transmit half.
    type Beacon: Beacon;

    /// Splits the radio.
    fn split(self) -> (Self::Scanner, Self::Beacon);
}
