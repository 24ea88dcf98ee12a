//! The messages carried by frames, in both directions.
//!
//! Compatibility: postcard encodes enum variants by index and struct fields in order, so new
//! variants go at the end of an enum and existing fields never change. Anything else bumps
//! [`super::VERSION`].

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::token::PhoneToken;

/// Sightings per [`SightingBatch`]: bounds the largest frame (see [`super::MAX_MESSAGE`]).
pub const BATCH_CAPACITY: usize = 8;
/// Length of the board and firmware-version strings in [`Hello`].
pub const LABEL_LEN: usize = 16;

/// Node -> agent.
// Unboxed on purpose: the node has no heap, and only a handful are ever alive (the uplink queue).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Uplink {
    /// Sent at boot, after every accepted setting change, on [`Downlink::Identify`], and every
    /// few heartbeats so an agent that opens the port late still learns the calibration.
    Hello(Hello),
    /// One report interval's sightings, possibly over several batches.
    Sightings(SightingBatch),
    /// A phone wrote its token to the check-in characteristic.
    CheckIn(CheckIn),
    /// Liveness and health counters.
    Heartbeat(Heartbeat),
}

/// Agent -> node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Downlink {
    /// Replace the calibration reported in [`Hello`] (the node answers with a new Hello).
    SetCalibration(Calibration),
    /// Change the report interval (the node answers with a new Hello).
    SetReportInterval {
        /// New interval, ms; the node rejects values outside
        /// [`MIN_REPORT_INTERVAL_MS`]..=[`MAX_REPORT_INTERVAL_MS`].
        interval_ms: u32,
    },
    /// Reset the node.
    Reboot,
    /// Ask the node to send its Hello now.
    Identify,
}

/// Shortest report interval a node accepts, ms.
pub const MIN_REPORT_INTERVAL_MS: u32 = 100;
/// Longest report interval a node accepts, ms.
pub const MAX_REPORT_INTERVAL_MS: u32 = 600_000;

/// Per-sensor calibration for RSSI -> distance (log-distance path loss model:
/// `d = 10 ^ ((rssi_at_1m - rssi) / (10 * n))`, with `n = path_loss_x10 / 10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calibration {
    /// Median RSSI of a reference phone at 1 m, dBm.
    pub rssi_at_1m: i8,
    /// Path-loss exponent times ten (20 = free space, 25-40 indoors).
    pub path_loss_x10: u8,
}

impl Calibration {
    /// Whether the values are physically plausible; nodes reject the others.
    pub fn is_plausible(&self) -> bool {
        (-100..=0).contains(&self.rssi_at_1m) && (10..=60).contains(&self.path_loss_x10)
    }
}

impl Default for Calibration {
    fn default() -> Self {
        // A typical phone at 1 m indoors; the calibration procedure replaces it.
        Self {
            rssi_at_1m: -59,
            path_loss_x10: 25,
        }
    }
}

/// Who the node is and how to read its RSSI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Stable node id (on nRF52 the 64-bit FICR device id).
    pub node_id: u64,
    /// Firmware version (semver text).
    pub firmware: String<LABEL_LEN>,
    /// Board name, e.g. `nrf52840-dongle`.
    pub board: String<LABEL_LEN>,
    /// Current calibration.
    pub calibration: Calibration,
    /// Current report interval, ms.
    pub report_interval_ms: u32,
}

/// RSSI statistics of one device over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssiStats {
    /// Advertisements heard (saturates at `u16::MAX`).
    pub count: u16,
    /// Median of the most recent samples (see `aggregate::SAMPLES`), dBm.
    pub median: i8,
    /// Strongest, dBm.
    pub max: i8,
    /// Weakest, dBm.
    pub min: i8,
}

/// What was heard: a decoded phone token, or (when the node forwards them) any other device's
/// raw advertisement for the agent to decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    /// A phone token (keyed by its id: one phone may rotate its address mid-interval).
    Token(PhoneToken),
    /// Any other advertiser, keyed by address; `adv` is its latest payload.
    Raw {
        /// Advertiser address as received (LSB first, as on air).
        addr: [u8; 6],
        /// The latest legacy advertisement payload.
        adv: Vec<u8, 31>,
    },
}

/// One device in one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// Who.
    pub subject: Subject,
    /// How strong.
    pub rssi: RssiStats,
}

/// Sightings of one report interval. Every closed interval yields at least one batch (an empty
/// one when nothing was heard) and its last batch has `more == false`, so the agent can tell
/// "nothing heard" from "frame lost".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SightingBatch {
    /// Node uptime at the end of the interval, ms.
    pub interval_end_ms: u64,
    /// Length of the interval, ms.
    pub interval_ms: u32,
    /// More batches of the same interval follow.
    pub more: bool,
    /// Up to [`BATCH_CAPACITY`] devices.
    pub sightings: Vec<Sighting, BATCH_CAPACITY>,
}

/// A check-in write, forwarded at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    /// The token the phone wrote.
    pub token: PhoneToken,
    /// RSSI of the connection when the write arrived, dBm.
    pub rssi: i8,
    /// Node uptime, ms.
    pub uptime_ms: u64,
}

/// Liveness and counters since boot (they only grow, so the agent can diff them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Node uptime, ms.
    pub uptime_ms: u64,
    /// Devices dropped from the aggregation table because it was full.
    pub dropped_sightings: u32,
    /// Frames dropped because the uplink queue was full.
    pub dropped_frames: u32,
    /// Most frames ever waiting in the uplink queue.
    pub queue_high_water: u16,
    /// Most devices ever in the aggregation table.
    pub table_high_water: u16,
    /// Radio errors (scan or advertising).
    pub radio_errors: u32,
    /// Serial write errors.
    pub uplink_errors: u32,
    /// Downlink frames that failed to decode or were refused, and serial read errors.
    pub rejected_commands: u32,
    /// Check-in writes that were not a valid token.
    pub bad_check_ins: u32,
}
