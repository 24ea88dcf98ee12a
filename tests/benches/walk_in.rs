//! Walk-in to notification on loopback, through the real release binaries: `loyalty-hq`, a
//! `loyalty-agent` replaying a door trace in which BENCH_WALKINS members (default 200) walk in,
//! one every BENCH_SPACING_MS (300), while a POS thread records BENCH_SALES_PER_SEC sales a
//! second (20) on the same store; each member's live feed is open, and a webhook receiver on
//! loopback takes `gift.issued`. For each gift, from its `issued_at` (stamped by the agent when
//! the tracker processed the sighting that decided it; one clock, loopback) to
//! (a) the event at HQ (the feed item's `timestamp`, HQ's clock at ingestion),
//! (b) its arrival on the member's live feed, (c) its arrival at the webhook receiver:
//! p50, p99, max.
//!
//! Then the cost of BENCH_FEEDS (10,000) open member feeds on HQ: resident memory before and
//! after opening them, and HQ's CPU time over 30 s of idle with them open.
//!
//! `cargo bench -p loyalty-e2e --bench walk_in`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use loyalty_e2e::webhook_receiver::Receiver;
use loyalty_e2e::{sse, AppKey, Hq, Store};
use serde_json::{json, Value};

const STORE: &str = "store-bench";
const TOKEN: &str = "store-bench-token";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proximity_key(i: u64) -> String {
    format!(
        "{:032x}",
        0xbe9c_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(i)
    )
}

