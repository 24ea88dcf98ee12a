//! Two stores, one member, HQ gone: both stores spend offline. HQ's offline allowance
//! (`min(cap, balance / stores)`) bounds what each may spend: the till refuses past it with
//! 409 `offline_allowance`. A refund at one store of points already spent at the other still
//! overdraws the account: when HQ is back it records and flags the overdraft, and both stores
//! show HQ's final balance.
//!
//! The agents count as offline after 2 s without a successful sync round
//! (`hq.offline_after_secs = 2`; 60 s by default).

use loyalty_e2e::{wait_until, AppKey, Hq, Store};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MEMBER: &str = "m-eve";
const CARD: &str = "EC-0001";
const LANE: &str = "[[lanes]]\nid = \"1\"\n";

fn redeem(store: &Store, key: &AppKey, id: &str, points: i64) -> (u16, Value) {
    store.post(
        "/v1/lanes/1/redemptions",
        &json!({"redemption_id": id, "points": points, "qr": key.qr(MEMBER)}),
    )
}

#[test]
fn offline_allowance_bounds_spending_in_two_stores_and_hq_flags_the_overdraft() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let mut hq = Hq::start();
    let key = AppKey::from_seed(7);
    hq.add_store("store-a", "store-a-token-0001");
    hq.add_store("store-b", "store-b-token-0001");
    hq.put_member(
        MEMBER,
        &json!({"tier": null, "segments": [], "cards": [CARD], "qr_public_key": key.public_b64()}),
    );
    let extra = "offline_after_secs = 2";
    let a = Store::with_hq("store-a", &hq.url(), "store-a-token-0001", extra, LANE);
    let b = Store::with_hq("store-b", &hq.url(), "store-b-token-0001", extra, LANE);
    let (_agent_a, _agent_b) = (a.start(), b.start());
    let context = || format!("store A log:\n{}\nstore B log:\n{}", a.log(), b.log());

    // 400 points earned at store A, synced: HQ and both stores know them.
    let (status, sale) = a.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "A-1", "total_cents": 40_000, "card": CARD}),
    );
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["points_earned"], 400, "{sale}");
    wait_until(
        Duration::from_secs(20),
        "HQ and both stores to show 400 points",
        || {
            hq.balance(MEMBER) == 400
                && a.balance(MEMBER) == Some(400)
                && b.balance(MEMBER) == Some(400)
                && a.synced()
                && b.synced()
        },
        context,
    );
    // Online, spending is bounded by the balance only; nothing spent yet.

    // HQ goes away; after 2 s without sync both stores count as offline.
    hq.kill9();
    wait_until(
        Duration::from_secs(15),
        "both stores to count as offline",
        || a.hq_health()["state"] == "offline" && b.hq_health()["state"] == "offline",
        context,
    );

    // Allowance per store: min(1000, 400 / 2) = 200.
    let (s, r) = redeem(&a, &key, "A-R1", 150);
    assert_eq!(s, 200, "store A spends 150 offline: {r}");
    assert_eq!(r["balance"], 250);
    let (s, r) = redeem(&a, &key, "A-R2", 100);
    assert_eq!(s, 409, "150 + 100 is past store A's allowance of 200: {r}");
    assert_eq!(r["error"], "offline_allowance", "{r}");
    let (s, r) = redeem(&a, &key, "A-R3", 50);
    assert_eq!(s, 200, "store A spends the rest of its allowance: {r}");
    let (s, r) = redeem(&b, &key, "B-R1", 200);
    assert_eq!(s, 200, "store B spends its allowance: {r}");
    assert_eq!(
        r["balance"], 200,
        "store B saw none of store A's spending: {r}"
    );
    let (s, r) = redeem(&b, &key, "B-R2", 1);
    assert_eq!(
        s, 409,
        "store B is at its allowance although it shows 200: {r}"
    );
    assert_eq!(r["error"], "offline_allowance", "{r}");
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains("200")),
        "the refusal says the allowance: {r}"
    );
    // Offline spending stopped at the balance HQ last saw: 200 + 200 = 400.

    // Store A refunds the whole 400-point sale, still offline: it takes back what it sees.
    let (s, refund) = a.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "A-F1", "receipt_id": "A-1", "total_cents": 40_000}),
    );
    assert_eq!(s, 200, "{refund}");
    assert_eq!(refund["balance"], 0, "{refund}");
    let taken = refund["points_taken_back"]
        .as_i64()
        .expect("points taken back");
    assert_eq!(taken, 200, "store A takes back what it shows: {refund}");

    // HQ is back: the refund of points already spent at store B overdraws the account.
    hq.launch();
    wait_until(
        Duration::from_secs(40),
        "both stores to sync",
        || a.synced() && b.synced(),
        context,
    );
    let final_balance = 400 - 150 - 50 - 200 - taken;
    let at_hq = hq.member(MEMBER);
    assert_eq!(at_hq["balance"], final_balance, "{at_hq}");
    assert_eq!(
        at_hq["events"], 5,
        "sale, three redemptions, refund: {at_hq}"
    );
    let report = hq.reconciliation();
    let overdrafts: Vec<&Value> = report["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter(|f| f["flag"] == "overdraft")
        .collect();
    assert!(!overdrafts.is_empty(), "HQ flags the overdraft: {report}");
    assert!(overdrafts.iter().all(|f| f["member"] == MEMBER), "{report}");
    assert!(
        at_hq["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["flag"] == "overdraft")),
        "the member shows the flag: {at_hq}"
    );
    for (name, store) in [("A", &a), ("B", &b)] {
        wait_until(
            Duration::from_secs(10),
            "the store to show HQ's final balance",
            || store.balance(MEMBER) == Some(final_balance),
            || {
                format!(
                    "store {name}: {:?}, HQ {final_balance}",
                    store.balance(MEMBER)
                )
            },
        );
    }
    eprintln!(
        "sync_two_stores: final balance {final_balance}, {} overdraft flag(s); done in {:?}",
        overdrafts.len(),
        started.elapsed()
    );
}
