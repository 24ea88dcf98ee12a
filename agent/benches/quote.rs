//! Quote latency: `POST /v1/lanes/{lane}/quotes` with a 50-line basket for an identified
//! member, one request at a time over a kept-alive connection, against the same server's answer
//! to an unknown lane (a 404 before any work: what HTTP alone costs here), in one run. Goal:
//! p99 under 2 ms, so a POS can ask on every basket change.
//!
//! Run with `cargo bench -p loyalty-agent --bench quote` (`BENCH_QUOTES` sets how many).

use loyalty_agent::app;
use loyalty_agent::config::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const LINES: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn basket() -> Value {
    let categories = ["coffee", "bakery", "grocery", "tobacco", "dairy"];
    let lines: Vec<Value> = (0..LINES)
        .map(|i| {
            let q = 1 + (i % 3) as i64;
            let unit = 99 + 37 * i as i64;
            json!({"sku": format!("SKU-{i:03}"), "category": categories[i % categories.len()],
                   "brand": if i % 4 == 0 { Some("acme") } else { None },
                   "quantity": q, "unit_cents": unit, "total_cents": q * unit})
        })
        .collect();
    json!({"lines": lines, "card": "4006381333931"})
}

async fn timed(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    n: usize,
    want: u16,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .json(body)
            .send()
            .await
            .expect("the agent answers");
        assert_eq!(response.status().as_u16(), want, "unexpected status");
        let _ = response.bytes().await.expect("the body");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let n: usize = std::env::var("BENCH_QUOTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::Builder::new()
        .prefix("quote-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir");
    let text = format!(
        r#"[store]
id = "bench"
data_dir = "{}"

[api]
listen = "127.0.0.1:0"

[[lanes]]
id = "1"

[points]
per_euro = 1
tiers = {{ gold = 1.5 }}
exclude_categories = ["tobacco"]

[[points.campaigns]]
id = "coffee-x2"
category = "coffee"
multiplier = 2.0

[[points.campaigns]]
id = "acme"
brand = "acme"
bonus = 5

[[points.campaigns]]
id = "big-basket"
bonus = 50
min_total_cents = 5000
"#,
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, &text).expect("writing agent.toml");
    let config = Config::parse(&text, &config_path).expect("the bench agent.toml is valid");
    let members = dir.path().join("members.json");
    std::fs::write(
        &members,
        r#"[{"member_id": "m1", "tier": "gold", "cards": ["4006381333931"]}]"#,
    )
    .expect("members file");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_loyalty-agent"))
        .args(["members", "import", "--config"])
        .arg(&config_path)
        .arg(&members)
        .status()
        .expect("running members import");
    assert!(status.success(), "members import failed");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app::run(config, listener, shutdown.clone()));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let body = basket();
        let quote_url = format!("{base}/v1/lanes/1/quotes");
        let first: Value = client
            .post(&quote_url)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("a quote")
            .json()
            .await
            .expect("JSON");
        println!(
            "a 50-line basket quotes {} points ({} lines, rule_version {})",
            first["points"],
            first["lines"].as_array().map_or(0, Vec::len),
            first["rule_version"]
        );
        // Warm both paths, then measure each.
        timed(&client, &quote_url, &body, n / 10, 200).await;
        let missing_url = format!("{base}/v1/lanes/none/quotes");
        timed(&client, &missing_url, &body, n / 10, 404).await;
        let quotes = timed(&client, &quote_url, &body, n, 200).await;
        let baseline = timed(&client, &missing_url, &body, n, 404).await;
        let (q50, q99) = (percentile(&quotes, 0.5), percentile(&quotes, 0.99));
        let (b50, b99) = (percentile(&baseline, 0.5), percentile(&baseline, 0.99));
        println!("{n} quotes of a {LINES}-line basket, one at a time:");
        println!(
            "  quote        p50 {:.3} ms  p99 {:.3} ms",
            ms(q50),
            ms(q99)
        );
        println!(
            "  404 baseline p50 {:.3} ms  p99 {:.3} ms (same body, same server)",
            ms(b50),
            ms(b99)
        );
        println!(
            "  quote p99 / baseline p99 = {:.2}; goal: quote p99 under 2 ms: {}",
            ms(q99) / ms(b99),
            if ms(q99) < 2.0 { "met" } else { "NOT met" }
        );
        shutdown.cancel();
        let _ = server.await;
    });
}