fn parse_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn report(what: &str, mut v: Vec<i64>) {
    if v.is_empty() {
        println!("{what:<28} no samples");
        return;
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{what:<28} n={:<4} p50={:>5} ms  p99={:>5} ms  max={:>5} ms",
        v.len(),
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    );
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let walkins = env_or("BENCH_WALKINS", 200);
    let spacing = env_or("BENCH_SPACING_MS", 300);
    let sales_per_sec = env_or("BENCH_SALES_PER_SEC", 20);
    let feeds = env_or("BENCH_FEEDS", 10_000);
    // Room for the feeds, the bench's own sockets and HQ's.
    let _ =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 20_000, 20_000);

    let hq = Hq::start_with_config(&format!(
        "max_connections = {}\n[webhooks]\nconcurrency = 64\n",
        feeds + 2_000
    ));
    hq.add_store(STORE, TOKEN);
    let receiver = Receiver::start();
    let (s, body) = hq.admin_put(
        "/v1/admin/webhooks/push",
        &json!({"url": receiver.url(), "event_types": ["gift.issued"]}),
    );
    assert_eq!(s, 200, "{body}");

    // Members, their phones' ids for now, and the door trace.
    let started = Instant::now();
    let mut members = Vec::new();
    let mut trace = String::new();
    for i in 0..walkins {
        let member = format!("m{i:04}");
        let key = proximity_key(i);
        hq.put_member(
            &member,
            &json!({"proximity_key": key, "qr_public_key": AppKey::numbered(i as u32).public_b64()}),
        );
        let phone = loyalty_e2e::phone(&key);
        let token = phone["rotating_id"]
            .as_str()
            .expect("rotating id")
            .to_owned();
        let start = 3_000 + i * spacing;
        trace.push_str(&loyalty_e2e::walk_in_lines(&token, start, 8));
        members.push(json!({"member_id": member, "proximity_key": key}));
    }
    let mut lines: Vec<&str> = trace.lines().collect();
    lines.sort_by_key(|l| {
        serde_json::from_str::<Value>(l).map_or(0, |v| v["t_ms"].as_u64().unwrap_or(0))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let trace_path = dir.path().join("door.jsonl");
    std::fs::write(&trace_path, lines.join("\n") + "\n").expect("trace");
    eprintln!(
        "{walkins} members and the trace ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every member's live feed, open before anyone walks in.
    let on_feed: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    for i in 0..walkins {
        let member = format!("m{i:04}");
        let path = format!("/v1/app/members/{member}/feed");
        let auth = AppKey::numbered(i as u32).app_auth(&member, "GET", &path);
        let (s, rx) = sse::open(&format!("{}{path}", hq.url()), &[("authorization", auth)]);
        assert_eq!(s, 200, "feed of {member}");
        let rx = rx.expect("events");
        let on_feed = on_feed.clone();
        std::thread::spawn(move || {
            while let Ok(ev) = rx.recv() {
                let arrived = ms(SystemTime::now());
                let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                if v["type"] == "gift.issued" {
                    if let Some(id) = v["data"]["gift_id"].as_str() {
                        on_feed.lock().expect("feed").insert(id.to_owned(), arrived);
                    }
                }
            }
        });
    }

    let store = Store::with_hq(
        STORE,
        &hq.url(),
        TOKEN,
        "",
        &format!(
            r#"[[lanes]]
id = "1"

{door}
[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
daily_budget = 100000
"#,
            door = loyalty_e2e::walk_in_door_toml(&trace_path)
        ),
    );
    store.import(&Value::Array(members).to_string());
    let _agent = store.start_with(|c| {
        c.env("RUST_LOG", "warn");
    });
    let replay_started = Instant::now();

    // The till: sales on cards nobody holds, all along.
    let stop_sales = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sales = {
        let stop = stop_sales.clone();
        let url = store.url("/v1/lanes/1/sales");
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut n = 0u64;
            let every = Duration::from_millis(1000 / sales_per_sec.max(1));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let _ = client
                    .post(&url)
                    .json(&json!({"receipt_id": format!("B-{n}"), "total_cents": 1999, "card": "4006381333931"}))
                    .send();
                std::thread::sleep(every);
            }
            n
        })
    };

    let deadline = Duration::from_millis(3_000 + walkins * spacing + 30_000);
    loop {
        let delivered: std::collections::HashSet<String> =
            receiver.received().into_iter().map(|r| r.id).collect();
        let fed = on_feed.lock().expect("feed").len() as u64;
        if (delivered.len() as u64 >= walkins && fed >= walkins)
            || replay_started.elapsed() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop_sales.store(true, std::sync::atomic::Ordering::Relaxed);
    let sold = sales.join().unwrap_or(0);

    // One record per gift: receivers dedupe by webhook-id.
    let mut issued: HashMap<String, (i64, i64)> = HashMap::new();
    let mut to_webhook = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in receiver.received() {
        if !seen.insert(r.id.clone()) {
            continue;
        }
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let (Some(at), Some(hq_at), Some(id)) = (
            v["data"]["issued_at"].as_str().and_then(parse_ms),
            v["timestamp"].as_str().and_then(parse_ms),
            v["data"]["gift_id"].as_str(),
        ) else {
            continue;
        };
        issued.insert(id.to_owned(), (at, hq_at));
        to_webhook.push(ms(r.at) - at);
    }
    let to_hq: Vec<i64> = issued.values().map(|(at, hq_at)| hq_at - at).collect();
    let to_feed: Vec<i64> = on_feed
        .lock()
        .expect("feed")
        .iter()
        .filter_map(|(id, arrived)| issued.get(id).map(|(at, _)| arrived - at))
        .collect();
    println!(
        "\nWalk-in to notification: {} walk-ins ({} gifts issued), one every {spacing} ms, with {sold} sales at {sales_per_sec}/s on the same store",
        walkins,
        issued.len()
    );
    report("(a) sighting -> HQ", to_hq);
    report("(b) sighting -> live feed", to_feed);
    report("(c) sighting -> webhook", to_webhook);

    // The cost of open feeds at idle.
    let Some(pid) = hq.pid() else { return };
    if feeds == 0 {
        return;
    }
    let n_members = env_or("BENCH_FEED_MEMBERS", 2_000).min(feeds).max(walkins);
    for i in walkins..n_members {
        hq.put_member(
            &format!("m{i:04}"),
            &json!({"qr_public_key": AppKey::numbered(i as u32).public_b64()}),
        );
    }
    let rss_before = proc_status_kib(pid, "VmRSS:");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = hq.url();
    let opened = rt.block_on(async move {
        let client = reqwest::Client::builder().build().expect("client");
        let mut open = 0u64;
        let mut handles = Vec::new();
        for f in 0..feeds {
            // Up to 2,000 members, several feeds each (a member with a phone and a wallet).
            let i = (f % n_members) as u32;
            let member = format!("m{i:04}");
            let path = format!("/v1/app/members/{member}/feed");
            let auth = AppKey::numbered(i).app_auth(&member, "GET", &path);
            match client
                .get(format!("{base}{path}"))
                .header("authorization", auth)
                .send()
                .await
            {
                Ok(mut res) if res.status() == 200 => {
                    open += 1;
                    handles.push(tokio::spawn(async move {
                        while let Ok(Some(_)) = res.chunk().await {}
                    }));
                }
                Ok(res) => eprintln!("feed {f}: {}", res.status()),
                Err(e) => eprintln!("feed {f}: {e}"),
            }
        }
        std::mem::forget(handles);
        open
    });
    std::thread::sleep(Duration::from_secs(2));
    let rss_open = proc_status_kib(pid, "VmRSS:");
    let ticks = cpu_ticks(pid);
    let idle = Duration::from_secs(30);
    std::thread::sleep(idle);
    let spent = cpu_ticks(pid) - ticks;
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "\n{opened} open member feeds on HQ ({n_members} members): resident memory {:.1} MiB before, {:.1} MiB with them open ({:.1} KiB a feed); CPU at idle {:.2} % of one core over {} s",
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        (rss_open.saturating_sub(rss_before)) as f64 / opened.max(1) as f64,
        spent as f64 / hz / idle.as_secs_f64() * 100.0,
        idle.as_secs()
    );
    drop(rt);
}
