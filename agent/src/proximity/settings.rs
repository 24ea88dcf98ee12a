//! What the proximity pipeline runs with: zones and tracking, its Bluetooth adapters and serial
//! sensor nodes. Owned here, built from agent.toml by `config` (which depends on this module,
//! never the other way round).

use crate::serial::PortSource;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ProximityConfig {
    pub interval_secs: u64,
    pub replay: Option<PathBuf>,
    pub bluetooth: Vec<BluetoothSensor>,
    pub tracker: super::tracker::TrackerConfig,
}

/// The agent's own Bluetooth adapter, reporting as sensor `name`.
#[derive(Debug, Clone)]
pub struct BluetoothSensor {
    pub name: String,
    pub adapter: Option<String>,
}

/// A zone-sensor node the agent reads sightings from.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    pub name: String,
    pub source: PortSource,
    pub baud: u32,
}
