//! A once-per-member gift issued in two offline stores: HQ keeps one, flags the other.
//!
//! One member, whose proximity key is registered at HQ, walks into store A and a little later
//! into store B while neither store can reach HQ. Both stores run the same `[[gifts]]` campaign
//! (`trigger = "entered_store"`, `limit = "once_per_member"`) and each issues the gift: neither
//! could know of the other's. When HQ is back, both queues drain; HQ keeps the earlier gift
//! (store A's, by `recorded_at`) and flags the later (store B's) `duplicate_gift`, holding both.
//!
//! The door is a replayed trace through the real agent (`source = "replay"`), its ids generated
//! for now with `loyalty-agent proximity phone`. A trace plays from the agent's start, so each
//! agent first runs with an empty trace while HQ is up (it pulls the member and the key), then
//! is restarted with its door trace once HQ is gone.
//!
//! Store B's queue drains first and store A's after it, so the later gift reaches HQ before the
//! earlier one: HQ must move its choice to the earlier gift and put the flag on the event it
//! stored first (the harder branch; the other order is the plain one).

use loyalty_e2e::{door_proximity_toml, wait_until, Agent, Hq, Store};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MEMBER: &str = "m-gina";
const CARD: &str = "GC-0001";
const KEY: &str = "8a7b6c5d4e3f20119a8b7c6d5e4f3021";
const CAMPAIGN: &str = "first-visit";
const STORE_A: (&str, &str) = ("store-a", "store-a-token-0001");
const STORE_B: (&str, &str) = ("store-b", "store-b-token-0001");

/// What the member's app advertises now, from the phone-side generator.
fn advertisement() -> String {
    let phone = loyalty_e2e::phone(KEY);
    phone["advertisement"]
        .as_str()
        .expect("advertisement")
        .to_string()
}

/// The member walks in: heard faintly outside the door, then about 1.7 m from the inside
/// sensor (the door's enter threshold is 2 m) for a couple of seconds.
fn door_trace(adv: &str) -> String {
    let mut lines = vec![json!({"t_ms": 200, "sensor": "door-outside", "rssi": -70, "adv": adv})];
    for step in 0u64..8 {
        let t_ms = 400 + step * 300;
        let wobble = [0, 2, -2, 1, -1, 3, -3, 0][step as usize];
        lines
            .push(json!({"t_ms": t_ms, "sensor": "door-inside", "rssi": -64 + wobble, "adv": adv}));
        lines.push(
            json!({"t_ms": t_ms + 50, "sensor": "door-outside", "rssi": -74 + wobble, "adv": adv}),
        );
    }
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    text.join("\n") + "\n"
}

fn store_config(trace: &Path) -> String {
    format!(
        r#"{door}
[[gifts]]
id = "{CAMPAIGN}"
gift = "Tote bag"
trigger = "entered_store"
limit = "once_per_member"
valid_for_minutes = 1440
"#,
        door = door_proximity_toml(trace)
    )
}

/// A store syncing with `hq`, whose door trace is `<traces>/<id>.jsonl`, empty for now.
fn store(hq: &Hq, (id, token): (&str, &str), traces: &Path) -> (Store, PathBuf) {
    let trace = traces.join(format!("{id}.jsonl"));
    std::fs::write(&trace, "").expect("writing an empty trace");
    let store = Store::with_hq(id, &hq.url(), token, "", &store_config(&trace));
    (store, trace)
}

fn tracking(store: &Store) -> Value {
    store.get("/healthz").1["components"]["proximity"]["tracking"].clone()
}

/// The member's open gifts as the store shows them.
fn gifts(store: &Store) -> Vec<Value> {
    let (status, body) = store.get(&format!("/v1/members/{MEMBER}"));
    if status != 200 {
        return Vec::new();
    }
    body["gifts"].as_array().cloned().unwrap_or_default()
}

/// Restarts the agent on its door trace and waits for the one gift it issues; returns the
/// running agent and the gift.
fn walk_in(store: &Store, trace: &Path, name: &str) -> (Agent, Value) {
    std::fs::write(trace, door_trace(&advertisement())).expect("writing the door trace");
    let agent = store.start();
    let context = || format!("store {name}: {}\nlog:\n{}", tracking(store), store.log());
    wait_until(
        Duration::from_secs(15),
        "the store to issue the gift",
        || tracking(store)["gifts_issued"] == 1 && gifts(store).len() == 1,
        context,
    );
    let t = tracking(store);
    assert_eq!(t["members_with_keys"], 1, "the key came from HQ: {t}");
    let health = store.hq_health();
    assert_eq!(health["state"], "offline", "HQ is unreachable: {health}");
    let all = gifts(store);
    assert_eq!(all.len(), 1, "store {name} issues the gift once: {all:?}");
    assert_eq!(all[0]["campaign_id"], CAMPAIGN, "{all:?}");
    (agent, all[0].clone())
}

/// `(event_id, store_id, recorded_at, gift_id)` of every `gift_issued` event HQ holds.
fn gift_events_at_hq(hq: &Hq) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        hq.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("opening HQ's database read-only");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let mut stmt = conn
        .prepare(
            "SELECT event_id, store_id, recorded_at, json_extract(payload, '$.gift_id')
             FROM events WHERE kind = 'gift_issued' ORDER BY recorded_at",
        )
        .expect("query HQ events");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("HQ gift events");
    rows.map(|r| r.expect("HQ event row")).collect()
}

