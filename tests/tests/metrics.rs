//! `/metrics` as store IT reads it: `promtool check metrics` (Debian's `prometheus` package,
//! installed by `scripts/setup.sh`) accepts it, the content type names the body's format, the
//! series they alert on are there with the values the store's state gives them, and the
//! Grafana dashboard (`docs/grafana/loyalty-agent-store.json`) queries only series that exist.

use loyalty_e2e::{wait_until, Hq, Store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const MISSING_SCANNER: &str = "/nonexistent/loyalty-scanner";
const MISSING_SENSOR: &str = "/nonexistent/loyalty-sensor";

/// `promtool check metrics` with `body` on stdin: (exit code, what it printed).
fn promtool(body: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running promtool: {e}; scripts/setup.sh installs it (Debian's `prometheus` package)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn store() -> Store {
    Store::new(&format!(
        "[[lanes]]\nid = \"1\"\n[lanes.scanner]\nport = \"{MISSING_SCANNER}\"\n\n\
         [[proximity.zones]]\nname = \"door\"\n\n\
         [[proximity.sensors]]\nname = \"door\"\nport = \"{MISSING_SENSOR}\"\nzone = \"door\"\n"
    ))
}

fn scrape(store: &Store) -> (String, String) {
    let r = reqwest::blocking::get(store.url("/metrics")).unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, r.text().unwrap())
}

#[test]
fn promtool_accepts_metrics_and_store_it_finds_what_it_alerts_on() {
    let store = store();
    store.import(r#"[{"member_id": "m1", "cards": ["CARD-0001"]}]"#);
    let _agent = store.start();
    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "r1", "total_cents": 2_000, "card": "CARD-0001"}),
    );
    assert_eq!(status, 200, "{sale}");
    let (status, refund) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "f1", "receipt_id": "r1", "total_cents": 1_000}),
    );
    assert_eq!(status, 200, "{refund}");
    assert_eq!(store.get("/v1/lanes/9").0, 404);

    let (content_type, body) = scrape(&store);
    // The classic text format, which is what the body is (no `# EOF`, counters' families end
    // in `_total`): a scraper parses by this header.
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!body.contains("# EOF"), "{body}");
    let (code, said) = promtool(&body);
    assert!(
        code == 0 && said.trim().is_empty(),
        "promtool check metrics exited {code}:\n{said}\n{body}"
    );

    let has = |line: &str| {
        assert!(
            body.lines().any(|l| l == line),
            "no line `{line}` in /metrics:\n{body}"
        )
    };
    has(&format!(
        "loyalty_scanner_up{{lane=\"1\",port=\"{MISSING_SCANNER}\"}} 0"
    ));
    has(&format!(
        "loyalty_sensor_up{{port=\"{MISSING_SENSOR}\",sensor=\"door\"}} 0"
    ));
    has("loyalty_credits_total 1");
    has(&format!(
        "loyalty_points_credited_total {}",
        sale["points_earned"]
    ));
    has("loyalty_refunds_total 1");
    has(&format!(
        "loyalty_points_refunded_total {}",
        refund["points_taken_back"]
    ));
    has(
        r#"loyalty_http_requests_total{method="POST",route="/v1/lanes/{lane}/sales",status="200"} 1"#,
    );
    has(r#"loyalty_http_requests_total{method="GET",route="/v1/lanes/{lane}",status="404"} 1"#);
    assert!(
        body.lines().any(|l| l.starts_with(
            r#"loyalty_http_request_duration_seconds_count{method="POST",route="/v1/lanes/{lane}/refunds"}"#
        )),
        "{body}"
    );
    // The e2e binary is the default build, with the demo; the .deb's says demo="no".
    has(&format!(
        "loyalty_build_info{{demo=\"yes\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    ));
}

/// HQ's `/metrics` (no token) as the chain's Prometheus reads it, with a real agent syncing:
/// promtool accepts it, and the store's contact and HQ's ingest are there; the store list shows
/// the version the agent sent in its `User-Agent`.
#[test]
fn promtool_accepts_hqs_metrics_with_a_store_syncing() {
    let hq = Hq::start();
    hq.add_store("store-m", "store-m-token-0001");
    hq.put_member("m1", &json!({"cards": ["CARD-0001"]}));
    let store = Store::with_hq(
        "store-m",
        &hq.url(),
        "store-m-token-0001",
        "",
        "[[lanes]]\nid = \"1\"\n",
    );
    let _agent = store.start();
    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "r1", "total_cents": 2_000, "card": "CARD-0001"}),
    );
    assert_eq!(status, 200, "{sale}");
    wait_until(
        std::time::Duration::from_secs(20),
        "HQ to hold the sale",
        || hq.events_held("store-m") == 1,
        || store.log(),
    );

    let r = reqwest::blocking::get(format!("{}/metrics", hq.url())).unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = r.text().unwrap();
    let (code, said) = promtool(&body);
    assert!(
        code == 0 && said.trim().is_empty(),
        "promtool check metrics exited {code}:\n{said}\n{body}"
    );
    for prefix in [
        "loyalty_hq_events_stored_total 1",
        "loyalty_hq_push_duration_seconds_count ",
        "loyalty_hq_store_last_contact_seconds{store=\"store-m\"} ",
        "loyalty_hq_http_requests_total{method=\"POST\",route=\"/v1/stores/{store}/events\",status=\"200\"} ",
        "loyalty_hq_build_info{version=",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(prefix)),
            "no line starting `{prefix}` in HQ's /metrics:\n{body}"
        );
    }

    let (status, list) = hq.admin_get("/v1/admin/stores");
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["stores"][0]["agent_version"],
        env!("CARGO_PKG_VERSION"),
        "{list}"
    );
    assert_eq!(list["stores"][0]["events_today"], 1, "{list}");
}

#[test]
fn promtool_rejects_what_it_rejected_before() {
    // What the agent served before (OpenMetrics from prometheus-client, as text/plain 0.0.4):
    // the check above can fail.
    let old = "# HELP loyalty_credits Sales credited to a member or card.\n\
               # TYPE loyalty_credits counter\nloyalty_credits_total 3\n# EOF\n";
    let (code, said) = promtool(old);
    assert_ne!(code, 0, "{said}");
    assert!(said.contains("no help text"), "{said}");
}

/// Metric names a PromQL expression uses (`loyalty_...`, without histogram suffixes).
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("loyalty_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/loyalty-agent-store.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let store = store();
    let _agent = store.start();
    // Every family with a sample: one of each labelled counter.
    store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "r1", "total_cents": 100}),
    );
    let (_, body) = scrape(&store);
    let exported: BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(names_in(target["expr"].as_str().unwrap()));
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    // A labelled family shows only once it has a sample (a QR refused, a gift issued): those
    // must at least be defined in the agent's one metrics file.
    let defined = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src/metrics.rs"),
    )
    .unwrap();
    for name in &queried {
        let short = format!("\"{}\"", name.trim_start_matches("loyalty_"));
        assert!(
            exported.contains(name.as_str()) || defined.contains(&short),
            "the dashboard queries {name}, which the agent does not export:\n{body}"
        );
    }
}
