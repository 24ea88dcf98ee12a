//! Per-device RSSI aggregation over the report interval, in a fixed table.
//!
//! # Invariants
//! - Memory is fixed: [`TABLE_CAPACITY`] entries of [`Entry`], whatever the radio hears
//!   (`size_of::<Aggregator>()` is reported by the `wire-bench` binary).
//! - Phone tokens are keyed by id (a phone may rotate its address mid-interval), other
//!   advertisers by address.
//! - When the table is full, the least recently heard *raw* device is evicted first; a token is
//!   only evicted for another token, never for a raw advertiser (a raw arrival finding only
//!   tokens is dropped instead). Tokens are what the store is for; a busy mall is full of
//!   headphones. Every eviction or drop is counted in [`Aggregator::dropped`].
//! - Intervals are epochs: [`Aggregator::close_interval`] seals what was heard so far, and
//!   [`Aggregator::take_batch`] hands out only sealed entries. Sightings recorded while the
//!   sealed interval is still being sent (slow uplink) go to the next interval, never into the
//!   report being sent.
//! - Times are passed in (`now`), never read here: the caller decides what "now" is, and tests
//!   drive it with embassy-time's mock driver.

use embassy_time::{Duration, Instant};
use heapless::Vec;

use crate::wire::{RssiStats, Sighting, Subject, BATCH_CAPACITY};

/// Devices tracked per interval.
pub const TABLE_CAPACITY: usize = 128;
/// RSSI samples kept per device for the median: the most recent ones (odd, so the median is a
/// sample). Count, min and max cover every sample.
pub const SAMPLES: usize = 15;

// The budget: the table for 128 devices stays under 16 KiB on every target.
const _: () = assert!(core::mem::size_of::<Aggregator>() < 16 * 1024);

/// Running RSSI statistics of one device.
#[derive(Debug, Clone)]
pub struct RssiAccumulator {
    count: u16,
    min: i8,
    max: i8,
    recent: [i8; SAMPLES],
    /// Samples stored in `recent` (up to `SAMPLES`).
    len: u8,
    /// Where the next sample goes (ring).
    next: u8,
}

impl RssiAccumulator {
    /// Starts with one sample.
    pub fn new(rssi: i8) -> Self {
        let mut recent = [0; SAMPLES];
        recent[0] = rssi;
        Self {
            count: 1,
            min: rssi,
            max: rssi,
            recent,
            len: 1,
            next: 1,
        }
    }

    /// Adds a sample.
    pub fn add(&mut self, rssi: i8) {
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(rssi);
        self.max = self.max.max(rssi);
        let slot = usize::from(self.next) % SAMPLES;
        self.recent[slot] = rssi;
        self.next = ((slot + 1) % SAMPLES) as u8;
        self.len = (usize::from(self.len) + 1).min(SAMPLES) as u8;
    }

    /// The statistics so far.
    pub fn stats(&self) -> RssiStats {
        let mut sorted = self.recent;
        let n = usize::from(self.len).clamp(1, SAMPLES);
        let sorted = &mut sorted[..n];
        sorted.sort_unstable();
        RssiStats {
            count: self.count,
            // Lower median for an even count: the weaker reading, the conservative distance.
            median: sorted[(n - 1) / 2],
            max: self.max,
            min: self.min,
        }
    }
}

/// One device in the table.
#[derive(Debug, Clone)]
pub struct Entry {
    subject: Subject,
    first_seen: Instant,
    last_seen: Instant,
    rssi: RssiAccumulator,
    epoch: u8,
}

/// What [`Aggregator::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Added a sample to a known device.
    Updated,
    /// Started a new device.
    Inserted,
    /// Started a new device by evicting another one (counted as dropped).
    Evicted,
    /// Table full of tokens and this was a raw advertiser: not recorded (counted as dropped).
    Dropped,
}

/// A sealed interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedInterval {
    /// When it started.
    pub start: Instant,
    /// When it was closed.
    pub end: Instant,
}

