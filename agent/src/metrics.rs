//! Prometheus metrics of the agent.
//!
//! One [`Metrics`] is shared by every module; each module records through a named method so the
//! metric names live in this one file. Gauges that mirror stored state (queue depth, oldest
//! unsynced age) are set by whoever reads that state just before `/metrics` is encoded; device
//! gauges (`scanner_up`, `sensor_up`) are read from their health at encoding time.
//!
//! The body is Prometheus' text format 0.0.4, the one `promtool check metrics` and every
//! scraper read: OpenMetrics (what prometheus-client wrote) names a counter's family without
//! `_total` and its samples with it, which promtool reads as two families, one without help.

use loyalty_http_edge::metrics::{add, counter, counters, gauge, gauges, HttpMetrics};
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Registry,
};
use std::sync::Mutex;

pub use loyalty_http_edge::metrics::CONTENT_TYPE;

/// A device gauge and how to read its device's health when `/metrics` is asked.
struct Watched {
    gauge: IntGauge,
    up: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    scans: IntCounterVec,
    qr_rejections: IntCounterVec,
    credits: IntCounter,
    points_credited: IntCounter,
    refunds: IntCounter,
    points_refunded: IntCounter,
    redemptions: IntCounterVec,
    points_redeemed: IntCounter,
    gifts_issued: IntCounterVec,
    sale_latency: Histogram,
    queue_depth: IntGauge,
    oldest_unsynced_seconds: IntGauge,
    dead_letters: IntGauge,
    hq_online: IntGauge,
    sync_blocked: IntGauge,
    ledger_write_errors: IntCounterVec,
    sightings: IntCounterVec,
    scanner_up: IntGaugeVec,
    sensor_up: IntGaugeVec,
    http: HttpMetrics,
    watched: Mutex<Vec<Watched>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Every name and help text is a literal here, checked by this module's tests: an error
        // is a mistake in this file, never something a store can cause.
        Self::build().unwrap_or_else(|e| panic!("the agent's metric definitions are wrong: {e}"))
    }

    fn build() -> prometheus::Result<Self> {
        let r = Registry::new_custom(Some("loyalty".into()), None)?;
        let build_info = gauges(
            &r,
            "build_info",
            "Always 1; the labels say which agent build runs",
            &["version", "demo"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                if cfg!(feature = "demo") { "yes" } else { "no" },
            ])
            .set(1);
        // 100 µs .. ~3.3 s: a durable commit is ~0.2 ms, a stalled disk is seconds.
        let latency_buckets = exponential_buckets(0.0001, 2.0, 16)?;
        Ok(Self {
            scans: counters(
                &r,
                "scans_total",
                "Scans read from serial scanners, by lane and outcome",
                &["lane", "outcome"],
            )?,
            qr_rejections: counters(
                &r,
                "qr_rejections_total",
                "App QR tokens refused for spending or identification, by reason",
                &["reason"],
            )?,
            credits: counter(&r, "credits_total", "Sales credited to a member or card")?,
            points_credited: counter(&r, "points_credited_total", "Points credited by sales")?,
            refunds: counter(&r, "refunds_total", "Refunds recorded")?,
            points_refunded: counter(
                &r,
                "points_refunded_total",
                "Points taken back by refunds",
            )?,
            redemptions: counters(
                &r,
                "redemptions_total",
                "Redemptions recorded, by kind (points or gift)",
                &["kind"],
            )?,
            points_redeemed: counter(
                &r,
                "points_redeemed_total",
                "Points spent by members at the lanes",
            )?,
            gifts_issued: counters(
                &r,
                "gifts_issued_total",
                "Gifts issued, by campaign",
                &["campaign"],
            )?,
            sale_latency: add(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "sale_latency_seconds",
                        "Time from a sale request to its durable answer",
                    )
                    .buckets(latency_buckets.clone()),
                )?,
            )?,
            queue_depth: gauge(
                &r,
                "outbox_depth",
                "Events recorded but not yet acknowledged by HQ",
            )?,
            oldest_unsynced_seconds: gauge(
                &r,
                "outbox_oldest_age_seconds",
                "Age of the oldest event not yet acknowledged by HQ",
            )?,
            dead_letters: gauge(
                &r,
                "sync_dead_letters",
                "Events HQ rejected for good, kept in the dead-letter table",
            )?,
            hq_online: gauge(
                &r,
                "hq_online",
                "1 when a sync round with HQ succeeded within the offline threshold",
            )?,
            sync_blocked: gauge(
                &r,
                "sync_blocked",
                "1 while HQ refuses this ledger's events (ledger_conflict, seq_gap, seq_conflict) until an operator runs loyalty-agent rebase",
            )?,
            ledger_write_errors: counters(
                &r,
                "ledger_write_errors_total",
                "Ledger transactions that could not be committed, by kind",
                &["kind"],
            )?,
            sightings: counters(
                &r,
                "sightings_total",
                "Phone sightings and check-ins reported by zone-sensor nodes, by sensor",
                &["sensor"],
            )?,
            scanner_up: gauges(
                &r,
                "scanner_up",
                "1 when a lane's scanner is open on its port, 0 when it is missing or failing",
                &["lane", "port"],
            )?,
            sensor_up: gauges(
                &r,
                "sensor_up",
                "1 when a zone sensor (a node on a serial port, or a Bluetooth adapter) is connected and reporting, 0 when down",
                &["sensor", "port"],
            )?,
            http: HttpMetrics::register(
                &r,
                "HTTP requests answered by the local API, by route, method and status",
                "Time from a request to its answer's head, by route and method",
                latency_buckets,
            )?,
            watched: Mutex::new(Vec::new()),
            registry: r,
        })
    }

    /// Counts one scan on `lane`; `outcome` is a short snake_case word such as `card`, `qr`,
    /// `malformed`, `too_long`, `not_utf8`, `timeout`, `debounced`, `unknown_card`.
    pub fn scan(&self, lane: &str, outcome: &'static str) {
        self.scans.with_label_values(&[lane, outcome]).inc();
    }

    /// Counts a QR token refused for a reason (`forged`, `expired`, `replayed`, `unknown_member`,
    /// `malformed`).
    pub fn qr_rejected(&self, reason: &'static str) {
        self.qr_rejections.with_label_values(&[reason]).inc();
    }

    pub fn credited(&self, points: i64) {
        self.credits.inc();
        self.points_credited.inc_by(points.max(0).unsigned_abs());
    }

    pub fn refunded(&self, points_taken_back: i64) {
        self.refunds.inc();
        self.points_refunded
            .inc_by(points_taken_back.max(0).unsigned_abs());
    }

    /// A redemption of `points` (0 for a gift handed over).
    pub fn redeemed(&self, kind: &'static str, points: i64) {
        self.redemptions.with_label_values(&[kind]).inc();
        self.points_redeemed.inc_by(points.max(0).unsigned_abs());
    }

    pub fn gift_issued(&self, campaign: &str) {
        self.gifts_issued.with_label_values(&[campaign]).inc();
    }

    pub fn observe_sale_latency(&self, seconds: f64) {
        self.sale_latency.observe(seconds);
    }

    /// The HTTP series, for the middleware ([`loyalty_http_edge::metrics::record`]).
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
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
        self.ledger_write_errors.with_label_values(&[kind]).inc();
    }

    pub fn sighting(&self, sensor: &str) {
        self.sightings.with_label_values(&[sensor]).inc();
    }

    /// `scanner_up{lane, port}` reads `up` at every `/metrics`.
    pub fn watch_scanner(
        &self,
        lane: &str,
        port: &str,
        up: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        let gauge = self.scanner_up.with_label_values(&[lane, port]);
        self.watch(gauge, Box::new(up));
    }

    /// `sensor_up{sensor, port}` reads `up` at every `/metrics`.
    pub fn watch_sensor(
        &self,
        sensor: &str,
        port: &str,
        up: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        let gauge = self.sensor_up.with_label_values(&[sensor, port]);
        self.watch(gauge, Box::new(up));
    }

    fn watch(&self, gauge: IntGauge, up: Box<dyn Fn() -> bool + Send + Sync>) {
        gauge.set(i64::from(up()));
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Watched { gauge, up });
    }

    /// The registry in Prometheus' text format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        for w in self
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            w.gauge.set(i64::from((w.up)()));
        }
        loyalty_http_edge::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_counters_end_in_total() {
        let m = Metrics::new();
        m.scan("1", "card");
        m.refunded(5);
        m.redeemed("points", 10);
        m.http().observe("/healthz", "GET", 200, 0.001);
        m.watch_scanner("1", "/dev/ttyACM0", || true);
        let text = m.encode();
        assert!(text.contains("loyalty_build_info{"), "{text}");
        assert!(
            text.contains("loyalty_scanner_up{lane=\"1\",port=\"/dev/ttyACM0\"} 1"),
            "{text}"
        );
        assert!(text.contains("loyalty_points_refunded_total 5"), "{text}");
        assert!(
            text.contains(
                "loyalty_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        }
    }
}
