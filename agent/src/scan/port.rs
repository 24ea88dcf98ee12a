//! Serial ports: listing, finding a scanner by USB id, opening, and supervising one lane.
//!
//! [`supervise`] owns a lane's scanner for the life of the agent: it finds and opens the port,
//! runs [`read_scans`] on a blocking thread, and when the scanner is missing or unplugged it
//! records why in [`ScannerHealth`] and retries with capped, jittered backoff. A lane's trouble
//! never reaches another lane, and nothing here gives up while the agent runs.
//!
//! Listing reads `/sys/class/tty` (serialport without libudev), which carries the USB vendor,
//! product and serial number of USB serial devices; ports without a device (ptys, consoles) are
//! not listed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;
use serialport::{
    ClearBuffer, DataBits, FlowControl, Parity, SerialPort, SerialPortType, StopBits,
};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::reader::read_scans;
use super::{LaneScan, PortSource, ScannerSettings};
use crate::metrics::Metrics;

/// Short enough for silence detection and shutdown, long enough not to spin.
pub const READ_TIMEOUT: Duration = Duration::from_millis(50);

const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long was healthy: the next failure starts backoff afresh.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Why a port could not be listed, found or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    #[error("invalid USB id {0:?}: expected vendor:product in hex, like 0c2e:0b61")]
    BadUsbId(String),
    #[error("cannot list serial ports: {0}")]
    List(String),
    #[error("no serial port with USB id {wanted}")]
    NotFound { wanted: PortSource },
    #[error("{} serial ports match USB id {wanted}: {}; configure the serial number to pick one", .paths.len(), .paths.join(", "))]
    Ambiguous {
        wanted: PortSource,
        paths: Vec<String>,
    },
    #[error("serial port path {0:?} is not UTF-8")]
    NonUtf8Path(PathBuf),
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: serialport::Error,
    },
}

/// A serial port present on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortInfo {
    pub path: String,
    pub vid: Option<u16>,
    pub pid: Option<u16>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

/// The serial ports present now, sorted by path.
pub fn list_ports() -> Result<Vec<PortInfo>, PortError> {
    // serialport panics when this directory is missing (a container without /sys).
    #[cfg(target_os = "linux")]
    if !Path::new("/sys/class/tty").is_dir() {
        return Err(PortError::List("/sys/class/tty is missing".into()));
    }
    let ports = serialport::available_ports().map_err(|e| PortError::List(e.to_string()))?;
    let mut infos: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| match p.port_type {
            SerialPortType::UsbPort(usb) => PortInfo {
                path: p.port_name,
                vid: Some(usb.vid),
                pid: Some(usb.pid),
                serial_number: usb.serial_number,
                manufacturer: usb.manufacturer,
                product: usb.product,
            },
            _ => PortInfo {
                path: p.port_name,
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
            },
        })
        .collect();
    infos.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(infos)
}

/// The device path of `source` now. A path is returned as is (opening it reports whether it
/// exists); a USB id must match exactly one present port.
pub fn resolve(source: &PortSource) -> Result<PathBuf, PortError> {
    match source {
        PortSource::Path(path) => Ok(path.clone()),
        PortSource::Usb { .. } => pick_usb(source, &list_ports()?),
    }
}

fn pick_usb(source: &PortSource, ports: &[PortInfo]) -> Result<PathBuf, PortError> {
    let PortSource::Usb { vid, pid, serial } = source else {
        return Err(PortError::BadUsbId(source.to_string()));
    };
    let paths: Vec<String> = ports
        .iter()
        .filter(|p| p.vid == Some(*vid) && p.pid == Some(*pid))
        .filter(|p| serial.is_none() || p.serial_number.as_deref() == serial.as_deref())
        .map(|p| p.path.clone())
        .collect();
    match paths.as_slice() {
        [] => Err(PortError::NotFound {
            wanted: source.clone(),
        }),
        [one] => Ok(PathBuf::from(one)),
        _ => Err(PortError::Ambiguous {
            wanted: source.clone(),
            paths,
        }),
    }
}

/// Opens `path` 8N1 without flow control, with a [`READ_TIMEOUT`] read timeout, and discards
/// whatever was waiting in the input buffer: bytes scanned while nobody read are stale, and a
/// customer who left minutes ago must not become the lane's member now.
pub fn open(path: &Path, baud: u32) -> Result<Box<dyn SerialPort>, PortError> {
    let name = path
        .to_str()
        .ok_or_else(|| PortError::NonUtf8Path(path.to_owned()))?;
    let port = serialport::new(name, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .timeout(READ_TIMEOUT)
        .open()
        .map_err(|source| PortError::Open {
            path: path.to_owned(),
            source,
        })?;
    if let Err(e) = port.clear(ClearBuffer::Input) {
        // Not fatal: a stale scan is worse than none, but a lane without scans is worse still.
        warn!(port = %path.display(), error = %e, "Could not discard stale scanner input.");
    }
    Ok(port)
}

/// A lane scanner's state, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ScannerState {
    Connecting,
    Connected {
        port: String,
    },
    Retrying {
        error: String,
        attempt: u32,
        retry_in_ms: u64,
    },
    Stopped,
}

