//! Report task: at each interval boundary, seal the table and send it as sighting batches.
//!
//! Boundaries follow a fixed schedule from boot (`next += interval`), not "interval after the
//! last send", so a slow uplink does not stretch intervals; missed boundaries are skipped, not
//! replayed. A new interval from the agent re-arms the schedule from the moment it arrives.

use core::convert::Infallible;

use embassy_futures::select::{select, Either};
use embassy_time::{Instant, Timer};

use super::state::{duration_ms, Shared};
use crate::wire::{SightingBatch, Uplink};

pub(crate) async fn task(shared: &Shared) -> Infallible {
    let mut next = Instant::now() + shared.report_interval.get();
    loop {
        match select(Timer::at(next), shared.interval_changed.wait()).await {
            Either::First(()) => {
                let interval = shared.report_interval.get();
                report(shared).await;
                next += interval;
                let now = Instant::now();
                if next <= now {
                    next = now + interval;
                }
            }
            Either::Second(()) => {
                next = Instant::now() + shared.report_interval.get();
            }
        }
    }
}

async fn report(shared: &Shared) {
    let now = Instant::now();
    let closed = shared
        .aggregator
        .lock(|a| a.borrow_mut().close_interval(now));
    let interval_end_ms = closed.end.as_millis();
    let interval_ms = duration_ms(closed.duration());
    loop {
        let (sightings, more) = shared.aggregator.lock(|a| a.borrow_mut().take_batch());
        shared
            .send(Uplink::Sightings(SightingBatch {
                interval_end_ms,
                interval_ms,
                more,
                sightings,
            }))
            .await;
        if !more {
            break;
        }
    }
}
