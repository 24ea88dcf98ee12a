//! Keeping one serial device open for the life of the agent: open it, read it on a blocking
//! thread, and when it is missing or goes away say why and re-open it with capped, jittered
//! backoff. One device's trouble never reaches another, nothing here gives up while the agent
//! runs, and shutdown is prompt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serialport::SerialPort;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{open, resolve, PortError, PortSource};
use crate::backoff::Backoff;

/// A connection that lasted this long was healthy: the next failure starts backoff afresh.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// 250 ms doubling to 10 s, equal jitter: devices that went away together (a hub reset) do not
/// all retry in the same instant, and none retries sooner than half its step.
pub const DEVICE_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(10),
};

/// A serial device's state (a lane's scanner, a sensor node), for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
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

/// What differs between the serial devices the agent keeps open (scanners, sensor nodes);
/// [`supervise_device`] does the rest the same way for all.
pub trait SerialDevice: Send + Sync + 'static {
    /// For logs.
    const KIND: &'static str;
    fn name(&self) -> &str;
    /// True when nobody consumes what the device reads any more.
    fn consumer_gone(&self) -> bool;
    fn set_state(&self, state: DeviceState);
    fn connected(&self, port: String, at: Instant);
    /// Reads the open port (blocking) until `shutdown` (Ok) or a failure (Err: why).
    fn read(&self, port: Box<dyn SerialPort>, shutdown: &CancellationToken) -> Result<(), String>;
}

/// Opens `source`, reads it, and re-opens it with capped, jittered backoff when it is missing
/// or goes away, until `shutdown`; a missing device never stops any other.
pub async fn supervise_device<D: SerialDevice>(
    device: Arc<D>,
    source: PortSource,
    baud: u32,
    shutdown: CancellationToken,
) {
    let (kind, name) = (D::KIND, device.name().to_owned());
    device.set_state(DeviceState::Connecting);
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
        let delay = DEVICE_BACKOFF.equal_jitter(attempt, &mut rand::thread_rng());
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        warn!(kind, device = %name, source = %source, error = %error, attempt, retry_in_ms, "Serial device unavailable; retrying.");
        device.set_state(DeviceState::Retrying {
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
    device.set_state(DeviceState::Stopped);
}
