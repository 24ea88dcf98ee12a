//! A synthetic radio model that writes sighting traces (`loyalty_protocol::trace`): for tests,
//! the demo, and tuning.
//!
//! # The model
//! - A floor plan in metres: sensors at fixed [`Point`]s, and straight [`Wall`]s along a line
//!   `y = const` (a shop front) that cost `loss_db` to every signal crossing them.
//! - Walkers follow a path of [`Waypoint`]s at a constant speed, pausing at each waypoint for
//!   its `pause`; before their start and after their last waypoint they are not there.
//! - Every `report_interval`, each sensor reports each present walker with probability
//!   `1 - loss_probability` (lost advertisements, busy radios), at the RSSI of the
//!   **log-distance path-loss model with log-normal shadowing**:
//!   `rssi = rssi_at_1m - 10 n log10(max(d, 0.1)) - walls crossed + N(0, sigma^2)`,
//!   rounded to whole dBm; a report below `sensitivity_dbm` is not heard.
//! - Noise comes from a seeded generator: a seed gives the same trace every time, so a test
//!   that fails can be replayed exactly, and tests run several seeds to show they do not depend
//!   on one lucky draw.
//! - A walker's token is fixed (a replayed id, a static beacon) or rotating: the id of its key
//!   for the interval of `unix_start + t` (`loyalty_protocol::rotating_id`), so a trace can straddle an
//!   interval boundary.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use loyalty_protocol::rotating_id::{interval_number, rotating_id, ProximityKey};
use loyalty_protocol::trace::{TraceRecord, TraceToken};

/// A place on the floor plan, metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Along the shop front.
    pub x: f64,
    /// Into the store (negative: the street).
    pub y: f64,
}

impl Point {
    /// A point.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    fn distance(self, other: Point) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

/// A sensor as the radio sees it (the true values: the tracker's calibration may differ).
#[derive(Debug, Clone, PartialEq)]
pub struct RfSensor {
    /// Its name in the trace.
    pub name: String,
    /// Where it is.
    pub at: Point,
    /// RSSI at 1 m, dBm.
    pub rssi_at_1m: f64,
    /// Path-loss exponent.
    pub path_loss_exponent: f64,
}

/// A wall along `y = y`: signals crossing it lose `loss_db`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wall {
    /// Where the wall runs.
    pub y: f64,
    /// Attenuation through it, dB.
    pub loss_db: f64,
}

/// The radio environment.
#[derive(Debug, Clone, PartialEq)]
pub struct RfModel {
    /// The sensors.
    pub sensors: Vec<RfSensor>,
    /// The walls.
    pub walls: Vec<Wall>,
    /// Shadowing noise, standard deviation, dB (3 to 6 indoors).
    pub shadowing_sigma_db: f64,
    /// One report per sensor and walker per interval (a sensor node's aggregation interval).
    pub report_interval: Duration,
    /// Chance a report is lost.
    pub loss_probability: f64,
    /// Reports weaker than this are not heard, dBm.
    pub sensitivity_dbm: f64,
    /// Write raw advertisement payloads (`adv`) instead of token ids, so replay exercises the
    /// decoder.
    pub raw_adverts: bool,
}

impl RfModel {
    /// The shop front the tests and the demo use: a front wall along y = 0 costing 8 dB, 4 dB of
    /// shadowing, one report per 500 ms of which 20% are lost, -95 dBm sensitivity, raw
    /// advertisements; each sensor hears -59 dBm at 1 m with a path-loss exponent of 2.2.
    pub fn shop_front(sensors: &[(&str, Point)]) -> RfModel {
        RfModel {
            sensors: sensors
                .iter()
                .map(|(name, at)| RfSensor {
                    name: (*name).into(),
                    at: *at,
                    rssi_at_1m: -59.0,
                    path_loss_exponent: 2.2,
                })
                .collect(),
            walls: vec![Wall {
                y: 0.0,
                loss_db: 8.0,
            }],
            shadowing_sigma_db: 4.0,
            report_interval: Duration::from_millis(500),
            loss_probability: 0.2,
            sensitivity_dbm: -95.0,
            raw_adverts: true,
        }
    }
}

/// What a walker's phone advertises.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// Always this id (a replay of an old id, for instance).
    Fixed(u64),
    /// The rotating id of `key`, for the interval of `unix_start_secs + t`.
    Rotating {
        /// The member's proximity key.
        key: ProximityKey,
        /// Unix time of the trace's `t = 0`.
        unix_start_secs: u64,
        /// Interval length, seconds.
        interval_secs: u64,
    },
}

