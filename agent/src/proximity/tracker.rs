//! Zone tracking: resolved sightings in, [`ZoneEvent`]s out. Pure: the caller passes every
//! time in (a monotonic [`Duration`] since any fixed epoch) and calls [`Tracker::tick`]; nothing
//! here reads a clock, spawns, or allocates per sighting once a member is known.
//!
//! # Model
//! - Each sensor belongs to one zone, with a role: [`SensorRole::Zone`] (near it = in the zone),
//!   [`SensorRole::Inside`] and [`SensorRole::Outside`] (the two sides of a door; a zone with an
//!   inside sensor is a *door zone*).
//! - Per (member, sensor), the last [`Smoothing::window`] RSSI samples no older than
//!   [`Smoothing::max_age`] are smoothed (below), then turned into a distance with the sensor's
//!   calibration: `d = 10^((rssi_at_1m - rssi) / (10 n))` ([`distance_m`]). Comparisons are
//!   made on `log10(d)`, which orders the same way and costs no `powf` per sighting.
//! - Per (member, zone), a visit starts ([`ZoneEvent::Entered`]) when the nearest presence
//!   sensor (role `Zone` or `Inside`) is closer than `enter_distance_m`, and, in a door zone
//!   whose outside sensor also hears the member, closer than the outside sensor. The visit goes
//!   on while the member is seen within `exit_distance_m` (the hysteresis: exit is farther than
//!   enter). It ends ([`ZoneEvent::Exited`], stamped with the last time the member was in) once
//!   the member has not been within `exit_distance_m` for `exit_timeout`: so a member
//!   lingering at the edge, whose RSSI crosses the thresholds with every noise spike, has one
//!   visit, one `Entered` and at most one `Exited`. The exit is time-debounced as well as
//!   distance-debounced because distance alone would still flap when noise exceeds the
//!   hysteresis band.
//! - [`ZoneEvent::Dwelled`] fires once per visit, when the member has been in for `min_dwell`.
//! - [`ZoneEvent::WalkedIn`] fires when a member enters a door zone and is not already in the
//!   store: seen inside, after the outside sensor or without it. A walk-by (heard only outside,
//!   or outside closer throughout) never enters the door zone, so gets nothing. The store visit
//!   lasts until the member has been heard by no sensor for `visit_timeout`; leaving through the
//!   door (inside first, then outside) is not a second walk-in.
//! - A check-in (the phone wrote its token to a sensor's GATT characteristic) puts the member
//!   at that sensor (distance 0) for `max_age`, whatever the RSSI.
//! - Memory: [`Tracker::tick`] closes visits past their exit timeout and forgets members with no
//!   open visit unheard for `visit_timeout`; the member map shrinks when it empties.
//!
//! # Smoothing: median after outlier rejection
//! RSSI noise indoors is not Gaussian: bodies, shelves and multipath cause fades of 10 to 20 dB
//! that last one or two samples, and samples arrive irregularly (advertisements are lost, the
//! OS throttles, sensor nodes aggregate per second). The median of a short window has a 50%
//! breakdown point, so a single deep fade or spike moves it not at all; rejecting samples more
//! than [`Smoothing::outlier_db`] from the window's median first keeps a burst of fades (up to
//! half the window) from dragging the estimate. A 1-Euro filter was the alternative: it is a
//! smoothed low-pass whose derivative term assumes regular sampling, and a single 20 dB fade
//! moves it by a fraction of 20 dB for several samples, which is exactly what makes a member at
//! the door edge flap. The median's lag is bounded by the window (count and age) and its
//! decisions can be explained from a trace by hand.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// Samples kept per (member, sensor) at most.
pub const MAX_WINDOW: usize = 16;
/// RSSI at 1 m assumed when neither the sensor's calibration nor the advertisement gives one
/// (a typical phone: about -59 dBm).
pub const DEFAULT_RSSI_AT_1M: f32 = -59.0;

/// A sensor's place in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorRole {
    /// Near this sensor is in the zone.
    Zone,
    /// The inside of a door: near it is in the door zone (in the store).
    Inside,
    /// The street side of a door: near it is not in the store.
    Outside,
}

/// One sensor, validated ([`TrackerConfig::build`] checks it).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorConfig {
    /// The sensor's name (as in [`super::Sighting::sensor`]).
    pub name: String,
    /// The zone it belongs to.
    pub zone: String,
    /// Its role in the zone.
    pub role: SensorRole,
    /// RSSI at 1 m from this sensor, dBm, measured on site. `None`: use the phone's declared
    /// tx power at 1 m from its advertisement, else [`DEFAULT_RSSI_AT_1M`].
    pub rssi_at_1m: Option<f32>,
    /// Path-loss exponent `n`: 2 in free space, 2.5 to 4 indoors.
    pub path_loss_exponent: f32,
}

/// One zone, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// The zone's name (campaigns refer to it).
    pub name: String,
    /// A visit starts closer than this, metres.
    pub enter_distance_m: f32,
    /// A visit goes on while the member is within this, metres; more than `enter_distance_m`.
    pub exit_distance_m: f32,
    /// In the zone this long gives [`ZoneEvent::Dwelled`] (once per visit).
    pub min_dwell: Duration,
    /// Not within `exit_distance_m` for this long ends the visit.
    pub exit_timeout: Duration,
}

