//! systemd integration: READY=1 once the API listens, STOPPING=1 when draining, and a watchdog
//! petted only while the ledger writer answers and the API answers a real `/healthz` request
//! on loopback, so a wedged writer (a hung disk, a lock never released) or an API that no
//! longer accepts (descriptors exhausted, a stuck accept loop) gets the agent restarted
//! instead of silently refusing every sale.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use crate::ledger::Ledger;
use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        warn!(error = %e, "Cannot tell systemd the agent is ready.");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Pets the watchdog at half its period for as long as the ledger writer answers a ping and the
/// API listening on `api` answers `/healthz`, each within that half; does nothing when the
/// unit sets no `WatchdogSec=`.
pub async fn watchdog(ledger: Ledger, api: SocketAddr, stop: CancellationToken) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let half = Duration::from_micros(usec / 2);
    info!(period_ms = usec / 1000, "systemd watchdog armed.");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(half) => {}
        }
        match tokio::time::timeout(half, ledger.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "The ledger writer fails; the watchdog is not petted.");
                continue;
            }
            Err(_) => {
                warn!("The ledger writer does not answer; the watchdog is not petted.");
                continue;
            }
        }
        let target = loyalty_http_edge::probe::loopback(api);
        if let Err(e) = loyalty_http_edge::probe::healthz(target, half).await {
            warn!(error = %e, address = %target, "The API does not answer /healthz; the watchdog is not petted.");
            continue;
        }
        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
    }
}
