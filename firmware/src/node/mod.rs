//! The node application: chip-agnostic tasks behind [`run`].
//!
//! ```text
//! Scanner ──► scan ──► Aggregator ──► report (every interval) ──┐
//! Beacon  ──► beacon/check-in ──────────────────────────────────┤
//!             heartbeat (every heartbeat interval, Hello too) ──┼─► uplink queue ─► uplink ─► serial tx
//! serial rx ─► commands (calibration, interval, identify) ──────┘       (Reboot: `run` returns)
//! ```
//!
//! The tasks are plain async functions joined into the one future `run` returns, not
//! `#[embassy_executor::task]`s: embassy tasks cannot be generic, and one future lets a board
//! spawn it once and a test poll it under the mock driver. Everything lives inside that future,
//! so its size is the node's whole RAM budget for the application (`wire-bench` prints it).

mod checkin;
mod commands;
mod heartbeat;
pub mod radio;
mod report;
mod scan;
mod state;
mod uplink;

#[cfg(feature = "mock-time")]
pub mod testkit;

use embassy_futures::join::join5;
use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Instant};
use embedded_io_async::{Read, Write};

pub use radio::{Advertisement, Beacon, CheckInWrite, Radio, Scanner};
pub use state::UPLINK_QUEUE;

use crate::ibeacon::IBeacon;
use crate::wire::{Calibration, Uplink};

/// What a node is told at boot (a board builds it from its constants and the chip's id).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Stable id reported in Hello (on nRF52: FICR DEVICEID).
    pub node_id: u64,
    /// Board name reported in Hello (up to 16 bytes are sent).
    pub board: &'static str,
    /// Calibration until the agent sends another.
    pub calibration: Calibration,
    /// Report interval until the agent sends another.
    pub report_interval: Duration,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Send Hello again every this many heartbeats (0: only at boot and on changes).
    pub hello_every: u32,
    /// The store iBeacon this node broadcasts.
    pub beacon: IBeacon,
    /// Forward advertisements that are not phone tokens as raw sightings. Off by default: it
    /// sends every bystander's address to the agent and fills the table with headphones.
    pub forward_raw: bool,
    /// Company id of the phone token (see [`crate::token::COMPANY_ID`]).
    pub company_id: u16,
}

impl NodeConfig {
    /// Defaults: 1 s reports, 5 s heartbeats, Hello every 12 heartbeats, tokens only.
    pub fn new(node_id: u64, board: &'static str, beacon: IBeacon) -> Self {
        Self {
            node_id,
            board,
            calibration: Calibration::default(),
            report_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            hello_every: 12,
            beacon,
            forward_raw: false,
            company_id: crate::token::COMPANY_ID,
        }
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// The agent asked for a reboot: the board resets the chip.
    Reboot,
}

/// Runs the node until the agent asks for a reboot.
///
/// `tx` and `rx` are the two halves of the serial link to the agent (UART or USB CDC). A board
/// without a receive path passes a reader that never completes.
pub async fn run<R, Tx, Rx>(radio: R, tx: Tx, rx: Rx, config: NodeConfig) -> Exit
where
    R: Radio,
    Tx: Write,
    Rx: Read,
{
    let shared = state::Shared::new(config, Instant::now());
    // First frame out: who we are. The queue is empty, so this cannot be dropped.
    shared.offer(Uplink::Hello(shared.hello()));
    let (scanner, beacon) = radio.split();
    let forever = join5(
        scan::task(&shared, scanner),
        report::task(&shared),
        checkin::task(&shared, beacon),
        heartbeat::task(&shared),
        uplink::task(&shared, tx),
    );
    match select(forever, commands::task(&shared, rx)).await {
        Either::First((never, ..)) => match never {},
        Either::Second(exit) => exit,
    }
}
