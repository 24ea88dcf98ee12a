//! Prometheus metrics of the agent.
//!
//! One [`Metrics`] is shared by every module; each module records through a named method so the
//! metric names live in this one file. Gauges that mirror stored state (queue depth, oldest
//! unsynced age) are set by whoever reads that state just before `/metrics` is encoded.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    scans: Family<Labels, Counter>,
    qr_rejections: Family<Labels, Counter>,
    credits: Counter,
    points_credited: Counter,
    gifts_issued: Family<Labels, Counter>,
    sale_latency: Histogram,
    queue_depth: Gauge,
    oldest_unsynced_seconds: Gauge,
    dead_letters: Gauge,
    hq_online: Gauge,
    sync_blocked: Gauge,
    ledger_write_errors: Family<Labels, Counter>,
    sightings: Family<Labels, Counter>,
    sensor_up: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("loyalty");
        let scans = Family::<Labels, Counter>::default();
        registry.register(
            "scans",
            "Scans read from serial scanners, by lane and outcome",
            scans.clone(),
        );
        let qr_rejections = Family::<Labels, Counter>::default();
        registry.register(
            "qr_rejections",
            "App QR tokens refused for spending or identification, by reason",
            qr_rejections.clone(),
        );
        let credits = Counter::default();
        registry.register(
            "credits",
            "Sales credited to a member or card",
            credits.clone(),
        );
        let points_credited = Counter::default();
        registry.register(
            "points_credited",
            "Points credited by sales",
            points_credited.clone(),
        );
        let gifts_issued = Family::<Labels, Counter>::default();
        registry.register(
            "gifts_issued",
            "Gifts issued, by campaign",
            gifts_issued.clone(),
        );
        // 100 µs .. ~3.3 s: a durable commit is ~0.2 ms, a stalled disk is seconds.
        let sale_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "sale_latency_seconds",
            "Time from a sale request to its durable answer",
            sale_latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Events recorded but not yet acknowledged by HQ",
            queue_depth.clone(),
        );
        let oldest_unsynced_seconds = Gauge::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest event not yet acknowledged by HQ",
            oldest_unsynced_seconds.clone(),
        );
        let dead_letters = Gauge::default();
        registry.register(
            "sync_dead_letters",
            "Events HQ rejected for good, kept in the dead-letter table",
            dead_letters.clone(),
        );
        let hq_online = Gauge::default();
        registry.register(
            "hq_online",
            "1 when a sync round with HQ succeeded within the offline threshold",
            hq_online.clone(),
        );
        let sync_blocked = Gauge::default();
        registry.register(
            "sync_blocked",
            "1 while HQ refuses this ledger's events (ledger_conflict, seq_gap, seq_conflict) until an operator runs loyalty-agent rebase",
            sync_blocked.clone(),
        );
        let ledger_write_errors = Family::<Labels, Counter>::default();
        registry.register(
            "ledger_write_errors",
            "Ledger transactions that could not be committed, by kind",
            ledger_write_errors.clone(),
        );
        let sightings = Family::<Labels, Counter>::default();
        registry.register(
            "sightings",
            "Phone sightings and check-ins reported by zone-sensor nodes, by sensor",
            sightings.clone(),
        );
        let sensor_up = Family::<Labels, Gauge>::default();
        registry.register(
            "sensor_up",
            "1 when a zone-sensor node is connected and reporting, 0 when down",
            sensor_up.clone(),
        );
        Self {
            registry,
            sightings,
            sensor_up,
            scans,
            qr_rejections,
            credits,
            points_credited,
            gifts_issued,
            sale_latency,
            queue_depth,
            oldest_unsynced_seconds,
            dead_letters,
            hq_online,
            sync_blocked,
            ledger_write_errors,
        }
    }

    /// Counts one scan on `lane`; `outcome` is a short snake_case word such as `card`, `qr`,
    /// `malformed`, `too_long`, `not_utf8`, `timeout`, `debounced`, `unknown_card`.
    pub fn scan(&self, lane: &str, outcome: &'static str) {
        self.scans
            .get_or_create(&vec![
                ("lane", lane.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts a QR token refused for a reason (`forged`, `expired`, `replayed`, `unknown_member`,
    /// `malformed`).
    pub fn qr_rejected(&self, reason: &'static str) {
        self.qr_rejections
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    pub fn credited(&self, points: i64) {
        self.credits.inc();
        self.points_credited.inc_by(points.max(0) as u64);
    }

    pub fn gift_issued(&self, campaign: &str) {
        self.gifts_issued
            .get_or_create(&vec![("campaign", campaign.to_owned())])
            .inc();
    }

    pub fn observe_sale_latency(&self, seconds: f64) {
        self.sale_latency.observe(seconds);
    }

    pub fn set_outbox(&self, depth: i64, oldest_age_seconds: i64) {
        self.queue_depth.set(depth);
        self.oldest_unsynced_seconds.set(oldest_age_seconds);
    }

    pub fn set_dead_letters(&self, count: i64) {
        self.dead_letters.set(count);
    }

    pub fn set_hq_online(&self, online: bool) {
        self.hq_online.set(i64::from(online));
    }

    pub fn set_sync_blocked(&self, blocked: bool) {
        self.sync_blocked.set(i64::from(blocked));
    }

    pub fn ledger_write_error(&self, kind: &'static str) {
        self.ledger_write_errors
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
    }

    pub fn sighting(&self, sensor: &str) {
        self.sightings
            .get_or_create(&vec![("sensor", sensor.to_owned())])
            .inc();
    }

    pub fn set_sensor_up(&self, sensor: &str, up: bool) {
        self.sensor_up
            .get_or_create(&vec![("sensor", sensor.to_owned())])
            .set(i64::from(up));
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
