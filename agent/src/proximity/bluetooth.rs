//! The agent's own Bluetooth adapter as a sighting source, through btleplug (on Linux: BlueZ
//! over the D-Bus system bus; `DBUS_SYSTEM_BUS_ADDRESS` points elsewhere, as the tests do).
//!
//! [`run_bluetooth`] owns the adapter for the life of the agent: it connects to BlueZ, picks the
//! adapter, starts a filter-less scan and turns BlueZ's events into [`Sighting`]s. When the bus,
//! BlueZ or the adapter is missing it says so in [`BluetoothHealth`] and retries with the same
//! capped, jittered backoff as the serial devices; nothing here panics or stops another part of
//! the agent.
//!
//! # What is sent
//! One [`Sighting`] per advertisement event of a device carrying our phone token
//! (`count: 1`, `rssi_max == rssi`, `check_in: false`), with BlueZ's RSSI property (or the RSSI
//! the event itself carries). Devices advertising another beacon format (iBeacon, AltBeacon,
//! Eddystone) are counted in [`BluetoothHealth::beacons_heard`] and not sent: no resolver turns
//! them into members, and the zone tracker should not pay for them. Anything else is ignored.
//!
//! # What BlueZ does not tell
//! BlueZ reports changes, not advertisements: a device whose RSSI did not move is silent, and a
//! device that left keeps its last RSSI as a property. The source therefore keeps its own TTL map
//! ([`table::DeviceTable`]) and never polls properties: a device is reported only when an event
//! about it arrives, and a re-listing after a scan restart is not taken for an advertisement.
//! BlueZ event streams are known to stop while the scan looks alive: after `stall_after` without
//! any event the scan is stopped and started again, on a fresh event stream (a quiet room costs
//! one harmless restart per `stall_after`).
//!
//! # Back-pressure
//! Sightings are offered with `try_send`: when the consumer lags, the sighting is dropped and
//! counted rather than waited for. BLE is lossy anyway, a late sighting is worth less than the
//! next one, and the event stream must keep being drained (it is unbounded) or the stall
//! detector would fire on our own backlog.

