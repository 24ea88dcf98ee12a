//! The Bluetooth source's health, shared between [`run_bluetooth`](super::run_bluetooth) (which
//! writes) and `/healthz` (which reads [`BluetoothHealth::snapshot`]).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

/// What the source is doing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BluetoothState {
    /// Connecting to BlueZ, picking the adapter, starting the scan.
    Starting,
    /// Scanning and consuming events.
    Scanning,
    /// BlueZ answers but has no adapter (or not the configured one); retrying.
    NoAdapter {
        error: String,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// The system bus or BlueZ is unreachable, or a BlueZ call failed; retrying.
    Error {
        error: String,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// Shut down.
    Stopped,
}

#[derive(Debug)]
struct Inner {
    state: BluetoothState,
    adapter: Option<String>,
    devices: usize,
    events: u64,
    sightings_sent: u64,
    sightings_dropped: u64,
    beacons_heard: u64,
    scan_restarts: u64,
    last_event: Option<Instant>,
}

/// Counters and state of one adapter's source.
#[derive(Debug)]
pub struct BluetoothHealth {
    inner: Mutex<Inner>,
}

impl Default for BluetoothHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl BluetoothHealth {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: BluetoothState::Starting,
                adapter: None,
                devices: 0,
                events: 0,
                sightings_sent: 0,
                sightings_dropped: 0,
                beacons_heard: 0,
                scan_restarts: 0,
                last_event: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain values, whole after any panic: a poisoned lock is still good.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn state(&self) -> BluetoothState {
        self.lock().state.clone()
    }

    pub fn is_scanning(&self) -> bool {
        self.state() == BluetoothState::Scanning
    }

    /// The adapter in use (its BlueZ name, like `hci0`), once one was picked.
    pub fn adapter(&self) -> Option<String> {
        self.lock().adapter.clone()
    }

    /// Devices in the source's TTL map.
    pub fn devices(&self) -> usize {
        self.lock().devices
    }

    /// Sightings put on the channel.
    pub fn sightings_sent(&self) -> u64 {
        self.lock().sightings_sent
    }

    /// Sightings dropped because the channel was full.
    pub fn sightings_dropped(&self) -> u64 {
        self.lock().sightings_dropped
    }

    /// Advertisements of other beacon formats (iBeacon, AltBeacon, Eddystone): counted only.
    pub fn beacons_heard(&self) -> u64 {
        self.lock().beacons_heard
    }

    /// Scans restarted because their event stream stalled or ended.
    pub fn scan_restarts(&self) -> u64 {
        self.lock().scan_restarts
    }

    /// Events received from BlueZ.
    pub fn events(&self) -> u64 {
        self.lock().events
    }

    /// Time since the last event, if any arrived.
    pub fn last_event_age(&self, now: Instant) -> Option<Duration> {
        self.lock()
            .last_event
            .map(|t| now.saturating_duration_since(t))
    }

    /// Everything above as JSON, for `/healthz`: the state's fields at the top level
    /// (`"state": "scanning"`, or `"no_adapter"` / `"error"` with `error`, `attempt`,
    /// `retry_in_ms`), then the counters.
    pub fn snapshot(&self) -> serde_json::Value {
        let now = Instant::now();
        let inner = self.lock();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut value =
            serde_json::to_value(&inner.state).unwrap_or_else(|_| json!({ "state": "unknown" }));
        let counters = json!({
            "adapter": inner.adapter,
            "devices": inner.devices,
            "events": inner.events,
            "sightings_sent": inner.sightings_sent,
            "sightings_dropped": inner.sightings_dropped,
            "beacons_heard": inner.beacons_heard,
            "scan_restarts": inner.scan_restarts,
            "last_event_ms_ago": inner.last_event.map(|t| ms(now.saturating_duration_since(t))),
        });
        if let (Some(out), serde_json::Value::Object(counters)) = (value.as_object_mut(), counters)
        {
            out.extend(counters);
        }
        value
    }

    pub(super) fn set_state(&self, state: BluetoothState) {
        self.lock().state = state;
    }

    pub(super) fn set_adapter(&self, adapter: Option<String>) {
        self.lock().adapter = adapter;
    }

    pub(super) fn set_devices(&self, devices: usize) {
        self.lock().devices = devices;
    }

    pub(super) fn event(&self, at: Instant) {
        let mut inner = self.lock();
        inner.events = inner.events.saturating_add(1);
        inner.last_event = Some(at);
    }

    pub(super) fn sighting_sent(&self) {
        let mut inner = self.lock();
        inner.sightings_sent = inner.sightings_sent.saturating_add(1);
    }

    pub(super) fn sighting_dropped(&self) {
        let mut inner = self.lock();
        inner.sightings_dropped = inner.sightings_dropped.saturating_add(1);
    }

    pub(super) fn beacon_heard(&self) {
        let mut inner = self.lock();
        inner.beacons_heard = inner.beacons_heard.saturating_add(1);
    }

    pub(super) fn scan_restarted(&self) {
        let mut inner = self.lock();
        inner.scan_restarts = inner.scan_restarts.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_flattens_the_state_and_carries_the_counters() {
        let health = BluetoothHealth::new();
        assert_eq!(health.snapshot()["state"], "starting");
        assert!(health.snapshot()["last_event_ms_ago"].is_null());

        health.set_state(BluetoothState::NoAdapter {
            error: "no Bluetooth adapter".into(),
            attempt: 2,
            retry_in_ms: 400,
        });
        let snap = health.snapshot();
        assert_eq!(snap["state"], "no_adapter");
        assert_eq!(snap["error"], "no Bluetooth adapter");
        assert_eq!(snap["attempt"], 2);

        health.set_state(BluetoothState::Scanning);
        health.set_adapter(Some("hci0".into()));
        health.set_devices(3);
        health.event(Instant::now());
        health.sighting_sent();
        health.sighting_dropped();
        health.beacon_heard();
        health.scan_restarted();
        let snap = health.snapshot();
        assert_eq!(snap["state"], "scanning");
        assert!(snap.get("error").is_none());
        assert_eq!(snap["adapter"], "hci0");
        assert_eq!(snap["devices"], 3);
        assert_eq!(snap["events"], 1);
        assert_eq!(snap["sightings_sent"], 1);
        assert_eq!(snap["sightings_dropped"], 1);
        assert_eq!(snap["beacons_heard"], 1);
        assert_eq!(snap["scan_restarts"], 1);
        assert!(snap["last_event_ms_ago"].is_u64());
    }
}