impl ClosedInterval {
    /// Its length.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// The table.
#[derive(Debug)]
pub struct Aggregator {
    entries: Vec<Entry, TABLE_CAPACITY>,
    epoch: u8,
    interval_start: Instant,
    dropped: u32,
    high_water: u16,
}

impl Aggregator {
    /// An empty table whose first interval starts at `now`.
    pub const fn new(now: Instant) -> Self {
        Self {
            entries: Vec::new(),
            epoch: 0,
            interval_start: now,
            dropped: 0,
            high_water: 0,
        }
    }

    /// Records one advertisement heard at `now`.
    pub fn record(&mut self, now: Instant, subject: Subject, rssi: i8) -> Recorded {
        let epoch = self.epoch;
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.epoch == epoch && same_device(&e.subject, &subject))
        {
            entry.rssi.add(rssi);
            entry.last_seen = now;
            // Keep the latest payload and tx power: the agent decodes what the device says now.
            entry.subject = subject;
            return Recorded::Updated;
        }
        let entry = Entry {
            subject,
            first_seen: now,
            last_seen: now,
            rssi: RssiAccumulator::new(rssi),
            epoch,
        };
        let outcome = if self.entries.is_full() {
            let Some(victim) = self.victim(matches!(entry.subject, Subject::Token(_))) else {
                self.dropped = self.dropped.saturating_add(1);
                return Recorded::Dropped;
            };
            self.dropped = self.dropped.saturating_add(1);
            self.entries.swap_remove(victim);
            Recorded::Evicted
        } else {
            Recorded::Inserted
        };
        // There is room now: full tables lost an entry just above.
        if self.entries.push(entry).is_err() {
            self.dropped = self.dropped.saturating_add(1);
            return Recorded::Dropped;
        }
        self.high_water = self.high_water.max(self.entries.len() as u16);
        outcome
    }

    /// The entry to evict: least recently heard raw device; a token only for a token.
    fn victim(&self, for_token: bool) -> Option<usize> {
        let oldest = |want_token: bool| {
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e.subject, Subject::Token(_)) == want_token)
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(i, _)| i)
        };
        oldest(false).or_else(|| if for_token { oldest(true) } else { None })
    }

    /// Seals the current interval at `now`; entries recorded from now on belong to the next.
    pub fn close_interval(&mut self, now: Instant) -> ClosedInterval {
        let closed = ClosedInterval {
            start: self.interval_start,
            end: now,
        };
        self.epoch = self.epoch.wrapping_add(1);
        self.interval_start = now;
        closed
    }

    /// Takes up to [`BATCH_CAPACITY`] sealed entries out of the table. The flag says whether
    /// sealed entries remain.
    pub fn take_batch(&mut self) -> (Vec<Sighting, BATCH_CAPACITY>, bool) {
        let mut batch = Vec::new();
        let mut i = 0;
        while i < self.entries.len() && !batch.is_full() {
            if self.entries[i].epoch == self.epoch {
                i += 1;
                continue;
            }
            let entry = self.entries.swap_remove(i);
            let sighting = Sighting {
                subject: entry.subject,
                rssi: entry.rssi.stats(),
            };
            // `batch` is not full (loop condition).
            let _ = batch.push(sighting);
        }
        let more = self.entries.iter().any(|e| e.epoch != self.epoch);
        (batch, more)
    }

    /// Devices currently in the table (all epochs).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Devices evicted or dropped since boot.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Most devices ever held at once.
    pub fn high_water(&self) -> u16 {
        self.high_water
    }

    /// When the current interval started.
    pub fn interval_start(&self) -> Instant {
        self.interval_start
    }

    /// First and last time a device of the current interval was heard (diagnostics, tests).
    pub fn seen(&self, subject: &Subject) -> Option<(Instant, Instant)> {
        self.entries
            .iter()
            .find(|e| e.epoch == self.epoch && same_device(&e.subject, subject))
            .map(|e| (e.first_seen, e.last_seen))
    }
}

fn same_device(a: &Subject, b: &Subject) -> bool {
    match (a, b) {
        (Subject::Token(x), Subject::Token(y)) => x.id == y.id,
        (Subject::Raw { addr: x, .. }, Subject::Raw { addr: y, .. }) => x == y,
        _ => false,
    }
}