/// Shared between a lane's [`supervise`] task (which writes) and the health endpoint (which
/// reads).
#[derive(Debug)]
pub struct ScannerHealth {
    state: Mutex<ScannerState>,
}

impl Default for ScannerHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl ScannerHealth {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(ScannerState::Connecting),
        }
    }

    pub fn state(&self) -> ScannerState {
        // The state is a plain value, whole after any panic, so a poisoned lock is still good.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state(), ScannerState::Connected { .. })
    }

    fn set(&self, state: ScannerState) {
        *self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = state;
    }
}

/// Runs one lane's scanner until `shutdown` is cancelled or the receiver of `tx` is dropped.
pub async fn supervise(
    lane: String,
    settings: ScannerSettings,
    tx: Sender<LaneScan>,
    health: Arc<ScannerHealth>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let source = settings.source.clone();
    let baud = settings.baud;
    let scanner = Scanner {
        lane,
        settings,
        tx,
        health,
        metrics,
    };
    supervise_device(Arc::new(scanner), source, baud, shutdown).await;
}

struct Scanner {
    lane: String,
    settings: ScannerSettings,
    tx: Sender<LaneScan>,
    health: Arc<ScannerHealth>,
    metrics: Arc<Metrics>,
}

impl SerialDevice for Scanner {
    const KIND: &'static str = "scanner";

    fn name(&self) -> &str {
        &self.lane
    }

    fn consumer_gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn set_state(&self, state: ScannerState) {
        self.health.set(state);
    }

    fn connected(&self, port: String, _at: Instant) {
        self.health.set(ScannerState::Connected { port });
    }

    fn read(&self, port: Box<dyn SerialPort>, shutdown: &CancellationToken) -> Result<(), String> {
        read_scans(
            port,
            &self.lane,
            &self.settings,
            &self.tx,
            &self.metrics,
            shutdown,
        )
        .map_err(|e| e.to_string())
    }
}

/// What differs between the serial devices the agent keeps open (scanners, sensor nodes);
/// [`supervise_device`] does the rest the same way for all.
pub(crate) trait SerialDevice: Send + Sync + 'static {
    /// For logs.
    const KIND: &'static str;
    fn name(&self) -> &str;
    /// True when nobody consumes what the device reads any more.
    fn consumer_gone(&self) -> bool;
    fn set_state(&self, state: ScannerState);
    fn connected(&self, port: String, at: Instant);
    /// Reads the open port (blocking) until `shutdown` (Ok) or a failure (Err: why).
    fn read(&self, port: Box<dyn SerialPort>, shutdown: &CancellationToken) -> Result<(), String>;
}