impl TokenSource {
    /// The rotating ids of `key`, the trace's `t = 0` being `unix_start_secs`.
    pub fn rotating(key: ProximityKey, unix_start_secs: u64, interval_secs: u64) -> Self {
        Self::Rotating {
            key,
            unix_start_secs,
            interval_secs,
        }
    }
}

/// A point on a walker's path and how long it stays there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waypoint {
    /// Where.
    pub at: Point,
    /// How long the walker stands there.
    pub pause: Duration,
}

impl Waypoint {
    /// A waypoint walked through without stopping.
    pub const fn pass(x: f64, y: f64) -> Self {
        Self {
            at: Point::new(x, y),
            pause: Duration::ZERO,
        }
    }

    /// A waypoint where the walker stands for `pause`.
    pub const fn stay(x: f64, y: f64, pause: Duration) -> Self {
        Self {
            at: Point::new(x, y),
            pause,
        }
    }
}

/// A phone carried along a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Walker {
    /// What the phone advertises.
    pub token: TokenSource,
    /// When the walker appears at the first waypoint.
    pub start: Duration,
    /// Walking speed, m/s (about 1.3 for a shopper).
    pub speed_mps: f64,
    /// The path; the walker is gone after the last waypoint's pause.
    pub path: Vec<Waypoint>,
    /// Declared tx power at 1 m (in the advertisement).
    pub tx_power: i8,
}

impl Walker {
    /// A shopper's pace.
    pub const SHOPPER_MPS: f64 = 1.3;
    /// A typical phone's declared power at 1 m.
    pub const PHONE_TX_DBM: i8 = -59;

    /// A shopper with a typical phone, appearing `start` into the trace.
    pub fn shopper(token: TokenSource, start: Duration, path: Vec<Waypoint>) -> Self {
        Self {
            token,
            start,
            speed_mps: Self::SHOPPER_MPS,
            path,
            tx_power: Self::PHONE_TX_DBM,
        }
    }

    /// Where the walker is at `t`, or `None` when not there.
    pub fn position(&self, t: Duration) -> Option<Point> {
        let mut clock = self.start;
        if t < clock {
            return None;
        }
        let speed = self.speed_mps.max(0.01);
        let mut previous: Option<Point> = None;
        for wp in &self.path {
            if let Some(from) = previous {
                let leg = Duration::from_secs_f64(from.distance(wp.at) / speed);
                if t < clock + leg {
                    let f = (t - clock).as_secs_f64() / leg.as_secs_f64().max(1e-9);
                    return Some(Point::new(
                        from.x + (wp.at.x - from.x) * f,
                        from.y + (wp.at.y - from.y) * f,
                    ));
                }
                clock += leg;
            }
            if t < clock + wp.pause {
                return Some(wp.at);
            }
            clock += wp.pause;
            previous = Some(wp.at);
        }
        None
    }

    /// When the walker leaves the plan.
    pub fn end(&self) -> Duration {
        let speed = self.speed_mps.max(0.01);
        let mut clock = self.start;
        let mut previous: Option<Point> = None;
        for wp in &self.path {
            if let Some(from) = previous {
                clock += Duration::from_secs_f64(from.distance(wp.at) / speed);
            }
            clock += wp.pause;
            previous = Some(wp.at);
        }
        clock
    }

    fn token_at(&self, t: Duration) -> u64 {
        match &self.token {
            TokenSource::Fixed(id) => *id,
            TokenSource::Rotating {
                key,
                unix_start_secs,
                interval_secs,
            } => rotating_id(
                key,
                interval_number(unix_start_secs + t.as_secs(), *interval_secs),
            ),
        }
    }
}

impl RfModel {
    /// The mean RSSI (no noise) from `walker_at` at sensor `s`.
    pub fn mean_rssi(&self, s: &RfSensor, walker_at: Point) -> f64 {
        let d = s.at.distance(walker_at).max(0.1);
        let walls: f64 = self
            .walls
            .iter()
            .filter(|w| (s.at.y - w.y).signum() != (walker_at.y - w.y).signum())
            .map(|w| w.loss_db)
            .sum();
        s.rssi_at_1m - 10.0 * s.path_loss_exponent * d.log10() - walls
    }