/// How RSSI samples are smoothed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    /// Samples kept per (member, sensor), 1 to [`MAX_WINDOW`].
    pub window: usize,
    /// Fresh samples needed before a sensor's estimate counts (a check-in needs none).
    pub min_samples: usize,
    /// Samples older than this are ignored.
    pub max_age: Duration,
    /// Samples farther than this from the window's median are outliers, dB.
    pub outlier_db: f32,
}

impl Default for Smoothing {
    fn default() -> Self {
        Self {
            window: 7,
            min_samples: 2,
            // A walker at 1.3 m/s spends about 3 s near a door sensor: older samples made the
            // median lag and 7% of straight walk-ins were noticed only on the way out.
            max_age: Duration::from_secs(3),
            outlier_db: 10.0,
        }
    }
}

/// Everything the tracker needs, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// The sensors.
    pub sensors: Vec<SensorConfig>,
    /// The zones.
    pub zones: Vec<ZoneConfig>,
    /// RSSI smoothing.
    pub smoothing: Smoothing,
    /// A member heard by no sensor for this long has left the store (and is forgotten); at
    /// least every zone's `exit_timeout`.
    pub visit_timeout: Duration,
}

/// What is wrong with a [`TrackerConfig`]: every problem, each naming its sensor or zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proximity tracking configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

/// A sensor's index, from [`Tracker::sensor_id`]: sightings carry it so that the hot path never
/// hashes a sensor name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorId(pub u16);

/// One resolved sighting.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<M> {
    /// The member (already resolved from the rotating id).
    pub member: M,
    /// The sensor that heard it.
    pub sensor: SensorId,
    /// RSSI, dBm (a sensor node's per-interval median).
    pub rssi: i8,
    /// The phone's declared tx power at 1 m, when the advertisement carries one.
    pub tx_power: Option<i8>,
    /// A check-in write: the member is at this sensor.
    pub check_in: bool,
    /// Monotonic time since the caller's epoch.
    pub at: Duration,
}

/// What the tracker decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneEvent<M> {
    /// A visit to `zone` started.
    Entered {
        /// Who.
        member: M,
        /// Where.
        zone: Arc<str>,
        /// When the member was first judged in.
        at: Duration,
    },
    /// The visit reached the zone's `min_dwell` (once per visit).
    Dwelled {
        /// Who.
        member: M,
        /// Where.
        zone: Arc<str>,
        /// When the decision was made.
        at: Duration,
        /// Time in the zone so far (at least `min_dwell`).
        dwell: Duration,
    },
    /// The visit ended.
    Exited {
        /// Who.
        member: M,
        /// Where.
        zone: Arc<str>,
        /// The last time the member was in (the decision comes `exit_timeout` later).
        at: Duration,
        /// From `Entered` to `at`.
        dwell: Duration,
    },
    /// The member came into the store through a door zone (once per store visit).
    WalkedIn {
        /// Who.
        member: M,
        /// The door zone.
        zone: Arc<str>,
        /// When.
        at: Duration,
    },
}

impl<M> ZoneEvent<M> {
    /// The member the event is about.
    pub fn member(&self) -> &M {
        match self {
            Self::Entered { member, .. }
            | Self::Dwelled { member, .. }
            | Self::Exited { member, .. }
            | Self::WalkedIn { member, .. } => member,
        }
    }

    /// The zone the event is about.
    pub fn zone(&self) -> &str {
        match self {
            Self::Entered { zone, .. }
            | Self::Dwelled { zone, .. }
            | Self::Exited { zone, .. }
            | Self::WalkedIn { zone, .. } => zone,
        }
    }

    /// The event's name in logs and test tables: `entered`, `dwelled`, `exited`, `walked-in`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Entered { .. } => "entered",
            Self::Dwelled { .. } => "dwelled",
            Self::Exited { .. } => "exited",
            Self::WalkedIn { .. } => "walked-in",
        }
    }
}

/// The distance, metres, for `rssi` from a sensor calibrated to `rssi_at_1m` with path-loss
/// exponent `n`: `10^((rssi_at_1m - rssi) / (10 n))`.
pub fn distance_m(rssi_at_1m: f32, rssi: f32, n: f32) -> f32 {
    10f32.powf((rssi_at_1m - rssi) / (10.0 * n))
}

#[derive(Debug, Clone)]
struct Sensor {
    zone: u16,
    role: SensorRole,
    rssi_at_1m: Option<f32>,
    /// `10 n`, precomputed.
    ten_n: f32,
}

#[derive(Debug, Clone)]
struct Zone {
    name: Arc<str>,
    log_enter: f32,
    log_exit: f32,
    min_dwell: Duration,
    exit_timeout: Duration,
    door: bool,
}

/// The validated, ready tracker.
#[derive(Debug)]
pub struct Tracker<M> {
    sensors: Vec<Sensor>,
    sensor_names: HashMap<String, SensorId>,
    zones: Vec<Zone>,
    smoothing: Smoothing,
    visit_timeout: Duration,
    members: HashMap<M, MemberTrack, FastHash>,
    unknown_sensor: u64,
}

