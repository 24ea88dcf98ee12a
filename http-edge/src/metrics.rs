//! What both servers' `/metrics` share: registering families, the text format 0.0.4 body
//! (what `promtool check metrics` and every scraper read), and the per-route HTTP series with
//! the middleware that records them. Each server keeps its own names and help texts.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of [`encode`]'s body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label of a request no route matched (a scanner of the network, a typo): one series for
/// them all.
const UNMATCHED: &str = "unmatched";

/// Registers `metric` and hands it back.
pub fn add<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

pub fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    add(r, IntCounter::new(name, help)?)
}

pub fn counters(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    add(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

pub fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    add(r, IntGauge::new(name, help)?)
}

pub fn gauges(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    add(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// `registry` in the text format 0.0.4 ([`CONTENT_TYPE`]).
pub fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and the families are valid by construction.
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "Encoding the metrics failed.");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `http_requests_total` (route, method, status) and `http_request_duration_seconds` (route,
/// method), labelled by the route's template so ids in paths never make new series.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Registers both families in `r` (whose prefix names the server) with these help texts.
    pub fn register(
        r: &Registry,
        requests_help: &str,
        duration_help: &str,
        buckets: Vec<f64>,
    ) -> prometheus::Result<Self> {
        Ok(HttpMetrics {
            requests: counters(
                r,
                "http_requests_total",
                requests_help,
                &["route", "method", "status"],
            )?,
            duration: add(
                r,
                HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", duration_help)
                        .buckets(buckets),
                    &["route", "method"],
                )?,
            )?,
        })
    }

    /// One answered request; `route` is the route's template (`/v1/lanes/{lane}/sales`), never
    /// the path itself.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }
}

/// The middleware (`axum::middleware::from_fn_with_state(http_metrics, record)`): every answer
/// counted and timed to its head.
pub async fn record(State(http): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    http.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_template_and_encoded_with_help() {
        let r = Registry::new_custom(Some("t".into()), None).unwrap();
        let http = HttpMetrics::register(&r, "answers", "latency", vec![0.001, 0.01]).unwrap();
        http.observe("/v1/lanes/{lane}", "GET", 200, 0.002);
        http.observe("/v1/lanes/{lane}", "GET", 200, 0.002);
        let text = encode(&r);
        assert!(
            text.contains("# HELP t_http_requests_total answers"),
            "{text}"
        );
        assert!(
            text.contains(
                "t_http_requests_total{method=\"GET\",route=\"/v1/lanes/{lane}\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("t_http_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
