//! One lane's scanner: [`supervise`] keeps it open through [`crate::serial::supervise`] and
//! runs [`read_scans`] on it; [`ScannerHealth`] is what `/healthz` shows of it. A lane's trouble
//! never reaches another lane.

pub use crate::serial::{list_ports, open, resolve, PortError, PortInfo, READ_TIMEOUT};
/// A scanner's state is a serial device's state.
pub type ScannerState = crate::serial::DeviceState;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serialport::SerialPort;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use super::reader::read_scans;
use super::{LaneRead, ScannerSettings};
use crate::metrics::Metrics;
use crate::serial::{supervise_device, SerialDevice};

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
    tx: Sender<LaneRead>,
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
    tx: Sender<LaneRead>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::PortSource;
    use std::time::Duration;

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
