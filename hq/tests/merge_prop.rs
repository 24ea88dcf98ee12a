//! Property: however batches are split, repeated and interleaved between stores, HQ ends with
//! the balances of applying each event once, and flags the same duplicate gifts. A batch that
//! does not follow on from what HQ holds of its store's ledger is refused whole, changing
//! nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{at, event_id};
use loyalty_hq::allowance::AllowancePolicy;
use loyalty_hq::config::Database;
use loyalty_hq::store::{Incoming, MemberInput, Options, Push, StoreError};
use loyalty_hq::token::TokenHash;
use loyalty_protocol::{Event, EventKind};
use proptest::prelude::*;
use serde_json::json;

const STORES: [&str; 2] = ["s1", "s2"];
const ACCOUNTS: [&str; 5] = ["m0", "m1", "m2", "card:c0", "card:c9"];

#[derive(Debug, Clone)]
struct Spec {
    store: usize,
    account: usize,
    kind: u8,
    points: i64,
    second: u32,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0..2usize, 0..5usize, 0..4u8, 1..50i64, 0..20u32).prop_map(
        |(store, account, kind, points, second)| Spec {
            store,
            account,
            kind,
            points,
            second,
        },
    )
}

fn build(specs: &[Spec]) -> Vec<Event> {
    let mut seqs = [0i64; 2];
    specs
        .iter()
        .map(|s| {
            seqs[s.store] += 1;
            let seq = seqs[s.store];
            let store = STORES[s.store];
            let (kind, points, payload, account) = match s.kind {
                0 => (
                    EventKind::Sale,
                    s.points,
                    json!({"receipt_id": format!("r{seq}"), "total_cents": 100}),
                    ACCOUNTS[s.account],
                ),
                1 => (
                    EventKind::Redemption,
                    -s.points,
                    json!({"redemption_id": format!("rd{seq}"), "points": s.points}),
                    ACCOUNTS[s.account],
                ),
                2 => (
                    EventKind::Refund,
                    -s.points,
                    json!({"refund_id": format!("rf{seq}"), "receipt_id": format!("r{}", seq - 1),
                           "total_cents": 100, "points_due": s.points, "uncollected": 0}),
                    ACCOUNTS[s.account],
                ),
                _ => {
                    // Gifts go to members only.
                    let member = ACCOUNTS[s.account % 3];
                    (
                        EventKind::GiftIssued,
                        0,
                        json!({"gift_id": format!("g-{store}-{seq}"), "campaign_id": "welcome",
                               "campaign_version": 1, "member_id": member, "once_per_member": true,
                               "expires_at": "2025-04-01T00:00:00.000Z"}),
                        member,
                    )
                }
            };
            Event {
                event_id: event_id(),
                store_id: store.into(),
                seq,
                kind,
                account: Some(account.into()),
                lane: None,
                points,
                payload,
                rule_version: None,
                recorded_at: at(s.second),
                idempotency_key: format!("{store}-{seq}"),
            }
        })
        .collect()
}

/// xorshift, so the shuffle is a pure function of the generated seed (proptest shrinks it).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_interleaving_and_duplication_converges(
        specs in prop::collection::vec(spec(), 1..40),
        chunk in 1..6usize,
        repeats in prop::collection::vec((any::<prop::sample::Index>(), 0..6usize), 0..12),
        seed in any::<u64>(),
    ) {
        let events = build(&specs);
        let dir = tempfile::tempdir().unwrap();
        let db = loyalty_sim::pg::test_database(dir.path()).unwrap();
        let options = Options { allowance: AllowancePolicy::default(), ..Options::default() };
        let store = loyalty_hq::store::open(&Database::parse(&db), options).unwrap();
        for s in STORES {
            store
                .put_store(s, &TokenHash::of(&format!("{s}-token-secret")))
                .unwrap();
        }
        for m in ["m0", "m1", "m2"] {
            let cards = if m == "m0" { vec!["c0".to_string()] } else { vec![] };
            store.put_member(m, &MemberInput { cards, ..MemberInput::default() }).unwrap();
        }

        // Each store's events in chunks, pushed in its own order; the stores interleaved at
        // random; some chunks pushed again later (whole or a tail: a retry after a lost answer);
        // some pushed too early (a gap), which HQ must refuse.
        let mut queues: Vec<Vec<Vec<Event>>> = STORES
            .iter()
            .map(|s| {
                let mine: Vec<Event> = events.iter().filter(|e| e.store_id == *s).cloned().collect();
                mine.chunks(chunk).map(<[Event]>::to_vec).collect()
            })
            .collect();
        for q in &mut queues {
            q.reverse();
        }
        let mut order: Vec<usize> = queues.iter().enumerate().flat_map(|(si, q)| vec![si; q.len()]).collect();
        shuffle(&mut order, seed);
        let push = |si: usize, batch: &[Event]| {
            let after_seq = batch.first().map_or(0, |e| e.seq - 1);
            let events = batch.iter().cloned().map(Incoming::Valid).collect();
            store.ingest(STORES[si], Push { ledger_id: format!("ledger-{si}"), after_seq, events, agent_version: None })
        };
        let mut pushed: Vec<(usize, Vec<Event>)> = Vec::new();
        let mut repeats = repeats.into_iter();
        for si in order {
            if let Some(early) = queues[si].len().checked_sub(2).map(|i| queues[si][i].clone()) {
                let before = store.account_balances().unwrap();
                let refused = push(si, &early);
                prop_assert!(matches!(refused, Err(StoreError::SeqGap(_))), "{:?}", refused.map(|r| r.watermark));
                prop_assert_eq!(store.account_balances().unwrap(), before);
            }
            let Some(batch) = queues[si].pop() else { continue };
            push(si, &batch).unwrap();
            pushed.push((si, batch));
            if let Some((pick, skip)) = repeats.next() {
                let (sj, b) = pushed[pick.index(pushed.len())].clone();
                let tail: Vec<Event> = b.into_iter().skip(skip).collect();
                if !tail.is_empty() {
                    push(sj, &tail).unwrap();
                }
            }
        }

        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for e in &events {
            *expected.entry(e.account.clone().unwrap()).or_default() += e.points;
        }
        let got: BTreeMap<String, i64> = store.account_balances().unwrap().into_iter().collect();
        prop_assert_eq!(&got, &expected);
        prop_assert!(store.balance_drift().unwrap().is_empty());

        // m0 holds card c0: its balance includes the card's points.
        let m0 = store.member("m0").unwrap().unwrap();
        let want = expected.get("m0").copied().unwrap_or(0) + expected.get("card:c0").copied().unwrap_or(0);
        prop_assert_eq!(m0.balance, want);

        // Per member, every gift but the earliest by (recorded_at, event_id) is flagged.
        let mut earliest: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for e in events.iter().filter(|e| e.kind == EventKind::GiftIssued) {
            let m = e.account.as_deref().unwrap();
            let key = (e.recorded_at.as_str(), e.event_id.as_str());
            let slot = earliest.entry(m).or_insert(key);
            if key < *slot {
                *slot = key;
            }
        }
        let want_flagged: BTreeSet<String> = events
            .iter()
            .filter(|e| e.kind == EventKind::GiftIssued)
            .filter(|e| earliest[e.account.as_deref().unwrap()].1 != e.event_id)
            .map(|e| e.event_id.clone())
            .collect();
        let flagged: BTreeSet<String> = store
            .reconciliation(&Default::default())
            .unwrap()
            .flags
            .into_iter()
            .filter(|f| f.flag == "duplicate_gift")
            .map(|f| f.event_id)
            .collect();
        prop_assert_eq!(flagged, want_flagged);
    }
}