pub mod health;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use btleplug::api::{Central as _, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use futures_util::stream::{Stream, StreamExt as _};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use health::{BluetoothHealth, BluetoothState};
use table::{classify, stall_deadline, Cause, DeviceTable, Verdict};

use super::{Decoder, Sighting};
use crate::serial::supervise::{DEVICE_BACKOFF, STABLE_AFTER};

/// Devices not heard for this long leave the TTL map.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// A scan without any event for this long is restarted.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

/// Any single BlueZ call: its own D-Bus timeout is longer, and a hung BlueZ should show as an
/// error in health rather than as a source stuck in `starting`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Stopping the scan on the way out is a courtesy (BlueZ also stops a discovery whose client
/// left the bus): never wait long for it.
const STOP_SCAN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long shutdown waits for the session to stop its scan.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the TTL map is swept when events keep coming.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which adapter, and how sightings are named and timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BluetoothSettings {
    /// BlueZ adapter name (`hci0`); `None` takes the first adapter BlueZ lists.
    pub adapter: Option<String>,
    /// The sensor name the sightings carry (`till-adapter`).
    pub sensor: String,
    /// How long a device stays in the TTL map without being heard.
    pub ttl: Duration,
    /// How long a scan may go without any event before it is restarted.
    pub stall_after: Duration,
}

impl BluetoothSettings {
    /// The first adapter, with the default TTL and stall timeout.
    pub fn new(sensor: impl Into<String>) -> Self {
        Self {
            adapter: None,
            sensor: sensor.into(),
            ttl: DEFAULT_TTL,
            stall_after: DEFAULT_STALL_AFTER,
        }
    }
}

/// Why a Bluetooth session ended other than by shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BluetoothError {
    /// The system bus is unreachable (no socket, refused) or BlueZ is not on it.
    #[error("cannot reach BlueZ on the D-Bus system bus: {0}")]
    Bus(#[source] btleplug::Error),
    /// BlueZ lists no adapter.
    #[error("no Bluetooth adapter")]
    NoAdapter,
    /// The configured adapter is not among those BlueZ lists.
    #[error("Bluetooth adapter {wanted} not found (present: {present})")]
    AdapterNotFound { wanted: String, present: String },
    /// A BlueZ call failed.
    #[error("{what} failed: {source}")]
    Call {
        what: &'static str,
        #[source]
        source: btleplug::Error,
    },
    /// A BlueZ call did not answer within its timeout.
    #[error("{what} timed out after {timeout:?}")]
    Timeout {
        what: &'static str,
        timeout: Duration,
    },
    /// The event stream ended: the connection to the bus or BlueZ went away.
    #[error("the BlueZ event stream ended")]
    StreamEnded,
    /// The session's thread or runtime could not run.
    #[error("{0}")]
    Task(String),
}

impl BluetoothError {
    /// True when BlueZ answers but the adapter is missing: health shows `no_adapter`.
    pub fn is_no_adapter(&self) -> bool {
        matches!(self, Self::NoAdapter | Self::AdapterNotFound { .. })
    }
}

/// Runs the adapter's scan until `stop` is cancelled or the receiver of `tx` is dropped,
/// reconnecting with capped, jittered backoff whenever the bus, BlueZ or the adapter fails.
pub async fn run_bluetooth(
    settings: BluetoothSettings,
    tx: Sender<Sighting>,
    health: Arc<BluetoothHealth>,
    stop: CancellationToken,
) {
    let mut attempt: u32 = 0;
    // Kept across sessions: after a reconnection, BlueZ re-lists devices it still holds with
    // their old RSSI, which the table tells from new advertisements.
    let mut table = DeviceTable::new(settings.ttl, table::DEFAULT_CAPACITY);
    // Moved into each session and handed back.
    loop {
        if stop.is_cancelled() || tx.is_closed() {
            break;
        }
        health.set_state(BluetoothState::Starting);
        let started = Instant::now();
        let mut done = match spawn_session(&settings, &tx, &health, &stop, table) {
            Ok(done) => done,
            Err(e) => {
                // No thread for the session: nothing to run; the agent goes on without Bluetooth.
                warn!(sensor = %settings.sensor, error = %e, "Bluetooth source cannot start.");
                health.set_state(BluetoothState::Error {
                    error: e.to_string(),
                    attempt,
                    retry_in_ms: 0,
                });
                return;
            }
        };
        let ended = tokio::select! {
            ended = &mut done => ended,
            _ = stop.cancelled() => {
                // The session sees the token too and stops its scan; a thread blocked in
                // connecting is abandoned (it ends by itself).
                let _ = tokio::time::timeout(STOP_GRACE, done).await;
                break;
            }
        };
        let error = match ended {
            Ok((Ok(()), _)) => break,
            Ok((Err(e), back)) => {
                table = back;
                e
            }
            Err(_) => {
                table = DeviceTable::new(settings.ttl, table::DEFAULT_CAPACITY);
                BluetoothError::Task("the Bluetooth session thread died".into())
            }
        };
        if stop.is_cancelled() {
            break;
        }
        if started.elapsed() > STABLE_AFTER {
            attempt = 0;
        }
        attempt = attempt.saturating_add(1);
        let delay = DEVICE_BACKOFF.equal_jitter(attempt, &mut rand::thread_rng());
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        warn!(
            sensor = %settings.sensor,
            adapter = settings.adapter.as_deref().unwrap_or("(first)"),
            error = %error,
            attempt,
            retry_in_ms,
            "Bluetooth source unavailable; retrying."
        );
        let message = error.to_string();
        health.set_state(if error.is_no_adapter() {
            BluetoothState::NoAdapter {
                error: message,
                attempt,
                retry_in_ms,
            }
        } else {
            BluetoothState::Error {
                error: message,
                attempt,
                retry_in_ms,
            }
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    info!(sensor = %settings.sensor, "Bluetooth source stopped.");
    health.set_state(BluetoothState::Stopped);
}

/// How one scan (one event stream) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanEnd {
    /// Shutdown, or nobody consumes sightings any more.
    Stop,
    /// No event for `stall_after`.
    Stalled,
    /// The event stream ended (BlueZ restarted, the connection dropped).
    StreamEnded,
}

/// One connection to BlueZ: borrowed settings and channels, for the life of one session.
struct Source<'a> {
    settings: &'a BluetoothSettings,
    tx: &'a Sender<Sighting>,
    health: &'a BluetoothHealth,
    stop: &'a CancellationToken,
    decoder: Decoder,
}

type Events = std::pin::Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

impl Source<'_> {
    /// Connects, picks the adapter and scans, restarting stalled scans, until shutdown (`Ok`) or
    /// a failure that needs a new connection (`Err`).
    async fn session(&self, table: &mut DeviceTable<PeripheralId>) -> Result<(), BluetoothError> {
        let manager = tokio::select! {
            _ = self.stop.cancelled() => return Ok(()),
            manager = connect() => manager?,
        };
        let (adapter, name) = tokio::select! {
            _ = self.stop.cancelled() => return Ok(()),
            picked = pick_adapter(&manager, self.settings.adapter.as_deref()) => picked?,
        };
        self.health.set_adapter(name.clone());
        loop {
            let mut events = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                started = start_scan(&adapter) => started?,
            };
            self.health.set_state(BluetoothState::Scanning);
            info!(
                sensor = %self.settings.sensor,
                adapter = name.as_deref().unwrap_or("(unnamed)"),
                "Bluetooth scan started."
            );
            let end = self.scan(&adapter, &mut events, table).await;
            // Drop the stream before stopping the scan: its match rules go with it.
            drop(events);
            let _ = tokio::time::timeout(STOP_SCAN_TIMEOUT, adapter.stop_scan()).await;
            match end {
                ScanEnd::Stop => return Ok(()),
                ScanEnd::Stalled => {
                    self.health.scan_restarted();
                    warn!(
                        sensor = %self.settings.sensor,
                        stall_after_ms = u64::try_from(self.settings.stall_after.as_millis()).unwrap_or(u64::MAX),
                        "Bluetooth scan stalled; restarting it."
                    );
                    self.health.set_state(BluetoothState::Starting);
                }
                // A stream that ends says the connection is gone: reconnect, with backoff, so a
                // stream that keeps ending cannot spin.
                ScanEnd::StreamEnded => {
                    self.health.scan_restarted();
                    return Err(BluetoothError::StreamEnded);
                }
            }
        }
    }

