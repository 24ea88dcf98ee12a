//! The file as written: every field optional so that validation, not serde, reports what is
//! missing, all at once.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub store: Option<RawStore>,
    pub api: Option<RawApi>,
    pub hq: Option<RawHq>,
    #[serde(default)]
    pub lanes: Vec<RawLane>,
    pub checkout: Option<RawCheckout>,
    pub points: Option<RawPoints>,
    pub proximity: Option<RawProximity>,
    #[serde(default)]
    pub gifts: Vec<crate::engine::gift_spec::GiftCampaignSpec>,
}

#[derive(Debug, Deserialize)]
pub struct RawProximity {
    #[serde(default)]
    pub sensors: Vec<RawSensor>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    /// Rotating-id interval, seconds (the members' apps use the same).
    pub interval_secs: Option<u64>,
    /// A member heard by no sensor this long has left the store.
    pub visit_timeout_secs: Option<u64>,
    /// A JSON-lines sighting trace replayed as if sensors reported it (demo, tests).
    pub replay: Option<String>,
}

/// A sensor: a zone-sensor node on a serial line (USB CDC or UART), the agent's own Bluetooth
/// adapter, or a name in a replayed trace.
#[derive(Debug, Deserialize)]
pub struct RawSensor {
    pub name: Option<String>,
    /// `serial` (default), `bluetooth` or `replay`.
    pub source: Option<String>,
    pub port: Option<String>,
    pub usb: Option<String>,
    pub serial: Option<String>,
    pub baud: Option<u32>,
    /// For `source = "bluetooth"`: the adapter (`hci0`); the first one when absent.
    pub adapter: Option<String>,
    pub zone: Option<String>,
    /// `zone` (default), `inside` or `outside` (door sensors).
    pub role: Option<String>,
    pub rssi_at_1m: Option<f32>,
    pub path_loss_exponent: Option<f32>,
}

#[derive(Debug, Deserialize)]
pub struct RawZone {
    pub name: Option<String>,
    pub enter_distance_m: Option<f32>,
    pub exit_distance_m: Option<f32>,
    pub min_dwell_secs: Option<u64>,
    pub exit_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawStore {
    pub id: Option<String>,
    pub data_dir: Option<String>,
    /// The store's IANA time zone, e.g. "Europe/Amsterdam": campaign weekdays and hours, and
    /// the local day of per-day gift limits.
    pub time_zone: Option<String>,
    /// Deprecated: a fixed offset such as "+01:00", an hour off for half the year where the
    /// clocks change. Still read so existing configs load.
    pub utc_offset: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawApi {
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawHq {
    pub url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    /// PEM certificates of the CA that signed HQ's certificate, trusted beside the system's.
    pub ca_file: Option<String>,
    /// Seconds without a successful sync round before offline allowances apply (default 60).
    pub offline_after_secs: Option<u64>,
    /// Events per push (default 5000, HQ's default limit); halved by the agent on a 413.
    pub push_batch: Option<usize>,
    /// Seconds an idle pull waits at HQ for a change (default 25; 0 pulls once a second).
    pub pull_wait_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawLane {
    pub id: Option<String>,
    pub scanner: Option<RawScanner>,
}

#[derive(Debug, Deserialize)]
pub struct RawScanner {
    pub port: Option<String>,
    pub usb: Option<String>,
    pub serial: Option<String>,
    pub baud: Option<u32>,
    pub terminator: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub inter_char_timeout_ms: Option<u64>,
    pub debounce_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawCheckout {
    pub session_timeout_secs: Option<u64>,
    pub qr_max_age_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawPoints {
    pub per_euro: Option<u32>,
    pub version: Option<String>,
    #[serde(default)]
    pub tiers: BTreeMap<String, f64>,
    #[serde(default)]
    pub campaigns: Vec<RawCampaign>,
    /// Basket line categories that earn no points (tobacco, gift cards, deposits).
    #[serde(default)]
    pub exclude_categories: Vec<String>,
}

/// Shared with HQ's validation of published campaigns.
pub use loyalty_rules::campaign::RawCampaign;