/// Opens `source`, reads it, and re-opens it with capped, jittered backoff when it is missing
/// or goes away, until `shutdown`; a missing device never stops any other.
pub(crate) async fn supervise_device<D: SerialDevice>(
    device: Arc<D>,
    source: PortSource,
    baud: u32,
    shutdown: CancellationToken,
) {
    let (kind, name) = (D::KIND, device.name().to_owned());
    device.set_state(ScannerState::Connecting);
    let mut attempt: u32 = 0;
    loop {
        if shutdown.is_cancelled() || device.consumer_gone() {
            break;
        }
        let opening = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || {
                let path = resolve(&source)?;
                let port = open(&path, baud)?;
                Ok::<_, PortError>((path, port))
            })
        };
        // A device that hangs in open() must not hold up shutdown; the abandoned task drops the
        // port when open() finally returns.
        let opened = tokio::select! {
            _ = shutdown.cancelled() => break,
            opened = opening => opened,
        };

        let error = match opened {
            Ok(Ok((path, port))) => {
                let port_name = path.display().to_string();
                info!(kind, device = %name, port = %port_name, "Serial device connected.");
                let connected_at = Instant::now();
                device.connected(port_name, connected_at);
                let reading = {
                    let (device, shutdown) = (device.clone(), shutdown.clone());
                    // The reader sees the token within one read timeout, so awaiting it keeps
                    // shutdown prompt and the port is closed before this returns.
                    tokio::task::spawn_blocking(move || device.read(port, &shutdown))
                };
                let result = reading.await;
                if connected_at.elapsed() > STABLE_AFTER {
                    attempt = 0;
                }
                match result {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => e,
                    Err(e) => format!("{kind} reader failed: {e}"),
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("opening the {kind} failed: {e}"),
        };
        if shutdown.is_cancelled() {
            break;
        }

        attempt = attempt.saturating_add(1);
        let delay = backoff(attempt);
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        warn!(kind, device = %name, source = %source, error = %error, attempt, retry_in_ms, "Serial device unavailable; retrying.");
        device.set_state(ScannerState::Retrying {
            error,
            attempt,
            retry_in_ms,
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    info!(kind, device = %name, "Serial device stopped.");
    device.set_state(ScannerState::Stopped);
}

/// 250 ms doubling to 10 s, then a random point in the upper half of that: scanners that went
/// away together (a hub reset) do not all retry in the same instant, and none retries sooner
/// than half its step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let step = backoff_step(attempt);
    let half = step / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(0);
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
}

fn backoff_step(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(path: &str, vid: u16, pid: u16, serial: Option<&str>) -> PortInfo {
        PortInfo {
            path: path.into(),
            vid: Some(vid),
            pid: Some(pid),
            serial_number: serial.map(Into::into),
            manufacturer: None,
            product: None,
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let steps: Vec<u128> = (1..=8).map(|a| backoff_step(a).as_millis()).collect();
        assert_eq!(steps, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(backoff_step(0), BACKOFF_FIRST);
        assert_eq!(backoff_step(u32::MAX), BACKOFF_MAX);
        for attempt in [1, 3, 10, u32::MAX] {
            let step = backoff_step(attempt);
            for _ in 0..50 {
                let d = backoff(attempt);
                assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn usb_id_picks_one_port() {
        let ports = [
            usb("/dev/ttyACM0", 0x0c2e, 0x0b61, Some("A1")),
            usb("/dev/ttyACM1", 0x0c2e, 0x0b61, Some("B2")),
            usb("/dev/ttyACM2", 0x05e0, 0x1200, None),
            PortInfo {
                path: "/dev/ttyS0".into(),
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
            },
        ];
        let src = |id: &str, serial: Option<&str>| {
            PortSource::parse_usb(id, serial.map(Into::into)).unwrap()
        };
        assert_eq!(
            pick_usb(&src("0c2e:0b61", Some("B2")), &ports).unwrap(),
            PathBuf::from("/dev/ttyACM1")
        );
        assert_eq!(
            pick_usb(&src("05e0:1200", None), &ports).unwrap(),
            PathBuf::from("/dev/ttyACM2")
        );
        let err = pick_usb(&src("0c2e:0b61", None), &ports).unwrap_err();
        assert!(matches!(&err, PortError::Ambiguous { paths, .. } if paths.len() == 2));
        assert!(
            err.to_string().contains("/dev/ttyACM0, /dev/ttyACM1"),
            "{err}"
        );
        let err = pick_usb(&src("0c2e:0b61", Some("C3")), &ports).unwrap_err();
        assert!(matches!(err, PortError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            "no serial port with USB id usb 0c2e:0b61 serial C3"
        );
    }

    #[test]
    fn path_resolves_to_itself_and_missing_paths_fail_to_open() {
        let path = PathBuf::from("/nonexistent/ttyACM9");
        assert_eq!(resolve(&PortSource::Path(path.clone())).unwrap(), path);
        let Err(err) = open(&path, 9600) else {
            panic!("opening a missing path succeeded");
        };
        assert!(
            err.to_string()
                .starts_with("cannot open /nonexistent/ttyACM9"),
            "{err}"
        );
    }

    #[test]
    fn listing_does_not_fail_here() {
        // Whatever this machine has, listing must not panic; sorted by path.
        if let Ok(ports) = list_ports() {
            assert!(ports.windows(2).all(|w| w[0].path <= w[1].path));
        }
    }

    #[test]
    fn health_serializes_for_healthz() {
        let health = ScannerHealth::new();
        assert_eq!(health.state(), ScannerState::Connecting);
        health.set(ScannerState::Retrying {
            error: "gone".into(),
            attempt: 2,
            retry_in_ms: 400,
        });
        assert_eq!(
            serde_json::to_string(&health.state()).unwrap(),
            r#"{"state":"retrying","error":"gone","attempt":2,"retry_in_ms":400}"#
        );
        health.set(ScannerState::Connected {
            port: "/dev/ttyACM0".into(),
        });
        assert!(health.is_connected());
        assert_eq!(
            serde_json::to_string(&ScannerState::Stopped).unwrap(),
            r#"{"state":"stopped"}"#
        );
    }

    #[tokio::test]
    async fn missing_port_retries_and_shutdown_is_prompt() {
        let health = Arc::new(ScannerHealth::new());
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let settings = ScannerSettings {
            source: PortSource::Path("/nonexistent/ttyACM9".into()),
            ..ScannerSettings::default()
        };
        let task = tokio::spawn(supervise(
            "3".into(),
            settings,
            tx,
            health.clone(),
            Arc::new(Metrics::new()),
            shutdown.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(health.state(), ScannerState::Retrying { attempt, .. } if attempt >= 2) {
            assert!(Instant::now() < deadline, "{:?}", health.state());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stopping = Instant::now();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert!(stopping.elapsed() < Duration::from_millis(200));
        assert_eq!(health.state(), ScannerState::Stopped);
    }
}