/// FxHash (rustc's hasher: multiply and rotate). Member ids come from our own member table, not
/// from the air, so SipHash's protection against chosen keys buys nothing here and costs a
/// fifth of the per-sighting time.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

/// The hasher [`FastHash`] builds.
#[derive(Debug, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[derive(Debug, Clone)]
struct SensorTrack {
    sensor: u16,
    len: u8,
    next: u8,
    rssi: [i8; MAX_WINDOW],
    /// Milliseconds since the caller's epoch: half the size of `Duration`, so a track is two
    /// cache lines rather than five.
    at_ms: [u64; MAX_WINDOW],
    tx_power: Option<i8>,
    check_in: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Visit {
    entered_at: Duration,
    last_in: Duration,
    dwelled: bool,
}

#[derive(Debug, Clone)]
struct ZoneTrack {
    zone: u16,
    visit: Option<Visit>,
}

#[derive(Debug, Clone, Default)]
struct MemberTrack {
    sensors: Vec<SensorTrack>,
    zones: Vec<ZoneTrack>,
    last_seen: Duration,
    in_store: bool,
}

impl TrackerConfig {
    /// Validates the configuration into a [`Tracker`], reporting every problem at once.
    pub fn build<M: Clone + Eq + Hash>(&self) -> Result<Tracker<M>, ConfigError> {
        let mut problems = Vec::new();
        let s = &self.smoothing;
        if !(1..=MAX_WINDOW).contains(&s.window) {
            problems.push(format!(
                "smoothing window is {}, must be 1 to {MAX_WINDOW}",
                s.window
            ));
        }
        if s.min_samples == 0 || s.min_samples > s.window {
            problems.push(format!(
                "smoothing min_samples is {}, must be 1 to the window ({})",
                s.min_samples, s.window
            ));
        }
        if s.max_age.is_zero() {
            problems.push("smoothing max_age must be more than 0".into());
        }
        // NaN fails every comparison: test for it by name.
        if s.outlier_db.is_nan() || s.outlier_db <= 0.0 {
            problems.push(format!(
                "smoothing outlier_db is {}, must be more than 0",
                s.outlier_db
            ));
        }

        let mut zones = Vec::new();
        let mut zone_index: HashMap<&str, u16> = HashMap::new();
        for z in &self.zones {
            let here = format!("zone `{}`", z.name);
            if z.name.is_empty() {
                problems.push("a zone has an empty name".into());
            }
            if zone_index.contains_key(z.name.as_str()) {
                problems.push(format!("{here} is defined twice"));
                continue;
            }
            if !(z.enter_distance_m > 0.0 && z.enter_distance_m.is_finite()) {
                problems.push(format!(
                    "{here}: enter_distance_m is {}, must be more than 0",
                    z.enter_distance_m
                ));
            }
            if !(z.exit_distance_m > z.enter_distance_m && z.exit_distance_m.is_finite()) {
                problems.push(format!(
                    "{here}: exit_distance_m ({}) must be more than enter_distance_m ({}), or \
                     a member at the edge flaps",
                    z.exit_distance_m, z.enter_distance_m
                ));
            }
            if z.exit_timeout.is_zero() {
                problems.push(format!("{here}: exit_timeout must be more than 0"));
            }
            if z.exit_timeout > self.visit_timeout {
                problems.push(format!(
                    "{here}: exit_timeout ({:?}) is longer than visit_timeout ({:?})",
                    z.exit_timeout, self.visit_timeout
                ));
            }
            let Ok(index) = u16::try_from(zones.len()) else {
                problems.push("more than 65535 zones".into());
                break;
            };
            zone_index.insert(&z.name, index);
            zones.push(Zone {
                name: Arc::from(z.name.as_str()),
                log_enter: z.enter_distance_m.log10(),
                log_exit: z.exit_distance_m.log10(),
                min_dwell: z.min_dwell,
                exit_timeout: z.exit_timeout,
                door: false,
            });
        }

        let mut sensors = Vec::new();
        let mut sensor_names = HashMap::new();
        let mut outside_zones = Vec::new();
        for sc in &self.sensors {
            let here = format!("sensor `{}`", sc.name);
            if sensor_names.contains_key(&sc.name) {
                problems.push(format!("{here} is defined twice"));
                continue;
            }
            let Some(&zone) = zone_index.get(sc.zone.as_str()) else {
                problems.push(format!("{here}: zone `{}` is not defined", sc.zone));
                continue;
            };
            if !(sc.path_loss_exponent > 0.5 && sc.path_loss_exponent <= 10.0) {
                problems.push(format!(
                    "{here}: path_loss_exponent is {}, expected 0.5 to 10 (2 in free space)",
                    sc.path_loss_exponent
                ));
            }
            if let Some(a) = sc.rssi_at_1m {
                if !(-127.0..=20.0).contains(&a) {
                    problems.push(format!(
                        "{here}: rssi_at_1m is {a} dBm, expected -127 to 20"
                    ));
                }
            }
            match sc.role {
                SensorRole::Inside => {
                    if let Some(z) = zones.get_mut(usize::from(zone)) {
                        z.door = true;
                    }
                }
                SensorRole::Outside => outside_zones.push((zone, sc.name.clone())),
                SensorRole::Zone => {}
            }
            let Ok(id) = u16::try_from(sensors.len()) else {
                problems.push("more than 65535 sensors".into());
                break;
            };
            sensor_names.insert(sc.name.clone(), SensorId(id));
            sensors.push(Sensor {
                zone,
                role: sc.role,
                rssi_at_1m: sc.rssi_at_1m,
                ten_n: 10.0 * sc.path_loss_exponent,
            });
        }
        for (zone, name) in outside_zones {
            let door = zones.get(usize::from(zone)).is_some_and(|z| z.door);
            if !door {
                problems.push(format!(
                    "sensor `{name}` is an outside sensor in a zone with no inside sensor: it \
                     could never tell a walk-in"
                ));
            }
        }

        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Tracker {
            sensors,
            sensor_names,
            zones,
            smoothing: self.smoothing,
            visit_timeout: self.visit_timeout,
            members: HashMap::default(),
            unknown_sensor: 0,
        })
    }
}

