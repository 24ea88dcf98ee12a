//! Beacon and check-in task: advertise the store iBeacon (connectable, with the check-in GATT
//! service); each check-in write is parsed and forwarded at once, not aggregated: a check-in is
//! an explicit act of the member, and the agent wants it now.

use core::convert::Infallible;

use embassy_time::{Duration, Instant, Timer};

use super::radio::Beacon;
use super::state::{bump, Shared};
use crate::ibeacon;
use crate::token;
use crate::wire::{CheckIn, Uplink};

/// Pause after an advertising error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) async fn task<B: Beacon>(shared: &Shared, mut beacon: B) -> Infallible {
    let adv = ibeacon::encode(&shared.config.beacon);
    loop {
        let write = match beacon.advertise(&adv).await {
            Ok(write) => write,
            Err(_) => {
                bump(&shared.counters.radio_errors);
                Timer::after(ERROR_BACKOFF).await;
                continue;
            }
        };
        match token::parse_manufacturer_data_with(shared.config.company_id, &write.value) {
            Ok(token) => shared.offer(Uplink::CheckIn(CheckIn {
                token,
                rssi: write.rssi,
                uptime_ms: Instant::now().as_millis(),
            })),
            Err(_) => bump(&shared.counters.bad_check_ins),
        }
    }
}