    /// Consumes one event stream until it stalls, ends, or shutdown.
    async fn scan(
        &self,
        adapter: &Adapter,
        events: &mut Events,
        table: &mut DeviceTable<PeripheralId>,
    ) -> ScanEnd {
        let mut last_event = Instant::now();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = tokio::time::Instant::from_std(stall_deadline(
                last_event,
                self.settings.stall_after,
            ));
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return ScanEnd::Stop,
                _ = tokio::time::sleep_until(deadline) => return ScanEnd::Stalled,
                event = events.next() => {
                    let Some(event) = event else {
                        return ScanEnd::StreamEnded;
                    };
                    last_event = Instant::now();
                    self.health.event(last_event);
                    // Reading properties is a D-Bus round trip: shutdown must not wait on it.
                    let sent = tokio::select! {
                        _ = self.stop.cancelled() => return ScanEnd::Stop,
                        sent = self.handle(adapter, table, event) => sent,
                    };
                    if sent == Sent::ConsumerGone {
                        return ScanEnd::Stop;
                    }
                    self.health.set_devices(table.len());
                }
                _ = sweep.tick() => {
                    table.expire(Instant::now());
                    self.health.set_devices(table.len());
                }
            }
        }
    }

    /// One event: decides from the table, reading the device's properties when needed.
    async fn handle(
        &self,
        adapter: &Adapter,
        table: &mut DeviceTable<PeripheralId>,
        event: CentralEvent,
    ) -> Sent {
        let (id, cause) = match event {
            CentralEvent::RssiUpdate { id, rssi } => {
                match table.rssi_update(&id, rssi, Instant::now()) {
                    Verdict::ReadProperties => (id, Cause::Advertised),
                    verdict => return self.act(&id, verdict),
                }
            }
            CentralEvent::DeviceDiscovered(id) => (id, Cause::Listed),
            CentralEvent::DeviceUpdated(id)
            | CentralEvent::ManufacturerDataAdvertisement { id, .. }
            | CentralEvent::ServiceDataAdvertisement { id, .. } => (id, Cause::Advertised),
            CentralEvent::StateUpdate(state) => {
                info!(sensor = %self.settings.sensor, state = ?state, "Bluetooth adapter state changed.");
                return Sent::Nothing;
            }
            _ => return Sent::Nothing,
        };
        let properties = match read_properties(adapter, &id).await {
            Ok(Some(properties)) => properties,
            Ok(None) => return Sent::Nothing,
            Err(e) => {
                // Gone between the event and the read (BlueZ removed it): not the scan's fault.
                debug!(sensor = %self.settings.sensor, device = %id, error = %e, "Bluetooth device properties unreadable.");
                return Sent::Nothing;
            }
        };
        let adverts = self
            .decoder
            .decode_maps(&properties.manufacturer_data, &properties.service_data);
        let verdict = table.heard(
            &id,
            properties.rssi,
            classify(&adverts),
            cause,
            Instant::now(),
        );
        self.act(&id, verdict)
    }

    fn act(&self, id: &PeripheralId, verdict: Verdict) -> Sent {
        match verdict {
            Verdict::Phone { token, rssi } => {
                let sighting = Sighting {
                    sensor: self.settings.sensor.clone(),
                    token: Some(token),
                    rssi,
                    rssi_max: rssi,
                    count: 1,
                    check_in: false,
                    at: Instant::now(),
                };
                match self.tx.try_send(sighting) {
                    Ok(()) => {
                        self.health.sighting_sent();
                        Sent::Sighting
                    }
                    Err(TrySendError::Full(_)) => {
                        self.health.sighting_dropped();
                        debug!(sensor = %self.settings.sensor, device = %id, "Sighting dropped: channel full.");
                        Sent::Nothing
                    }
                    Err(TrySendError::Closed(_)) => Sent::ConsumerGone,
                }
            }
            Verdict::Beacon => {
                self.health.beacon_heard();
                Sent::Nothing
            }
            Verdict::Skip(_) | Verdict::ReadProperties => Sent::Nothing,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Sighting,
    Nothing,
    ConsumerGone,
}

/// A BlueZ call with [`CALL_TIMEOUT`].
async fn call<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = btleplug::Result<T>>,
) -> Result<T, BluetoothError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(BluetoothError::Call { what, source }),
        Err(_) => Err(BluetoothError::Timeout {
            what,
            timeout: CALL_TIMEOUT,
        }),
    }
}

