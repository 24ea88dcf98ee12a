//! kill -9 in the middle of sync, on each side.
//!
//! - The agent, while a push is in flight: HQ has taken the batch but its answer is held back
//!   by the proxy, so the agent dies not knowing. After a restart it pushes that batch again.
//! - HQ, while it ingests: killed the moment the second push request reaches it (the first
//!   answered), then started again on the same database and port. A batch is stored whole or
//!   not at all.
//!
//! Either way every sale reaches HQ exactly once and balances agree.

use loyalty_e2e::fault_proxy::{FaultProxy, Mode};
use loyalty_e2e::{wait_until, Hq, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SALES: usize = 2_500;
const MEMBERS: [(&str, &str); 2] = [("m-kay", "KC-0001"), ("m-lou", "KC-0002")];

/// HQ with a store and two members, a proxy in front, an agent behind it that has pulled the
/// members, and a backlog of `SALES` sales the proxy kept from HQ.
struct Setup {
    hq: Hq,
    proxy: FaultProxy,
    store: Store,
    agent: loyalty_e2e::Agent,
    store_id: &'static str,
    /// member -> points of every acknowledged sale.
    expected: BTreeMap<&'static str, i64>,
    receipts: BTreeSet<String>,
}

fn setup(store_id: &'static str) -> Setup {
    let t0 = Instant::now();
    let token = format!("{store_id}-token");
    let hq = Hq::start();
    hq.add_store(store_id, &token);
    for (member, card) in MEMBERS {
        hq.put_member(member, &json!({"cards": [card]}));
    }
    let proxy = FaultProxy::start(hq.addr(), Mode::Pass);
    // Batches of 1,000, so that the 2,500-sale backlog takes three pushes.
    let store = Store::with_hq(
        store_id,
        &proxy.url(),
        &token,
        "push_batch = 1000\n",
        "[[lanes]]\nid = \"1\"\n",
    );
    let agent = store.start();
    wait_until(
        Duration::from_secs(15),
        "the members to arrive from HQ",
        || MEMBERS.iter().all(|(m, _)| store.balance(m) == Some(0)),
        || store.log(),
    );
    proxy.set(Mode::Refuse);
    let mut expected = BTreeMap::new();
    let mut receipts = BTreeSet::new();
    for i in 0..SALES {
        let (member, card) = MEMBERS[i % MEMBERS.len()];
        let receipt = format!("R-{i:05}");
        let total = 200 + (i as i64 % 9) * 100;
        let (status, answer) = store.post(
            "/v1/lanes/1/sales",
            &json!({"receipt_id": receipt, "total_cents": total, "card": card}),
        );
        assert_eq!(status, 200, "{answer}");
        *expected.entry(member).or_default() += answer["points_earned"].as_i64().expect("points");
        receipts.insert(receipt);
    }
    assert_eq!(store.hq_health()["backlog"], SALES, "the backlog built up");
    eprintln!("{store_id}: {SALES} sales queued at {:?}", t0.elapsed());
    Setup {
        hq,
        proxy,
        store,
        agent,
        store_id,
        expected,
        receipts,
    }
}

impl Setup {
    fn assert_drained_once(&self) {
        let store = &self.store;
        store.wait_synced(Duration::from_secs(45), "the backlog to drain");
        let held = self.hq.sales_held(self.store_id);
        assert_eq!(
            held.keys().cloned().collect::<BTreeSet<_>>(),
            self.receipts,
            "no sale lost, none invented"
        );
        let twice: Vec<_> = held.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "held more than once: {twice:?}");
        assert_eq!(self.hq.events_held(self.store_id), SALES as i64);
        let mut events = 0;
        for (member, points) in &self.expected {
            let at_hq = self.hq.member(member);
            assert_eq!(at_hq["balance"], *points, "HQ balance of {member}: {at_hq}");
            events += at_hq["events"].as_i64().expect("events");
            wait_until(
                Duration::from_secs(10),
                "the agent to show HQ's balance",
                || store.balance(member) == Some(*points),
                || format!("{member}: agent {:?}, HQ {points}", store.balance(member)),
            );
        }
        assert_eq!(events, SALES as i64, "HQ counts each sale once");
    }
}

#[test]
fn agent_killed_during_a_push_resends_it_and_hq_keeps_it_once() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let mut s = setup("store-crash-agent");

    // HQ gets the next push whole; its answer is held back for 3 s.
    let posts = s.proxy.posts_forwarded();
    s.proxy.set(Mode::Delay(Duration::from_secs(3)));
    wait_until(
        Duration::from_secs(40),
        "a push to reach HQ",
        || s.proxy.posts_forwarded() > posts,
        || s.store.log(),
    );
    wait_until(
        Duration::from_secs(10),
        "HQ to store the first batch",
        || s.hq.events_held(s.store_id) >= 1_000,
        || s.hq.log(),
    );
    let backlog_at_kill = s.store.hq_health()["backlog"].as_i64();
    s.agent.kill9();
    assert_eq!(
        backlog_at_kill,
        Some(SALES as i64),
        "the agent never heard HQ's answer before it died"
    );
    let held_at_kill = s.hq.events_held(s.store_id);

    s.proxy.set(Mode::Pass);
    s.agent = s.store.start();
    s.assert_drained_once();
    let duplicates = s.hq.ingested("duplicates");
    assert!(
        duplicates >= 1_000,
        "the batch in flight at the kill was sent again ({duplicates} duplicates at HQ)"
    );
    eprintln!(
        "sync_crash (agent): HQ held {held_at_kill} of {SALES} at the kill, {duplicates} re-sent; done in {:?}",
        started.elapsed()
    );
}

#[test]
fn hq_killed_while_ingesting_restarts_on_its_database_and_keeps_each_event_once() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let mut s = setup("store-crash-hq");

    // Open the line; kill HQ the instant the second push reaches it (the first is answered).
    let posts = s.proxy.posts_forwarded();
    s.proxy.set(Mode::Pass);
    let deadline = Instant::now() + Duration::from_secs(40);
    while s.proxy.posts_forwarded() < posts + 2 {
        assert!(
            Instant::now() < deadline,
            "no push reached HQ; log:\n{}",
            s.store.log()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    s.hq.kill9();
    let held_at_kill = s.hq.events_held(s.store_id);
    assert!(
        held_at_kill < SALES as i64,
        "HQ was killed before the backlog drained ({held_at_kill} held)"
    );
    assert_eq!(
        held_at_kill % 1_000,
        0,
        "a batch is stored whole or not at all ({held_at_kill} held)"
    );

    // The agent keeps failing while HQ is down, then HQ comes back on the same database.
    wait_until(
        Duration::from_secs(10),
        "the agent to notice HQ is gone",
        || s.store.hq_health()["consecutive_failures"].as_i64() > Some(0),
        || s.store.log(),
    );
    s.hq.launch();
    eprintln!("HQ back at {:?}", started.elapsed());
    s.assert_drained_once();
    eprintln!(
        "sync_crash (hq): HQ held {held_at_kill} of {SALES} after the kill; done in {:?}",
        started.elapsed()
    );
}
