//! The operator paths that used to lose acknowledged sales, each at the level an IT person
//! meets it: README's backup-and-restore procedure, a push forged with the store's token, a
//! cloned store box, a ledger truncated or damaged on disk, a second agent on one data dir, and
//! a copy of `ledger.db` alone after a clean stop.
//!
//! Tried: restore mid-day then sell (HQ refuses, nothing lost, `rebase`, all reach HQ once);
//! an event with seq 10^12 pushed by hand (refused, the store keeps syncing); a second box with
//! the same store id and token (refused with `ledger_conflict`, the first unaffected); a
//! zero-length ledger.db (refused, untouched, `--new-ledger` needed); 16 KiB of garbage
//! mid-file (refused, untouched); two agents on one data dir (second names the first's pid).

use loyalty_e2e::{agent_binary, wait_until, Hq, Store};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LANE: &str = "[[lanes]]\nid = \"1\"\n";
const STORE: &str = "store-op";
const TOKEN: &str = "store-op-token-0001";
const CARD: &str = "OP-0001";

fn setup() -> (Hq, Store) {
    let _ = (agent_binary(), loyalty_e2e::hq_binary());
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    hq.put_member("m-op", &json!({"cards": [CARD]}));
    let store = Store::with_hq(STORE, &hq.url(), TOKEN, "", LANE);
    (hq, store)
}

fn sell(store: &Store, receipts: impl IntoIterator<Item = String>) {
    for r in receipts {
        let (status, body) = store.post(
            "/v1/lanes/1/sales",
            &json!({"receipt_id": r, "total_cents": 1_000, "card": CARD}),
        );
        assert_eq!(status, 200, "sale {r}: {body}");
    }
}

fn receipts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn data(store: &Store) -> PathBuf {
    store.dir.path().join("data")
}

fn agent(args: &[&str], store: &Store) -> std::process::Output {
    Command::new(agent_binary())
        .args(args)
        .arg("--config")
        .arg(&store.config)
        .output()
        .expect("running loyalty-agent")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every receipt HQ holds for the store, each exactly once, and no other.
fn assert_at_hq_once(hq: &Hq, expected: &[String]) {
    let held = hq.sales_held(STORE);
    let doubled: Vec<_> = held.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "held more than once: {doubled:?}");
    let missing: Vec<_> = expected.iter().filter(|r| !held.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged sales never reached HQ: {missing:?}",
        missing.len()
    );
    assert_eq!(held.len(), expected.len(), "HQ holds sales nobody made");
}

fn wait_blocked(store: &Store, code: &str) -> Value {
    wait_until(
        Duration::from_secs(20),
        "HQ's refusal of this ledger to show",
        || store.hq_health()["blocked"] == code,
        || format!("healthz: {}\nlog:\n{}", store.hq_health(), store.log()),
    );
    store.get("/healthz").1
}

#[test]
fn readme_restore_procedure_loses_nothing_and_counts_nothing_twice() {
    let (hq, store) = setup();
    let mut all = receipts("before-backup", 40);
    let mut agent = store.start();
    sell(&store, all.clone());
    store.wait_synced(Duration::from_secs(20), "the first sales to sync");
    // The backup is taken online, while the agent serves.
    let backup = store.dir.path().join("nightly.db");
    let out = Command::new(agent_binary())
        .args(["backup", "--config"])
        .arg(&store.config)
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(out.status.success(), "backup: {}", text(&out));
    let after = receipts("after-backup", 40);
    sell(&store, after.clone());
    all.extend(after);
    store.wait_synced(Duration::from_secs(20), "the later sales to sync");
    assert_eq!(agent.terminate(), Some(0));

    // README: stop, put the backup in place, start. The ledger now lags behind HQ.
    std::fs::copy(&backup, data(&store).join("ledger.db")).unwrap();
    for side in ["ledger.db-wal", "ledger.db-shm"] {
        let _ = std::fs::remove_file(data(&store).join(side));
    }
    let mut agent = store.start();
    let restored = receipts("after-restore", 30);
    sell(&store, restored.clone());
    all.extend(restored);
    let health = wait_blocked(&store, "seq_conflict");
    assert_eq!(health["status"], "degraded", "{health}");
    let (_, metrics) = (0, metrics_text(&store));
    assert!(metrics.contains("loyalty_sync_blocked 1"), "{metrics}");
    assert_eq!(
        store.hq_health()["backlog"],
        30,
        "the new sales stay queued"
    );
    // Nothing of the refused pushes was written.
    assert_eq!(hq.events_held(STORE), 80);

    // The recorded operator step, with the agent stopped.
    assert_eq!(agent.terminate(), Some(0));
    let out = agent_cmd_rebase(&store, "restored nightly backup");
    assert!(out.status.success(), "rebase: {}", text(&out));
    let said = text(&out);
    assert!(said.contains("up to seq 80"), "{said}");
    let _agent = store.start();
    store.wait_synced(Duration::from_secs(30), "the re-based ledger to sync");
    assert_at_hq_once(&hq, &all);
    assert_eq!(hq.balance("m-op"), 110 * 10);
    wait_until(
        Duration::from_secs(10),
        "the store to show HQ's balance",
        || store.balance("m-op") == Some(1100),
        || format!("{:?}", store.balance("m-op")),
    );
    let report = hq.reconciliation();
    let bindings = report["ledger_bindings"].as_array().unwrap();
    assert!(
        bindings
            .iter()
            .any(|b| b["reason"] == "restored nightly backup" && b["previous_watermark"] == 80),
        "the re-base is recorded at HQ: {report}"
    );
}