fn duplicate_gift_flags(report: &Value) -> Vec<Value> {
    report["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter(|f| f["flag"] == "duplicate_gift")
        .cloned()
        .collect()
}

#[test]
fn once_per_member_gift_issued_in_two_offline_stores_hq_keeps_the_earlier_and_flags_the_later() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let mut hq = Hq::start();
    hq.add_store(STORE_A.0, STORE_A.1);
    hq.add_store(STORE_B.0, STORE_B.1);
    hq.put_member(
        MEMBER,
        &json!({"tier": null, "segments": [], "cards": [CARD], "proximity_key": KEY}),
    );
    let traces = tempfile::tempdir().expect("tempdir");
    let (a, trace_a) = store(&hq, STORE_A, traces.path());
    let (b, trace_b) = store(&hq, STORE_B, traces.path());
    let context = || format!("store A log:\n{}\nstore B log:\n{}", a.log(), b.log());

    // HQ up: both stores pull the member and the key.
    let (mut agent_a, mut agent_b) = (a.start(), b.start());
    wait_until(
        Duration::from_secs(20),
        "both stores to know the member from HQ",
        || a.balance(MEMBER).is_some() && b.balance(MEMBER).is_some() && a.synced() && b.synced(),
        context,
    );
    assert!(gifts(&a).is_empty() && gifts(&b).is_empty());

    // HQ goes away. Each agent is restarted on its door trace (a trace plays from the start).
    hq.kill9();
    assert_eq!(agent_a.terminate(), Some(0), "log:\n{}", a.log());
    assert_eq!(agent_b.terminate(), Some(0), "log:\n{}", b.log());

    // The member walks into store A, then into store B.
    let (agent_a, gift_a) = walk_in(&a, &trace_a, "A");
    let (agent_b, gift_b) = walk_in(&b, &trace_b, "B");
    assert_ne!(gift_a["gift_id"], gift_b["gift_id"], "two gifts");
    let issued = |g: &Value| g["issued_at"].as_str().expect("issued_at").to_string();
    assert!(
        issued(&gift_a) < issued(&gift_b),
        "store B's gift is the later: {gift_a} {gift_b}"
    );
    // Each store still shows only its own gift, and both are queued for HQ.
    assert_eq!(gifts(&a), vec![gift_a.clone()]);
    assert_eq!(gifts(&b), vec![gift_b.clone()]);
    for (name, store) in [("A", &a), ("B", &b)] {
        let h = store.hq_health();
        assert!(
            h["backlog"].as_i64().is_some_and(|n| n >= 1),
            "store {name} queues its gift: {h}"
        );
    }

    // HQ is back. Store A is closed for now: store B's later gift reaches HQ first.
    let mut agent_a = agent_a;
    assert_eq!(agent_a.terminate(), Some(0), "log:\n{}", a.log());
    hq.launch();
    wait_until(
        Duration::from_secs(30),
        "store B to sync",
        || b.synced(),
        || format!("store B: {}\nlog:\n{}", b.hq_health(), b.log()),
    );
    let report = hq.reconciliation();
    assert!(
        duplicate_gift_flags(&report).is_empty(),
        "one gift so far, nothing to flag: {report}"
    );

    // Store A opens again and drains its queue: the earlier gift arrives second.
    let _agent_a = a.start();
    wait_until(
        Duration::from_secs(20),
        "store A to sync",
        || a.synced(),
        || format!("store A: {}\nlog:\n{}", a.hq_health(), a.log()),
    );

    // Nothing lost, nothing twice: both gift events, once each, from their stores.
    let held = gift_events_at_hq(&hq);
    assert_eq!(held.len(), 2, "both gifts are held once: {held:?}");
    let (event_a, event_b) = (&held[0], &held[1]);
    assert_eq!(
        (event_a.1.as_str(), event_a.3.as_str()),
        (STORE_A.0, gift_a["gift_id"].as_str().unwrap()),
        "{held:?}"
    );
    assert_eq!(
        (event_b.1.as_str(), event_b.3.as_str()),
        (STORE_B.0, gift_b["gift_id"].as_str().unwrap()),
        "{held:?}"
    );
    assert!(event_a.2 < event_b.2, "recorded in that order: {held:?}");

    // Exactly one flag, on store B's (later) gift; store A's stands.
    let report = hq.reconciliation();
    let flags = duplicate_gift_flags(&report);
    assert_eq!(flags.len(), 1, "one duplicate_gift flag: {report}");
    let flag = &flags[0];
    assert_eq!(flag["store_id"], STORE_B.0, "{flag}");
    assert_eq!(flag["event_id"], event_b.0.as_str(), "{flag}");
    assert_eq!(flag["member"], MEMBER, "{flag}");
    assert!(
        report["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .all(|f| f["event_id"] != event_a.0.as_str()),
        "store A's gift is not flagged: {report}"
    );
    assert_eq!(report["rejections"], json!([]), "{report}");

    // HQ's member view shows the flag and counts both events.
    let at_hq = hq.member(MEMBER);
    let member_flags: Vec<&Value> = at_hq["flags"]
        .as_array()
        .expect("member flags")
        .iter()
        .filter(|f| f["flag"] == "duplicate_gift")
        .collect();
    assert_eq!(member_flags.len(), 1, "{at_hq}");
    assert_eq!(member_flags[0]["event_id"], event_b.0.as_str(), "{at_hq}");
    assert_eq!(at_hq["events"], 2, "both gift events count: {at_hq}");
    for (name, store) in [("A", &a), ("B", &b)] {
        let h = store.hq_health();
        assert_eq!(h["dead_letters"], 0, "store {name}: {h}");
    }
    drop(agent_b);
    eprintln!(
        "sync_duplicate_gift: flag on {} at store B; done in {:?}",
        event_b.0,
        started.elapsed()
    );
}