type SessionEnd = (Result<(), BluetoothError>, DeviceTable<PeripheralId>);

/// Runs one session on a thread with its own current-thread runtime, and reports its end (with
/// the table) on the returned channel.
///
/// Why a runtime of its own: btleplug's `Manager::new` spawns the D-Bus connection's I/O task
/// and drops its handle, so that task (and the connection) would outlive the session; on the
/// agent's runtime every retry while BlueZ or the adapter is missing would leak one connection
/// until the bus refuses more. Dropping the session's runtime cancels the task and closes the
/// connection. It also keeps the blocking D-Bus connect off the agent's worker threads.
fn spawn_session(
    settings: &BluetoothSettings,
    tx: &Sender<Sighting>,
    health: &Arc<BluetoothHealth>,
    stop: &CancellationToken,
    mut table: DeviceTable<PeripheralId>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<SessionEnd>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (settings, tx, health, stop) = (settings.clone(), tx.clone(), health.clone(), stop.clone());
    std::thread::Builder::new()
        .name("bluetooth".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let source = Source {
                        settings: &settings,
                        tx: &tx,
                        health: &health,
                        stop: &stop,
                        decoder: Decoder::default(),
                    };
                    // The runtime is dropped at the end of this arm, with the connection task.
                    runtime.block_on(source.session(&mut table))
                }
                Err(e) => Err(BluetoothError::Task(format!(
                    "cannot build the Bluetooth runtime: {e}"
                ))),
            };
            // Nobody listens when the agent stopped waiting: nothing to do then.
            let _ = done_tx.send((result, table));
        })?;
    Ok(done_rx)
}

/// Opens the system bus. Blocking inside (libdbus connects synchronously), which only holds the
/// session's own thread; a unix socket answers at once.
async fn connect() -> Result<Manager, BluetoothError> {
    Manager::new().await.map_err(BluetoothError::Bus)
}

/// The BlueZ name of an adapter from btleplug's `adapter_info` (`"hci0 (usb:v1D6Bp0246d0540)"`).
fn adapter_name(info: &str) -> Option<String> {
    let name = info.split_whitespace().next()?;
    Some(name.to_owned())
}

