//! Prometheus metrics of HQ: every name and help text in this one file; `/metrics` in
//! Prometheus' text format 0.0.4 (what `promtool check metrics` and every scraper read).
//!
//! Counters are this process's since it started, as Prometheus expects of each scraped
//! process: behind a load balancer, sum them over the HQ processes. `/metrics` needs no token,
//! like `/healthz`: it shows store ids and counts, never a member or a token; keep it on the
//! network your Prometheus scrapes from.

use loyalty_http_edge::metrics::{add, counter, counters, gauges, HttpMetrics};
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Registry,
};

pub use loyalty_http_edge::metrics::CONTENT_TYPE;

/// Every metric HQ exports.
pub struct Metrics {
    registry: Registry,
    events_stored: IntCounter,
    duplicates: IntCounter,
    rejections: IntCounter,
    flags: IntCounterVec,
    push_duration: Histogram,
    pushes_refused: IntCounterVec,
    members_imported: IntCounter,
    import_rows_refused: IntCounterVec,
    last_contact: IntGaugeVec,
    http: HttpMetrics,
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
        // Every name and help text is a literal here, checked by this module's test: an error
        // is a mistake in this file, never something a request can cause.
        Self::build().unwrap_or_else(|e| panic!("HQ's metric definitions are wrong: {e}"))
    }

    fn build() -> prometheus::Result<Self> {
        let r = Registry::new_custom(Some("loyalty_hq".into()), None)?;
        let build_info = gauges(
            &r,
            "build_info",
            "Always 1; the label says which HQ build runs",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // 1 ms .. ~16 s: a batch of 5,000 events commits in tens of ms; seconds is a stall.
        let buckets = exponential_buckets(0.001, 2.0, 15)?;
        Ok(Self {
            events_stored: counter(&r, "events_stored_total", "Events stored for the first time (the ingest rate)")?,
            duplicates: counter(&r, "events_duplicate_total", "Events pushed again that HQ already held (no effect)")?,
            rejections: counter(&r, "events_rejected_total", "Events refused at ingestion (malformed or out of bounds), kept in the reconciliation report")?,
            flags: counters(&r, "flags_total", "Reconciliation flags raised, by kind", &["flag"])?,
            push_duration: add(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("push_duration_seconds", "A store's push, from its request to HQ's answer (applied and committed)")
                        .buckets(buckets.clone()),
                )?,
            )?,
            pushes_refused: counters(&r, "pushes_refused_total", "Pushes refused whole, by error code (ledger_conflict, seq_gap, seq_conflict, ...)", &["code"])?,
            members_imported: counter(&r, "members_imported_total", "Members saved by bulk imports")?,
            import_rows_refused: counters(&r, "import_rows_refused_total", "Bulk import rows refused, by reason", &["reason"])?,
            last_contact: gauges(&r, "store_last_contact_seconds", "When a store last pushed or pulled, in seconds since the epoch (this process's view)", &["store"])?,
            http: HttpMetrics::register(
                &r,
                "Answers, by route template (`unmatched` for no route), method and status",
                "From a request to its answer's head, by route template and method",
                buckets,
            )?,
            registry: r,
        })
    }

    /// A push applied: its outcomes and how long it took.
    pub fn push_applied(&self, outcomes: &[loyalty_protocol::EventOutcome], seconds: f64) {
        use loyalty_protocol::OutcomeStatus as S;
        for o in outcomes {
            match o.status {
                S::Accepted => self.events_stored.inc(),
                S::Duplicate => self.duplicates.inc(),
                S::Rejected { .. } => self.rejections.inc(),
            }
            for flag in &o.flags {
                self.flags.with_label_values(&[flag.as_str()]).inc();
            }
        }
        self.push_duration.observe(seconds);
    }

    pub fn push_refused(&self, code: &str) {
        self.pushes_refused.with_label_values(&[code]).inc();
    }

    pub fn import(
        &self,
        accepted: u64,
        refused_by_reason: &std::collections::BTreeMap<String, u64>,
    ) {
        self.members_imported.inc_by(accepted);
        for (reason, n) in refused_by_reason {
            self.import_rows_refused
                .with_label_values(&[reason.as_str()])
                .inc_by(*n);
        }
    }

    pub fn contact(&self, store: &str, unix_seconds: i64) {
        self.last_contact
            .with_label_values(&[store])
            .set(unix_seconds);
    }

    /// The HTTP series, for the middleware ([`loyalty_http_edge::metrics::record`]).
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// The text format 0.0.4 body.
    pub fn encode(&self) -> String {
        loyalty_http_edge::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_valid_and_every_family_has_help() {
        let m = Metrics::new();
        m.http().observe("/healthz", "GET", 200, 0.001);
        m.contact("s1", 1_700_000_000);
        let text = m.encode();
        assert!(text.contains("# HELP loyalty_hq_events_stored_total"));
        assert!(text.contains("loyalty_hq_store_last_contact_seconds{store=\"s1\"} 1700000000"));
    }
}
