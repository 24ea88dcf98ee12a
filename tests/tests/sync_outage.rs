//! HQ absent for the first 300 sales of a store, then started on the URL the agent was given:
//! every sale reaches HQ exactly once, the agent's backlog drains, and the agent and HQ show the
//! same balances.
//!
//! The members are registered at HQ before the outage (HQ is then killed), so the agent has
//! never heard of them: its first 300 sales earn on `card:<n>` accounts, the way a store that
//! was installed while HQ was down works. When HQ comes back the pull links each card to its
//! member at both ends, which is the harder path (a card account folded into a member) and the
//! one a real store takes; importing the members locally would only test the plain account.

use loyalty_e2e::{wait_until, Hq, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const STORE: &str = "store-outage";
const TOKEN: &str = "store-outage-token-0001";
const SALES: usize = 300;
const MEMBERS: [(&str, &str); 3] = [
    ("m-ada", "CARD-0001"),
    ("m-bo", "CARD-0002"),
    ("m-cy", "CARD-0003"),
];

#[test]
fn three_hundred_sales_made_while_hq_is_down_reach_it_once_and_balances_agree() {
    // Built first, so the time printed below is the test's own.
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let mut hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    for (member, card) in MEMBERS {
        hq.put_member(
            member,
            &json!({"tier": null, "segments": [], "cards": [card]}),
        );
    }
    hq.kill9();

    let store = Store::with_hq(STORE, &hq.url(), TOKEN, "", "[[lanes]]\nid = \"1\"\n");
    let _agent = store.start();
    let health = store.hq_health();
    assert_eq!(health["state"], "offline", "{health}");

    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    let mut receipts = BTreeSet::new();
    for i in 0..SALES {
        let (member, card) = MEMBERS[i % MEMBERS.len()];
        let receipt = format!("R-{i:04}");
        let total = 500 + (i as i64 % 7) * 100;
        let (status, answer) = store.post(
            "/v1/lanes/1/sales",
            &json!({"receipt_id": receipt, "total_cents": total, "card": card}),
        );
        assert_eq!(status, 200, "sale {receipt} while HQ is down: {answer}");
        assert_eq!(answer["points_earned"], total / 100, "{answer}");
        *expected.entry(member).or_default() += total / 100;
        receipts.insert(receipt);
    }
    let health = store.hq_health();
    assert_eq!(health["state"], "offline", "{health}");
    assert_eq!(health["backlog"], SALES, "every sale is queued: {health}");
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "the error says HQ is unreachable: {health}"
    );

    // HQ comes back on the same address and database.
    hq.launch();
    store.wait_synced(Duration::from_secs(45), "the backlog to drain");

    // Exactly once at HQ: every receipt, none twice, nothing else.
    let held = hq.sales_held(STORE);
    assert_eq!(
        held.keys().cloned().collect::<BTreeSet<_>>(),
        receipts,
        "HQ holds exactly the store's sales"
    );
    let twice: Vec<_> = held.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "held more than once: {twice:?}");
    assert_eq!(hq.events_held(STORE), SALES as i64);

    let mut events = 0;
    for (member, points) in &expected {
        let at_hq = hq.member(member);
        assert_eq!(at_hq["balance"], *points, "HQ balance of {member}: {at_hq}");
        events += at_hq["events"].as_i64().expect("events");
        // The agent pulls after it pushes: wait for the member to arrive with HQ's balance.
        wait_until(
            Duration::from_secs(10),
            "the agent to show HQ's balance",
            || store.balance(member) == Some(*points),
            || {
                format!(
                    "{member}: agent {:?}, HQ {points}",
                    store.get(&format!("/v1/members/{member}")).1
                )
            },
        );
        let (_, at_agent) = store.get(&format!("/v1/members/{member}"));
        assert_eq!(at_agent["pending_events"], 0, "{at_agent}");
    }
    assert_eq!(events, SALES as i64, "HQ counts each sale once");
    let health = store.hq_health();
    assert_eq!(health["dead_letters"], 0, "{health}");
    eprintln!("sync_outage took {:?}", started.elapsed());
}
