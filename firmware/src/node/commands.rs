//! Command task: reads agent -> node frames and applies them. Returns only to reboot.
//!
//! Settings changed here live in RAM: they are lost at reset, and the agent re-sends them when
//! it sees a Hello with other values (persisting them in flash is the board's business).

use embassy_time::{Duration, Timer};
use embedded_io_async::Read;

use super::state::{bump, Shared};
use super::Exit;
use crate::wire::{Downlink, FrameDecoder, Uplink, MAX_REPORT_INTERVAL_MS, MIN_REPORT_INTERVAL_MS};

/// Pause after a read error (a UART framing error, an unplugged USB host).
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) async fn task<R: Read>(shared: &Shared, mut rx: R) -> Exit {
    let mut decoder = FrameDecoder::<Downlink>::new();
    let mut buf = [0u8; 64];
    loop {
        let n = match rx.read(&mut buf).await {
            // End of stream: nothing more will come; keep the node running without commands.
            Ok(0) => core::future::pending().await,
            Ok(n) => n,
            Err(_) => {
                bump(&shared.counters.rejected_commands);
                Timer::after(ERROR_BACKOFF).await;
                continue;
            }
        };
        for frame in decoder.feed(&buf[..n]) {
            match frame {
                Ok(Downlink::Reboot) => return Exit::Reboot,
                Ok(command) => apply(shared, command),
                Err(_) => bump(&shared.counters.rejected_commands),
            }
        }
    }
}

fn apply(shared: &Shared, command: Downlink) {
    match command {
        Downlink::SetCalibration(calibration) if calibration.is_plausible() => {
            shared.calibration.set(calibration);
        }
        Downlink::SetReportInterval { interval_ms }
            if (MIN_REPORT_INTERVAL_MS..=MAX_REPORT_INTERVAL_MS).contains(&interval_ms) =>
        {
            shared
                .report_interval
                .set(Duration::from_millis(u64::from(interval_ms)));
            shared.interval_changed.signal(());
        }
        Downlink::Identify => {}
        // Implausible values and Reboot (handled by the caller) land here.
        _ => {
            bump(&shared.counters.rejected_commands);
            return;
        }
    }
    // The Hello is the acknowledgement: it carries the settings now in force.
    shared.offer(Uplink::Hello(shared.hello()));
}