/// The configured adapter, or the first. btleplug names adapters only through `adapter_info`,
/// which fails for adapters without a modalias: those are unnamed, usable as "the first" only.
async fn pick_adapter(
    manager: &Manager,
    wanted: Option<&str>,
) -> Result<(Adapter, Option<String>), BluetoothError> {
    // Listing adapters is the first call that needs BlueZ itself: failing here means the bus
    // answers but BlueZ does not.
    let adapters = match tokio::time::timeout(CALL_TIMEOUT, manager.adapters()).await {
        Ok(Ok(adapters)) => adapters,
        Ok(Err(e)) => return Err(BluetoothError::Bus(e)),
        Err(_) => {
            return Err(BluetoothError::Timeout {
                what: "listing Bluetooth adapters",
                timeout: CALL_TIMEOUT,
            })
        }
    };
    let mut named = Vec::with_capacity(adapters.len());
    for adapter in adapters {
        let name = match call("reading adapter info", adapter.adapter_info()).await {
            Ok(info) => adapter_name(&info),
            Err(e) => {
                debug!(error = %e, "Bluetooth adapter without info.");
                None
            }
        };
        named.push((adapter, name));
    }
    choose(named, wanted)
}

/// Picks from `(adapter, name)` pairs: by name when one is configured, else the first.
fn choose<A>(
    adapters: Vec<(A, Option<String>)>,
    wanted: Option<&str>,
) -> Result<(A, Option<String>), BluetoothError> {
    let Some(wanted) = wanted else {
        return adapters.into_iter().next().ok_or(BluetoothError::NoAdapter);
    };
    if adapters.is_empty() {
        return Err(BluetoothError::NoAdapter);
    }
    let present: Vec<String> = adapters
        .iter()
        .map(|(_, name)| name.clone().unwrap_or_else(|| "(unnamed)".into()))
        .collect();
    adapters
        .into_iter()
        .find(|(_, name)| name.as_deref() == Some(wanted))
        .ok_or_else(|| BluetoothError::AdapterNotFound {
            wanted: wanted.to_owned(),
            present: present.join(", "),
        })
}

/// Opens the event stream, then starts the scan: in that order, so that no event of the new
/// scan is missed.
async fn start_scan(adapter: &Adapter) -> Result<Events, BluetoothError> {
    let events = call("opening the event stream", adapter.events()).await?;
    // No service filter: phones put our token in manufacturer data, which BlueZ cannot filter
    // on; a service filter would hide them.
    call(
        "starting the scan",
        adapter.start_scan(ScanFilter::default()),
    )
    .await?;
    Ok(events)
}

async fn read_properties(
    adapter: &Adapter,
    id: &PeripheralId,
) -> Result<Option<btleplug::api::PeripheralProperties>, BluetoothError> {
    let peripheral = call("finding the device", adapter.peripheral(id)).await?;
    call("reading device properties", peripheral.properties()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_names_come_from_adapter_info() {
        assert_eq!(
            adapter_name("hci0 (usb:v1D6Bp0246d0540)").as_deref(),
            Some("hci0")
        );
        assert_eq!(adapter_name("").as_deref(), None);
    }

    #[test]
    fn the_first_adapter_or_the_named_one() {
        let two = || vec![(1, Some("hci0".to_owned())), (2, Some("hci1".to_owned()))];
        assert_eq!(choose(two(), None).unwrap().0, 1);
        assert_eq!(choose(two(), Some("hci1")).unwrap().0, 2);
        let missing = choose(two(), Some("hci7")).unwrap_err();
        assert!(missing.is_no_adapter());
        assert_eq!(
            missing.to_string(),
            "Bluetooth adapter hci7 not found (present: hci0, hci1)"
        );
        let none: Vec<(u8, Option<String>)> = Vec::new();
        assert!(matches!(
            choose(none.clone(), None),
            Err(BluetoothError::NoAdapter)
        ));
        assert!(matches!(
            choose(none, Some("hci0")),
            Err(BluetoothError::NoAdapter)
        ));
        // An unnamed adapter is still "the first".
        assert_eq!(choose(vec![(3, None)], None).unwrap(), (3, None));
    }

    #[test]
    fn settings_default_to_ten_and_thirty_seconds() {
        let s = BluetoothSettings::new("till-adapter");
        assert_eq!(s.ttl, Duration::from_secs(10));
        assert_eq!(s.stall_after, Duration::from_secs(30));
        assert_eq!(s.adapter, None);
    }
}
