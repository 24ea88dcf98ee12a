//! State shared by the node's tasks: they all run on one executor (one `run` future), so plain
//! `Cell`s and a `NoopRawMutex` suffice; no critical sections.

use core::cell::{Cell, RefCell};

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::channel::{Channel, TrySendError};
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant};

use super::NodeConfig;
use crate::aggregate::Aggregator;
use crate::wire::{Calibration, Heartbeat, Hello, Uplink, LABEL_LEN};

/// Frames waiting for the serial line. Small on purpose: a stalled uplink should drop
/// heartbeats and check-ins (counted) rather than buffer stale ones; report batches wait.
pub const UPLINK_QUEUE: usize = 4;

/// Counters reported in [`Heartbeat`].
#[derive(Default)]
pub(crate) struct Counters {
    pub dropped_frames: Cell<u32>,
    pub queue_high_water: Cell<u16>,
    pub radio_errors: Cell<u32>,
    pub uplink_errors: Cell<u32>,
    pub rejected_commands: Cell<u32>,
    pub bad_check_ins: Cell<u32>,
}

pub(crate) fn bump(counter: &Cell<u32>) {
    counter.set(counter.get().saturating_add(1));
}

/// Everything the tasks share.
pub(crate) struct Shared {
    pub config: NodeConfig,
    pub aggregator: Mutex<NoopRawMutex, RefCell<Aggregator>>,
    pub uplink: Channel<NoopRawMutex, Uplink, UPLINK_QUEUE>,
    pub counters: Counters,
    pub calibration: Cell<Calibration>,
    pub report_interval: Cell<Duration>,
    /// Raised when the report interval changes, so the report task re-arms its timer.
    pub interval_changed: Signal<NoopRawMutex, ()>,
}

impl Shared {
    pub fn new(config: NodeConfig, now: Instant) -> Self {
        Self {
            calibration: Cell::new(config.calibration),
            report_interval: Cell::new(config.report_interval),
            config,
            aggregator: Mutex::new(RefCell::new(Aggregator::new(now))),
            uplink: Channel::new(),
            counters: Counters::default(),
            interval_changed: Signal::new(),
        }
    }

    fn note_queue_depth(&self) {
        let depth = self.uplink.len() as u16;
        let hw = &self.counters.queue_high_water;
        hw.set(hw.get().max(depth));
    }

    /// Queues a frame that is worthless late (heartbeat, hello, check-in): dropped and counted
    /// when the queue is full.
    pub fn offer(&self, frame: Uplink) {
        match self.uplink.try_send(frame) {
            Ok(()) => self.note_queue_depth(),
            Err(TrySendError::Full(_)) => bump(&self.counters.dropped_frames),
        }
    }

    /// Queues a frame that must go out (report batches), waiting for room.
    pub async fn send(&self, frame: Uplink) {
        self.uplink.send(frame).await;
        self.note_queue_depth();
    }

    pub fn hello(&self) -> Hello {
        Hello {
            node_id: self.config.node_id,
            firmware: label(crate::FIRMWARE_VERSION),
            board: label(self.config.board),
            calibration: self.calibration.get(),
            report_interval_ms: duration_ms(self.report_interval.get()),
        }
    }

    pub fn heartbeat(&self, now: Instant) -> Heartbeat {
        let c = &self.counters;
        let (dropped_sightings, table_high_water) = self.aggregator.lock(|a| {
            let a = a.borrow();
            (a.dropped(), a.high_water())
        });
        Heartbeat {
            uptime_ms: now.as_millis(),
            dropped_sightings,
            dropped_frames: c.dropped_frames.get(),
            queue_high_water: c.queue_high_water.get(),
            table_high_water,
            radio_errors: c.radio_errors.get(),
            uplink_errors: c.uplink_errors.get(),
            rejected_commands: c.rejected_commands.get(),
            bad_check_ins: c.bad_check_ins.get(),
        }
    }
}

/// Milliseconds, saturating at `u32::MAX` (49 days: longer than any interval we accept).
pub(crate) fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Truncates to [`LABEL_LEN`] bytes on a character boundary.
fn label(s: &str) -> heapless::String<LABEL_LEN> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}