impl SensorTrack {
    fn new(sensor: u16) -> Self {
        Self {
            sensor,
            len: 0,
            next: 0,
            rssi: [0; MAX_WINDOW],
            at_ms: [0; MAX_WINDOW],
            tx_power: None,
            check_in: None,
        }
    }

    fn push(&mut self, rssi: i8, at: Duration, window: usize) {
        let window = window.clamp(1, MAX_WINDOW);
        let i = usize::from(self.next) % window;
        self.rssi[i] = rssi;
        self.at_ms[i] = millis(at);
        self.next = ((i + 1) % window) as u8;
        self.len = (usize::from(self.len) + 1).min(window) as u8;
    }

    /// The smoothed RSSI at `now`: median of the fresh samples after rejecting outliers.
    fn smoothed(&self, now: Duration, s: &Smoothing) -> Option<f32> {
        let mut fresh = [0i8; MAX_WINDOW];
        let mut n = 0;
        let oldest = millis(now).saturating_sub(millis(s.max_age));
        for i in 0..usize::from(self.len) {
            if self.at_ms[i] >= oldest {
                fresh[n] = self.rssi[i];
                n += 1;
            }
        }
        if n < s.min_samples.max(1) {
            return None;
        }
        let fresh = &mut fresh[..n];
        fresh.sort_unstable();
        let m = median(fresh);
        // `fresh` is sorted, so the inliers are one contiguous run of it.
        let lo = fresh.partition_point(|&x| m - f32::from(x) > s.outlier_db);
        let hi = fresh.partition_point(|&x| f32::from(x) - m <= s.outlier_db);
        Some(median(&fresh[lo..hi.max(lo + 1)]))
    }

    /// `log10` of the distance at `now`, or `None` when the sensor has nothing fresh. A fresh
    /// check-in is distance 0 (`-inf`).
    fn log_distance(&self, now: Duration, sensor: &Sensor, s: &Smoothing) -> Option<f32> {
        if let Some(c) = self.check_in {
            if now.saturating_sub(c) <= s.max_age {
                return Some(f32::NEG_INFINITY);
            }
        }
        let rssi = self.smoothed(now, s)?;
        let a = sensor
            .rssi_at_1m
            .or(self.tx_power.map(f32::from))
            .unwrap_or(DEFAULT_RSSI_AT_1M);
        Some((a - rssi) / sensor.ten_n)
    }
}

/// Whole milliseconds of `d` (saturating: 584 million years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Median of a sorted, non-empty slice (the mean of the middle two for an even length).
fn median(sorted: &[i8]) -> f32 {
    let n = sorted.len();
    match (sorted.get(n / 2), n % 2) {
        (Some(&hi), 0) => {
            let lo = sorted.get(n / 2 - 1).copied().unwrap_or(hi);
            (f32::from(lo) + f32::from(hi)) / 2.0
        }
        (Some(&mid), _) => f32::from(mid),
        (None, _) => f32::NAN,
    }
}

impl<M: Clone + Eq + Hash> Tracker<M> {
    /// The id of a configured sensor.
    pub fn sensor_id(&self, name: &str) -> Option<SensorId> {
        self.sensor_names.get(name).copied()
    }