    /// Synthesises the trace of `walkers`, sorted by time (walkers and sensors in the order
    /// given within one instant).
    pub fn synthesize(&self, walkers: &[Walker], seed: u64) -> Vec<TraceRecord> {
        let mut rng = StdRng::seed_from_u64(seed);
        let end = walkers.iter().map(Walker::end).max().unwrap_or_default();
        let step = self.report_interval.max(Duration::from_millis(10));
        let mut out = Vec::new();
        let mut t = Duration::ZERO;
        while t <= end {
            for w in walkers {
                let Some(p) = w.position(t) else { continue };
                for s in &self.sensors {
                    // Draw both numbers whatever happens, so one walker's loss does not shift
                    // another's noise: traces stay comparable across small edits.
                    let lost = rng.gen::<f64>() < self.loss_probability;
                    let noise = gaussian(&mut rng) * self.shadowing_sigma_db;
                    let rssi = (self.mean_rssi(s, p) + noise).round();
                    if lost || rssi < self.sensitivity_dbm {
                        continue;
                    }
                    let rssi = rssi.clamp(-127.0, 20.0) as i8;
                    let id = w.token_at(t);
                    let token = if self.raw_adverts {
                        TraceToken::Advert(
                            loyalty_firmware::token::encode_advertisement(id, w.tx_power).to_vec(),
                        )
                    } else {
                        TraceToken::Id(id)
                    };
                    out.push(TraceRecord {
                        t_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
                        sensor: s.name.clone(),
                        rssi,
                        rssi_max: rssi,
                        count: 1,
                        token,
                        check_in: false,
                    });
                }
            }
            t += step;
        }
        out
    }
}

/// A standard normal draw (Box-Muller): rand 0.8 without rand_distr has none.
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Paths through the shop front of the tests and the demo: a front wall along `y = 0` with
/// the door at `x = 0`, a coffee corner near (8, 8).
pub mod paths {
    use super::Waypoint;
    use std::time::Duration;

    /// Street, through the door, to the coffee corner for `stay`, and out again.
    pub fn walk_in(stay: Duration) -> Vec<Waypoint> {
        vec![
            Waypoint::pass(-15.0, -2.0),
            Waypoint::pass(0.0, -2.0),
            Waypoint::pass(0.0, 3.0),
            Waypoint::stay(8.0, 7.5, stay),
            Waypoint::pass(0.0, 3.0),
            Waypoint::pass(0.0, -2.0),
            Waypoint::pass(15.0, -2.0),
        ]
    }

    /// Along the pavement (`y` < 0) or inside parallel to the front (`y` > 0), past the door.
    pub fn walk_by(y: f64) -> Vec<Waypoint> {
        vec![Waypoint::pass(-20.0, y), Waypoint::pass(20.0, y)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: u64 = 600;
    const UNIX_START: u64 = 2_900_000 * INTERVAL + 300;

    fn model() -> RfModel {
        RfModel::shop_front(&[
            ("door-out", Point::new(0.0, -1.0)),
            ("door-in", Point::new(0.0, 2.0)),
            ("coffee", Point::new(8.0, 8.0)),
        ])
    }

    fn rotating(i: u8) -> TokenSource {
        TokenSource::rotating(ProximityKey([i; 16]), UNIX_START, INTERVAL)
    }

    fn walker(token: TokenSource, start_s: u64, path: Vec<Waypoint>) -> Walker {
        Walker::shopper(token, Duration::from_secs(start_s), path)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn walk_in_path() -> Vec<Waypoint> {
        paths::walk_in(secs(60))
    }

    #[test]
    fn walker_positions() {
        let w = walker(
            TokenSource::Fixed(1),
            10,
            vec![Waypoint::stay(0.0, 0.0, secs(5)), Waypoint::pass(13.0, 0.0)],
        );
        assert_eq!(w.position(secs(9)), None);
        assert_eq!(w.position(secs(12)), Some(Point::new(0.0, 0.0)));
        let p = w.position(secs(20)).expect("walking");
        assert!((p.x - 6.5).abs() < 1e-9, "{p:?}");
        assert_eq!(w.end(), secs(25));
        assert_eq!(w.position(secs(25)), None);
    }

    #[test]
    fn same_seed_same_trace() {
        let ws = [walker(rotating(1), 0, walk_in_path())];
        assert_eq!(model().synthesize(&ws, 7), model().synthesize(&ws, 7));
        assert_ne!(model().synthesize(&ws, 7), model().synthesize(&ws, 8));
    }
}
