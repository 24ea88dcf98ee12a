//! Proximity: who is near which zone sensor.
//!
//! # The seam
//! Every source of proximity data turns its input into [`Sighting`]s on a bounded tokio mpsc
//! channel, and nothing downstream knows which source a sighting came from. Sources: zone-sensor
//! nodes on serial ports ([`sensor_node`]: the firmware's wire protocol, one [`Sighting`] per
//! device per report interval and one per check-in write), and a replayed trace ([`replay`]).
//!
//! # The chain
//! [`pipeline`] consumes the channel: [`adverts`] decoded the phone token, [`resolver`] maps its
//! rotating id ([`rotating_id`]) to a member, [`tracker`] turns RSSI into zone visits, and the
//! ledger turns the resulting presence facts into gifts.
//!
//! Simulated phones and sensors (the RF model) are not here: they live in `loyalty-sim`, used by
//! the demo, the tests and the benches, and never built into the store box.

pub mod adverts;
pub mod bluetooth;
pub mod phone;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod resolver;
/// The member app's rotating ids live with the other shared formats.
pub use loyalty_protocol::rotating_id;
pub mod sensor_node;
pub mod settings;
pub mod trace;
pub mod tracker;

use std::time::Instant;

pub use adverts::{Advert, AdvertError, Decoder};
pub use bluetooth::{
    run_bluetooth, BluetoothError, BluetoothHealth, BluetoothSettings, BluetoothState,
};
pub use resolver::{MemberId, Resolution, ResolverMap};
pub use rotating_id::{interval_number, rotating_id, ProximityKey};
pub use sensor_node::{read_node_frames, supervise_node, NodeHealth, NodeReadError, NodeState};
pub use trace::{read_trace, write_trace, TraceRecord};
pub use tracker::{Observation, Tracker, TrackerConfig, ZoneEvent};

/// One device heard by one sensor over one report interval, or one check-in write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The sensor's configured name.
    pub sensor: String,
    /// The phone token id, when the device is a member's phone (`None`: some other advertiser
    /// the node forwarded raw).
    pub token: Option<u64>,
    /// Median RSSI over the interval, dBm (a check-in's connection RSSI).
    pub rssi: i8,
    /// Strongest RSSI over the interval, dBm.
    pub rssi_max: i8,
    /// Advertisements heard in the interval (1 for a check-in).
    pub count: u16,
    /// The phone wrote its token to the node's check-in characteristic: it is at the sensor,
    /// whatever the RSSI says.
    pub check_in: bool,
    /// When the agent received it.
    pub at: Instant,
}

/// Counts sightings when no zones are configured (nothing to track), keeping the channel
/// flowing so that readers never stall on a full channel.
pub async fn count_sightings(
    mut sightings: tokio::sync::mpsc::Receiver<Sighting>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    while let Some(s) = sightings.recv().await {
        metrics.sighting(&s.sensor);
    }
}
