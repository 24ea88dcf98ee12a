//! 2,000 sales while the line to HQ misbehaves: a fault proxy between agent and HQ cycles
//! through refusing connections, resetting them mid-request, cutting HQ's answers (after 0, 150
//! and 600 bytes: HQ did the work, the agent never heard), delaying them, and passing. Then the
//! line heals: HQ holds exactly the sales the agent answered 200 for, none twice, and the agent
//! and HQ show the same balances.

use loyalty_e2e::fault_proxy::{FaultProxy, Mode};
use loyalty_e2e::{wait_until, Hq, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const STORE: &str = "store-faults";
const TOKEN: &str = "store-faults-token-0001";
const SALES: usize = 2_000;
const CLIENTS: usize = 4;
const MEMBERS: [(&str, &str); 4] = [
    ("m-1", "FC-0001"),
    ("m-2", "FC-0002"),
    ("m-3", "FC-0003"),
    ("m-4", "FC-0004"),
];
const PHASE: Duration = Duration::from_millis(400);
const CYCLE: [Mode; 10] = [
    Mode::Refuse,
    Mode::Pass,
    Mode::ResetMidRequest,
    Mode::CutResponse(0),
    Mode::Pass,
    Mode::CutResponse(150),
    Mode::Delay(Duration::from_millis(200)),
    Mode::CutResponse(600),
    Mode::Refuse,
    Mode::Pass,
];

#[test]
fn hq_holds_exactly_the_acknowledged_sales_after_a_faulty_line_heals() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    for (member, card) in MEMBERS {
        hq.put_member(member, &json!({"cards": [card]}));
    }
    let proxy = FaultProxy::start(hq.addr(), Mode::Pass);
    let store = Store::with_hq(STORE, &proxy.url(), TOKEN, "", "[[lanes]]\nid = \"1\"\n");
    let _agent = store.start();
    wait_until(
        Duration::from_secs(15),
        "the members to arrive from HQ",
        || MEMBERS.iter().all(|(m, _)| store.balance(m) == Some(0)),
        || store.log(),
    );

    // The line goes bad while the POS keeps selling: two rounds of the fault cycle, a slice of
    // the sales in each phase, so every mode meets pushes and pulls in flight.
    let phases = 2 * CYCLE.len();
    let per_phase = SALES / phases;
    let mut acked = BTreeMap::new();
    for phase in 0..phases {
        let phase_end = Instant::now() + PHASE;
        let mode = CYCLE[phase % CYCLE.len()];
        let posts = proxy.posts_forwarded();
        proxy.set(mode);
        acked.extend(sell(&store, phase * per_phase..(phase + 1) * per_phase));
        std::thread::sleep(phase_end.saturating_duration_since(Instant::now()));
        if mode == Mode::CutResponse(0) {
            // Make sure of the worst case at least once per cycle: a push HQ took whole whose
            // answer the agent never got.
            wait_until(
                Duration::from_secs(20),
                "a push to reach HQ while its answers are cut",
                || proxy.posts_forwarded() > posts,
                || store.log(),
            );
        }
    }
    let sold_at = started.elapsed();
    assert_eq!(
        acked.len(),
        SALES,
        "the agent answers the POS whatever HQ does"
    );

    // Heal.
    proxy.set(Mode::Pass);
    store.wait_synced(
        Duration::from_secs(60),
        "the backlog to drain once the line heals",
    );

    // The lost answers were real: HQ was sent events it already held, and took them as no-ops.
    let duplicates = hq.ingested("duplicates");
    assert!(duplicates > 0, "HQ saw re-sent events; log:\n{}", hq.log());
    let agent_log = store.log();
    let failures: Vec<&str> = store_log_failures(&agent_log);

    let held = hq.sales_held(STORE);
    let acked_receipts: BTreeSet<String> = acked.keys().cloned().collect();
    let held_receipts: BTreeSet<String> = held.keys().cloned().collect();
    let missing: Vec<_> = acked_receipts.difference(&held_receipts).collect();
    let extra: Vec<_> = held_receipts.difference(&acked_receipts).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not at HQ: {missing:?}"
    );
    assert!(extra.is_empty(), "at HQ but never acknowledged: {extra:?}");
    let twice: Vec<_> = held.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "held more than once: {twice:?}");
    assert_eq!(hq.events_held(STORE), SALES as i64);

    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    for (member, points) in acked.values() {
        *expected.entry(member.as_str()).or_default() += points;
    }
    for (member, _) in MEMBERS {
        let want = expected.get(member).copied().unwrap_or(0);
        let at_hq = hq.member(member);
        assert_eq!(at_hq["balance"], want, "HQ balance of {member}: {at_hq}");
        wait_until(
            Duration::from_secs(10),
            "the agent to show HQ's balance",
            || store.balance(member) == Some(want),
            || format!("{member}: agent {:?}, HQ {want}", store.balance(member)),
        );
    }
    assert_eq!(store.hq_health()["dead_letters"], 0);
    eprintln!(
        "sync_faults: {SALES} sales in {sold_at:?} over {phases} fault phases, {} connections, {} failed rounds, {duplicates} events re-sent; healed and checked at {:?}",
        proxy.stats.connections.load(Ordering::SeqCst),
        failures.len(),
        started.elapsed()
    );
}

/// Sells receipts `range` from `CLIENTS` POS threads; answers receipt -> (member, points) of
/// every sale the agent answered 200.
fn sell(store: &Store, range: std::ops::Range<usize>) -> BTreeMap<String, (String, i64)> {
    let acked: Mutex<BTreeMap<String, (String, i64)>> = Mutex::default();
    let next = AtomicUsize::new(range.start);
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end {
                    break;
                }
                let (_, card) = MEMBERS[i % MEMBERS.len()];
                let receipt = format!("R-{i:05}");
                let total = 300 + (i as i64 % 11) * 100;
                let (status, answer) = store.post(
                    "/v1/lanes/1/sales",
                    &json!({"receipt_id": receipt, "total_cents": total, "card": card}),
                );
                if status == 200 {
                    let member = answer["member_id"].as_str().unwrap_or_default().to_owned();
                    let points = answer["points_earned"].as_i64().unwrap_or(0);
                    acked
                        .lock()
                        .expect("acked")
                        .insert(receipt, (member, points));
                }
            });
        }
    });
    acked.into_inner().expect("acked")
}

fn store_log_failures(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("HQ sync failed"))
        .collect()
}