fn agent_cmd_rebase(store: &Store, reason: &str) -> std::process::Output {
    Command::new(agent_binary())
        .args(["rebase", "--reason", reason, "--config"])
        .arg(&store.config)
        .output()
        .unwrap()
}

fn metrics_text(store: &Store) -> String {
    reqwest::blocking::get(store.url("/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default()
}

#[test]
fn a_forged_push_and_a_cloned_box_are_refused_and_the_store_keeps_syncing() {
    let (hq, store) = setup();
    let _agent = store.start();
    let first = receipts("real", 20);
    sell(&store, first.clone());
    store.wait_synced(Duration::from_secs(20), "the sales to sync");

    // Someone with the store's token pushes an event with a huge seq.
    let ledger_id = store.get("/healthz").1["components"]["ledger"]["ledger_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = json!({
        "protocol": 2, "store_id": STORE, "ledger_id": ledger_id, "after_seq": 1_000_000_000_000i64,
        "events": [{"event_id": "forged-1", "store_id": STORE, "seq": 1_000_000_000_001i64,
                    "kind": "sale", "account": "m-op", "points": 5,
                    "payload": {"receipt_id": "forged", "total_cents": 500},
                    "recorded_at": "2026-01-01T00:00:00.000Z", "idempotency_key": "sale:forged"}]
    });
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/stores/{STORE}/events", hq.url()))
        .bearer_auth(TOKEN)
        .json(&forged)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "seq_gap", "{body}");

    let mut all = first;
    let later = receipts("after-forgery", 20);
    sell(&store, later.clone());
    all.extend(later);
    store.wait_synced(Duration::from_secs(20), "sales after the forgery to sync");
    assert_at_hq_once(&hq, &all);

    // A cloned box: same store id and token, its own (new) ledger.
    let clone = Store::with_hq(STORE, &hq.url(), TOKEN, "", LANE);
    let _clone_agent = clone.start();
    sell(&clone, receipts("clone", 3));
    let health = wait_blocked(&clone, "ledger_conflict");
    let error = health["components"]["hq"]["last_error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("rebase"), "says what to do: {health}");
    // The real box is unaffected.
    let more = receipts("still-fine", 5);
    sell(&store, more.clone());
    all.extend(more);
    store.wait_synced(Duration::from_secs(20), "the real box to keep syncing");
    assert_at_hq_once(&hq, &all);
    let out = agent(&["doctor"], &clone);
    assert!(!out.status.success());
    assert!(text(&out).contains("ledger_conflict"), "{}", text(&out));
}

#[test]
fn a_missing_empty_or_damaged_ledger_is_refused_and_left_untouched() {
    let (_hq, store) = setup();
    let mut agent = store.start();
    sell(&store, receipts("r", 200));
    assert_eq!(agent.terminate(), Some(0));
    let ledger = data(&store).join("ledger.db");

    // A clean stop leaves everything in ledger.db itself: a copy of that file alone is whole.
    let wal = data(&store).join("ledger.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the WAL still holds data after a clean stop"
    );
    let copy = store.dir.path().join("copy.db");
    std::fs::copy(&ledger, &copy).unwrap();
    let sales: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM sales", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sales, 200);

    // 16 KiB of garbage in the middle of the file.
    let good = std::fs::read(&ledger).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for (i, b) in bad[mid..mid + 16 * 1024].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&ledger, &bad).unwrap();
    let out = refused_start(&store);
    assert!(
        out.contains("damaged") && out.contains("ledger.db"),
        "{out}"
    );
    assert_eq!(std::fs::read(&ledger).unwrap(), bad, "the file was changed");

    // Truncated to nothing: not silently a new ledger.
    std::fs::write(&ledger, b"").unwrap();
    let out = refused_start(&store);
    assert!(
        out.contains("empty") && out.contains("--new-ledger"),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&ledger).unwrap().len(), 0);
    std::fs::remove_file(&ledger).unwrap();
    let out = refused_start(&store);
    assert!(out.contains("missing"), "{out}");

    // The operator says so explicitly: an empty ledger starts.
    let mut agent = store.start_with(|c| {
        c.arg("--new-ledger");
    });
    assert_eq!(store.get("/healthz").0, 200);
    assert_eq!(agent.terminate(), Some(0));
}

/// `loyalty-agent run` that must exit non-zero at once; returns its output.
fn refused_start(store: &Store) -> String {
    let out = Command::new(agent_binary())
        .args(["run", "--config"])
        .arg(&store.config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started: {}", text(&out));
    text(&out)
}

#[test]
fn a_second_agent_on_the_same_data_dir_exits_naming_the_first() {
    let store = Store::new(LANE);
    let agent = store.start();
    let out = refused_start(&store);
    assert!(
        out.contains(&format!("pid {}", agent.child.id())),
        "names the holder: {out}"
    );
    assert!(out.contains(&data_dir_text(&data(&store))), "{out}");
}

fn data_dir_text(p: &Path) -> String {
    p.display().to_string()
}