    /// A zone's name by index (as events carry it).
    pub fn zone_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.zones.iter().map(|z| &z.name)
    }

    /// Members currently tracked (in a zone, or heard within `visit_timeout`).
    pub fn tracked_members(&self) -> usize {
        self.members.len()
    }

    /// The member map's capacity (to check that forgetting frees memory).
    pub fn capacity(&self) -> usize {
        self.members.capacity()
    }

    /// Open visits, all zones.
    pub fn open_visits(&self) -> usize {
        self.members
            .values()
            .flat_map(|m| &m.zones)
            .filter(|z| z.visit.is_some())
            .count()
    }

    /// Whether `member` has an open visit to `zone`.
    pub fn is_in(&self, member: &M, zone: &str) -> bool {
        self.members.get(member).is_some_and(|m| {
            m.zones.iter().any(|z| {
                z.visit.is_some()
                    && self
                        .zones
                        .get(usize::from(z.zone))
                        .is_some_and(|c| &*c.name == zone)
            })
        })
    }

    /// Sightings ignored because their sensor id is not configured.
    pub fn unknown_sensor_sightings(&self) -> u64 {
        self.unknown_sensor
    }

    /// Feeds one sighting; decisions are appended to `out`.
    pub fn observe(&mut self, obs: Observation<M>, out: &mut Vec<ZoneEvent<M>>) {
        let Some(sensor) = self.sensors.get(usize::from(obs.sensor.0)) else {
            self.unknown_sensor += 1;
            return;
        };
        let zone_ix = sensor.zone;
        let window = self.smoothing.window;
        // `get_mut` first: `entry` would clone (and drop) the key on every sighting.
        if !self.members.contains_key(&obs.member) {
            self.members
                .insert(obs.member.clone(), MemberTrack::default());
        }
        let Some(track) = self.members.get_mut(&obs.member) else {
            return;
        };
        track.last_seen = track.last_seen.max(obs.at);
        let st = match track.sensors.iter().position(|t| t.sensor == obs.sensor.0) {
            Some(i) => &mut track.sensors[i],
            None => {
                track.sensors.push(SensorTrack::new(obs.sensor.0));
                let last = track.sensors.len() - 1;
                &mut track.sensors[last]
            }
        };
        if obs.check_in {
            st.check_in = Some(obs.at);
        } else {
            st.push(obs.rssi, obs.at, window);
            if obs.tx_power.is_some() {
                st.tx_power = obs.tx_power;
            }
        }
        if !track.zones.iter().any(|z| z.zone == zone_ix) {
            track.zones.push(ZoneTrack {
                zone: zone_ix,
                visit: None,
            });
        }
        let member = &obs.member;
        let at = obs.at;
        // Re-evaluate every zone this member has: a sighting in one zone can end (by timeout)
        // a visit to another, and zones per member are few.
        for zi in 0..track.zones.len() {
            let zone = track.zones[zi].zone;
            if zone != zone_ix && track.zones[zi].visit.is_none() {
                continue;
            }
            let (presence, outside) =
                nearest(&self.sensors, &track.sensors, zone, at, &self.smoothing);
            let Some(z) = self.zones.get(usize::from(zone)) else {
                continue;
            };
            let zt = &mut track.zones[zi];
            match &mut zt.visit {
                None => {
                    if zone != zone_ix {
                        continue;
                    }
                    let Some(p) = presence else { continue };
                    let closer_than_outside = outside.is_none_or(|o| p < o);
                    if p < z.log_enter && closer_than_outside {
                        zt.visit = Some(Visit {
                            entered_at: at,
                            last_in: at,
                            dwelled: false,
                        });
                        out.push(ZoneEvent::Entered {
                            member: member.clone(),
                            zone: z.name.clone(),
                            at,
                        });
                        if z.door && !track.in_store {
                            track.in_store = true;
                            out.push(ZoneEvent::WalkedIn {
                                member: member.clone(),
                                zone: z.name.clone(),
                                at,
                            });
                        }
                        if z.min_dwell.is_zero() {
                            if let Some(v) = &mut track.zones[zi].visit {
                                v.dwelled = true;
                            }
                            out.push(ZoneEvent::Dwelled {
                                member: member.clone(),
                                zone: z.name.clone(),
                                at,
                                dwell: Duration::ZERO,
                            });
                        }
                    }
                }
                Some(v) => {
                    if presence.is_some_and(|p| p <= z.log_exit) {
                        v.last_in = v.last_in.max(at);
                    }
                    if at.saturating_sub(v.last_in) >= z.exit_timeout {
                        let v = *v;
                        zt.visit = None;
                        out.push(ZoneEvent::Exited {
                            member: member.clone(),
                            zone: z.name.clone(),
                            at: v.last_in,
                            dwell: v.last_in.saturating_sub(v.entered_at),
                        });
                    } else {
                        let dwell = v.last_in.saturating_sub(v.entered_at);
                        if !v.dwelled && dwell >= z.min_dwell {
                            v.dwelled = true;
                            out.push(ZoneEvent::Dwelled {
                                member: member.clone(),
                                zone: z.name.clone(),
                                at,
                                dwell,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Closes visits past their exit timeout and forgets members unheard for `visit_timeout`
    /// with no open visit. Call it every second or so with the current monotonic time.
    pub fn tick(&mut self, now: Duration, out: &mut Vec<ZoneEvent<M>>) {
        let zones = &self.zones;
        let visit_timeout = self.visit_timeout;
        self.members.retain(|member, track| {
            for zt in &mut track.zones {
                let (Some(v), Some(z)) = (zt.visit, zones.get(usize::from(zt.zone))) else {
                    continue;
                };
                if now.saturating_sub(v.last_in) >= z.exit_timeout {
                    zt.visit = None;
                    out.push(ZoneEvent::Exited {
                        member: member.clone(),
                        zone: z.name.clone(),
                        at: v.last_in,
                        dwell: v.last_in.saturating_sub(v.entered_at),
                    });
                }
            }
            let open = track.zones.iter().any(|z| z.visit.is_some());
            open || now.saturating_sub(track.last_seen) < visit_timeout
        });
        // `retain` keeps the capacity: give memory back after a crowd has gone.
        if self.members.capacity() > 64 && self.members.len() < self.members.capacity() / 4 {
            self.members.shrink_to_fit();
        }
    }
}

/// The nearest presence sensor (role `Zone` or `Inside`) and the nearest outside sensor of
/// `zone`, as `log10(distance)`, from the member's fresh samples.
fn nearest(
    sensors: &[Sensor],
    tracks: &[SensorTrack],
    zone: u16,
    now: Duration,
    s: &Smoothing,
) -> (Option<f32>, Option<f32>) {
    let mut presence: Option<f32> = None;
    let mut outside: Option<f32> = None;
    for t in tracks {
        let Some(sensor) = sensors.get(usize::from(t.sensor)) else {
            continue;
        };
        if sensor.zone != zone {
            continue;
        }
        let Some(d) = t.log_distance(now, sensor, s) else {
            continue;
        };
        let slot = match sensor.role {
            SensorRole::Outside => &mut outside,
            SensorRole::Zone | SensorRole::Inside => &mut presence,
        };
        *slot = Some(slot.map_or(d, |x| x.min(d)));
    }
    (presence, outside)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn config() -> TrackerConfig {
        TrackerConfig {
            sensors: vec![
                SensorConfig {
                    name: "door-in".into(),
                    zone: "door".into(),
                    role: SensorRole::Inside,
                    rssi_at_1m: Some(-59.0),
                    path_loss_exponent: 2.0,
                },
                SensorConfig {
                    name: "door-out".into(),
                    zone: "door".into(),
                    role: SensorRole::Outside,
                    rssi_at_1m: Some(-59.0),
                    path_loss_exponent: 2.0,
                },
                SensorConfig {
                    name: "coffee".into(),
                    zone: "coffee".into(),
                    role: SensorRole::Zone,
                    rssi_at_1m: None,
                    path_loss_exponent: 2.0,
                },
            ],
            zones: vec![
                ZoneConfig {
                    name: "door".into(),
                    enter_distance_m: 2.0,
                    exit_distance_m: 4.0,
                    min_dwell: Duration::from_secs(10),
                    exit_timeout: Duration::from_secs(15),
                },
                ZoneConfig {
                    name: "coffee".into(),
                    enter_distance_m: 2.0,
                    exit_distance_m: 4.0,
                    min_dwell: Duration::from_secs(30),
                    exit_timeout: Duration::from_secs(20),
                },
            ],
            smoothing: Smoothing::default(),
            visit_timeout: Duration::from_secs(120),
        }
    }

    /// RSSI for a distance under the test sensors' calibration (-59 dBm at 1 m, n = 2).
    fn rssi(d: f32) -> i8 {
        (-59.0 - 20.0 * d.log10()).round() as i8
    }

    struct Run {
        t: Tracker<&'static str>,
        out: Vec<ZoneEvent<&'static str>>,
    }

    impl Run {
        fn new() -> Self {
            Self {
                t: config().build().expect("valid"),
                out: Vec::new(),
            }
        }

        fn see(&mut self, member: &'static str, sensor: &str, d: f32, at: Duration) {
            let sensor = self.t.sensor_id(sensor).expect("sensor");
            self.t.observe(
                Observation {
                    member,
                    sensor,
                    rssi: rssi(d),
                    tx_power: None,
                    check_in: false,
                    at,
                },
                &mut self.out,
            );
        }

        fn kinds(&self) -> Vec<String> {
            self.out
                .iter()
                .map(|e| match e {
                    ZoneEvent::Entered { member, zone, .. } => format!("{member} entered {zone}"),
                    ZoneEvent::Dwelled { member, zone, .. } => format!("{member} dwelled {zone}"),
                    ZoneEvent::Exited { member, zone, .. } => format!("{member} exited {zone}"),
                    ZoneEvent::WalkedIn { member, .. } => format!("{member} walked in"),
                })
                .collect()
        }
    }

    #[test]
    fn distance_formula() {
        assert!((distance_m(-59.0, -59.0, 2.0) - 1.0).abs() < 1e-6);
        assert!((distance_m(-59.0, -79.0, 2.0) - 10.0).abs() < 1e-4);
        assert!((distance_m(-59.0, -89.0, 3.0) - 10.0).abs() < 1e-4);
    }

    #[test]
    fn median_rejects_outliers() {
        let s = Smoothing {
            max_age: Duration::from_secs(5),
            ..Smoothing::default()
        };
        let mut t = SensorTrack::new(0);
        for (i, r) in [-60, -61, -95, -59, -60, -96, -62].into_iter().enumerate() {
            t.push(r, S / 2 * i as u32, s.window);
        }
        // Two deep fades: the estimate stays at the cluster.
        assert_eq!(t.smoothed(S * 3, &s), Some(-60.0));
        // Samples at 0 and 0.5 s age out: -59, -60, -62 are the inliers left.
        assert_eq!(t.smoothed(S * 6, &s), Some(-60.0));
        // Four inliers: the mean of the middle two.
        t.push(-61, S * 6, s.window);
        assert_eq!(t.smoothed(S * 6, &s), Some(-60.5));
        // Older than max_age: nothing fresh.
        assert_eq!(t.smoothed(S * 60, &s), None);
    }

    #[test]
    fn window_keeps_the_last_samples() {
        let s = Smoothing {
            window: 3,
            min_samples: 1,
            ..Smoothing::default()
        };
        let mut t = SensorTrack::new(0);
        for (i, r) in [-90, -90, -90, -50, -50, -50].into_iter().enumerate() {
            t.push(r, S * i as u32, s.window);
        }
        assert_eq!(t.smoothed(S * 5, &s), Some(-50.0));
    }

    #[test]
    fn walk_in_then_stay_then_leave() {
        let mut r = Run::new();
        // Outside first, strong.
        for i in 0..3 {
            r.see("ann", "door-out", 1.0, S * i);
            r.see("ann", "door-in", 5.0, S * i);
        }
        assert!(r.out.is_empty(), "{:?}", r.kinds());
        // Through the door: close to the inside sensor, the outside one falls behind.
        for i in 3..8 {
            r.see("ann", "door-out", 4.0, S * i);
            r.see("ann", "door-in", 1.0, S * i);
        }
        assert_eq!(r.kinds(), ["ann entered door", "ann walked in"]);
        // Into the store and out of range of the door.
        r.t.tick(S * 30, &mut r.out);
        assert_eq!(
            r.kinds(),
            ["ann entered door", "ann walked in", "ann exited door"]
        );
        // Leaving: inside first, then outside: not a second walk-in.
        for i in 60..66 {
            r.see("ann", "door-in", 1.0, S * i);
        }
        assert_eq!(r.kinds().iter().filter(|k| k.contains("walked")).count(), 1);
    }

    #[test]
    fn walk_by_gives_nothing() {
        let mut r = Run::new();
        for i in 0..20 {
            // Outside always nearer; the inside sensor hears the passer-by through the glass.
            r.see(
                "bob",
                "door-out",
                1.0 + (i as f32 - 10.0).abs() * 0.5,
                S * i,
            );
            r.see("bob", "door-in", 2.5 + (i as f32 - 10.0).abs() * 0.5, S * i);
        }
        r.t.tick(S * 300, &mut r.out);
        assert!(r.out.is_empty(), "{:?}", r.kinds());
        assert_eq!(r.t.tracked_members(), 0);
    }

    #[test]
    fn inside_without_outside_is_a_walk_in() {
        let mut r = Run::new();
        for i in 0..3 {
            r.see("cat", "door-in", 1.0, S * i);
        }
        assert_eq!(r.kinds(), ["cat entered door", "cat walked in"]);
    }

    #[test]
    fn check_in_counts_as_at_the_sensor() {
        let mut r = Run::new();
        let sensor = r.t.sensor_id("door-in").expect("sensor");
        r.t.observe(
            Observation {
                member: "dan",
                sensor,
                rssi: -90,
                tx_power: None,
                check_in: true,
                at: S,
            },
            &mut r.out,
        );
        assert_eq!(r.kinds(), ["dan entered door", "dan walked in"]);
    }

    #[test]
    fn dwell_once_per_visit_and_exit_carries_dwell() {
        let mut r = Run::new();
        for i in 0..45 {
            r.see("eve", "coffee", 1.0, S * i);
        }
        assert_eq!(r.kinds(), ["eve entered coffee", "eve dwelled coffee"]);
        r.t.tick(S * 100, &mut r.out);
        match r.out.last() {
            Some(ZoneEvent::Exited { at, dwell, .. }) => {
                assert_eq!(*at, S * 44);
                // Entered at the second sample (min_samples = 2).
                assert_eq!(*dwell, S * 43);
            }
            other => panic!("{other:?}"),
        }
        // No walk-in for a plain zone.
        assert!(!r.kinds().iter().any(|k| k.contains("walked")));
    }

    #[test]
    fn edge_lingering_in_the_hysteresis_band_does_not_flap() {
        let mut r = Run::new();
        // Enter once, then hover between enter (2 m) and exit (4 m) with spikes both ways.
        for i in 0..3 {
            r.see("fay", "coffee", 1.5, S * i);
        }
        for i in 3..200u32 {
            let d = match i % 7 {
                0 => 8.0, // a fade
                3 => 1.0,
                _ => 3.0,
            };
            r.see("fay", "coffee", d, S * i);
            if i % 5 == 0 {
                r.t.tick(S * i, &mut r.out);
            }
        }
        assert_eq!(r.kinds(), ["fay entered coffee", "fay dwelled coffee"]);
    }

    #[test]
    fn two_members_are_independent() {
        let mut r = Run::new();
        for i in 0..5 {
            r.see("gus", "coffee", 1.0, S * i);
            r.see("hal", "coffee", 9.0, S * i);
        }
        assert_eq!(r.kinds(), ["gus entered coffee"]);
        assert!(r.t.is_in(&"gus", "coffee"));
        assert!(!r.t.is_in(&"hal", "coffee"));
    }

    #[test]
    fn forgotten_members_leave_the_maps() {
        let mut r = Run::new();
        let names: Vec<&'static str> = (0..1000)
            .map(|i| &*Box::leak(format!("m{i}").into_boxed_str()))
            .collect();
        for (i, m) in names.iter().enumerate() {
            r.see(m, "coffee", 1.0, Duration::from_millis(i as u64));
            r.see(m, "coffee", 1.0, Duration::from_millis(i as u64 + 500));
        }
        assert_eq!(r.t.tracked_members(), 1000);
        let big = r.t.capacity();
        r.t.tick(S * 60, &mut r.out);
        // Visits closed, but still within the store visit timeout.
        assert_eq!(r.t.open_visits(), 0);
        assert_eq!(r.t.tracked_members(), 1000);
        r.t.tick(S * 200, &mut r.out);
        assert_eq!(r.t.tracked_members(), 0);
        assert!(r.t.capacity() < big, "{} !< {big}", r.t.capacity());
        let exits = r.kinds().iter().filter(|k| k.contains("exited")).count();
        assert_eq!(exits, 1000);
    }

    #[test]
    fn unknown_sensor_is_counted_not_tracked() {
        let mut r = Run::new();
        r.t.observe(
            Observation {
                member: "ivy",
                sensor: SensorId(99),
                rssi: -40,
                tx_power: None,
                check_in: false,
                at: S,
            },
            &mut r.out,
        );
        assert_eq!(r.t.unknown_sensor_sightings(), 1);
        assert_eq!(r.t.tracked_members(), 0);
    }

    proptest::proptest! {
        /// Whatever the sightings (noise, gaps, check-ins, two members, time steps of any size),
        /// per (member, zone) events alternate Entered -> (Dwelled) -> Exited, Dwelled at most
        /// once per visit, WalkedIn only right after a door Entered and at most once until the
        /// member is forgotten, and a long silence closes everything and empties the map.
        #[test]
        fn visits_are_well_formed(
            steps in proptest::collection::vec(
                (0u8..2, 0usize..3, -100i8..-35, proptest::bool::weighted(0.05), 0u64..4000),
                1..400)
        ) {
            let mut r = Run::new();
            let names = ["door-in", "door-out", "coffee"];
            let members = ["p", "q"];
            let mut at = Duration::ZERO;
            for (m, sensor, rssi, check_in, dt) in steps {
                at += Duration::from_millis(dt);
                let sensor = r.t.sensor_id(names[sensor]).expect("sensor");
                r.t.observe(Observation {
                    member: members[usize::from(m)],
                    sensor,
                    rssi,
                    tx_power: None,
                    check_in,
                    at,
                }, &mut r.out);
                if dt > 2000 {
                    r.t.tick(at, &mut r.out);
                }
            }
            r.t.tick(at + Duration::from_secs(3600), &mut r.out);
            proptest::prop_assert_eq!(r.t.tracked_members(), 0);
            proptest::prop_assert_eq!(r.t.open_visits(), 0);

            for m in members {
                for zone in ["door", "coffee"] {
                    let mut inside = false;
                    let mut dwelled = false;
                    let mut walked_in = 0;
                    let mut last_entered = None;
                    for e in r.out.iter().filter(|e| *e.member() == m) {
                        match e {
                            ZoneEvent::Entered { zone: z, at, .. } if &**z == zone => {
                                proptest::prop_assert!(!inside, "{m} entered {zone} twice");
                                inside = true;
                                dwelled = false;
                                last_entered = Some(*at);
                            }
                            ZoneEvent::Dwelled { zone: z, .. } if &**z == zone => {
                                proptest::prop_assert!(inside && !dwelled, "{m} dwelled {zone}");
                                dwelled = true;
                            }
                            ZoneEvent::Exited { zone: z, at, .. } if &**z == zone => {
                                proptest::prop_assert!(inside, "{m} exited {zone} unentered");
                                proptest::prop_assert!(Some(*at) >= last_entered);
                                inside = false;
                            }
                            ZoneEvent::WalkedIn { zone: z, at, .. } if &**z == zone => {
                                proptest::prop_assert_eq!(zone, "door");
                                proptest::prop_assert_eq!(Some(*at), last_entered);
                                walked_in += 1;
                            }
                            _ => {}
                        }
                    }
                    proptest::prop_assert!(!inside);
                    // visit_timeout (120 s) exceeds every gap drawn (4 s): one store visit.
                    proptest::prop_assert!(walked_in <= 1);
                }
            }
        }
    }

    #[test]
    fn config_problems_are_all_reported() {
        let mut c = config();
        c.zones[0].exit_distance_m = 1.0;
        c.sensors[2].zone = "bakery".into();
        c.sensors[0].path_loss_exponent = 0.0;
        c.smoothing.window = 40;
        c.sensors.push(SensorConfig {
            name: "lonely-out".into(),
            zone: "coffee".into(),
            role: SensorRole::Outside,
            rssi_at_1m: None,
            path_loss_exponent: 2.0,
        });
        let err = c.build::<u32>().expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "window is 40",
            "zone `door`: exit_distance_m",
            "zone `bakery` is not defined",
            "path_loss_exponent is 0",
            "`lonely-out` is an outside sensor",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert_eq!(err.0.len(), 5);
    }
}
