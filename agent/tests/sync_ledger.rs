//! The ledger's side of sync against a model HQ: any interleaving of local sales and
//! redemptions, pushes (answered, or with the answer lost so the batch goes again), pulls and
//! credits made at other stores converges, and the balance shown is never counted twice: it is
//! always this store's own events plus what other stores had done as of the last pull.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{Identity, Ledger, MemberRecord, PushAck, RedeemRequest, SaleRequest};
use loyalty_protocol::{Change, ChangesPage, MemberRecord as HqMember, PROTOCOL_VERSION};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const MEMBERS: [&str; 2] = ["m1", "m2"];

#[derive(Debug, Clone)]
enum Op {
    Sale {
        member: usize,
        cents: i64,
    },
    Redeem {
        member: usize,
        points: i64,
    },
    /// HQ receives the next `n` unsynced events; when `answer_lost`, the store never hears back.
    Push {
        n: usize,
        answer_lost: bool,
    },
    Pull,
    CreditElsewhere {
        member: usize,
        points: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 100..5000i64).prop_map(|(member, cents)| Op::Sale { member, cents }),
        2 => (0..2usize, 1..40i64).prop_map(|(member, points)| Op::Redeem { member, points }),
        3 => (1..6usize, any::<bool>()).prop_map(|(n, answer_lost)| Op::Push { n, answer_lost }),
        2 => Just(Op::Pull),
        1 => (0..2usize, 1..50i64).prop_map(|(member, points)| Op::CreditElsewhere { member, points }),
    ]
}

/// HQ as the protocol describes it: events by id, a watermark per store, balances derived.
#[derive(Default)]
struct ModelHq {
    events: BTreeMap<String, (String, i64)>,
    watermark: i64,
    elsewhere: BTreeMap<String, i64>,
}

impl ModelHq {
    fn balance(&self, member: &str) -> i64 {
        self.events
            .values()
            .filter(|(a, _)| a == member)
            .map(|(_, p)| p)
            .sum::<i64>()
            + self.elsewhere.get(member).copied().unwrap_or(0)
    }

    fn page(&self) -> ChangesPage {
        ChangesPage {
            protocol: PROTOCOL_VERSION,
            changes: MEMBERS
                .iter()
                .map(|m| {
                    Change::Member(HqMember {
                        member_id: m.to_string(),
                        tier: None,
                        segments: vec![],
                        cards: vec![],
                        qr_public_key: None,
                        proximity_key: None,
                        balance: self.balance(m),
                        balance_watermark: self.watermark,
                        offline_allowance: 1_000_000,
                    })
                })
                .collect(),
            next_cursor: format!("c{}", self.events.len()),
            has_more: false,
            hq_time: Utc::now().to_rfc3339(),
            watermark: self.watermark,
        }
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    ledger
        .import_members(
            MEMBERS
                .iter()
                .map(|m| MemberRecord {
                    member_id: m.to_string(),
                    tier: None,
                    segments: vec![],
                    cards: vec![],
                    qr_public_key: None,
                    proximity_key: None,
                })
                .collect(),
        )
        .await
        .unwrap();
    let mut hq = ModelHq::default();
    let mut local: BTreeMap<&str, i64> = BTreeMap::new();
    let mut elsewhere_at_pull: BTreeMap<&str, i64> = BTreeMap::new();
    let mut receipts = 0;
    for op in ops {
        match op {
            Op::Sale { member, cents } => {
                receipts += 1;
                let a = ledger
                    .sale(SaleRequest {
                        lane: "1".into(),
                        receipt_id: format!("r{receipts}"),
                        total_cents: cents,
                        identity: Some(Identity::Member(MEMBERS[member].into())),
                        at: Utc::now(),
                    })
                    .await
                    .unwrap();
                *local.entry(MEMBERS[member]).or_default() += a["points_earned"].as_i64().unwrap();
            }
            Op::Redeem { member, points } => {
                receipts += 1;
                if ledger
                    .redeem(RedeemRequest {
                        lane: "1".into(),
                        redemption_id: format!("d{receipts}"),
                        member_id: MEMBERS[member].into(),
                        points,
                        at: Utc::now(),
                        offline: false,
                    })
                    .await
                    .is_ok()
                {
                    *local.entry(MEMBERS[member]).or_default() -= points;
                }
            }
            Op::Push { n, answer_lost } => {
                let events = ledger.readers().unsynced(n).unwrap();
                for e in &events {
                    hq.events
                        .entry(e.event_id.clone())
                        .or_insert((e.account.clone().unwrap_or_default(), e.points));
                    hq.watermark = hq.watermark.max(e.seq);
                }
                if !answer_lost && !events.is_empty() {
                    ledger
                        .push_acked(PushAck {
                            watermark: hq.watermark,
                            rejected: vec![],
                            skew_ms: Some(0),
                            at: Utc::now().to_rfc3339(),
                        })
                        .await
                        .unwrap();
                }
            }
            Op::Pull => {
                ledger
                    .changes_pulled(hq.page(), Some(0), Utc::now().to_rfc3339())
                    .await
                    .unwrap();
                for m in MEMBERS {
                    elsewhere_at_pull.insert(m, hq.elsewhere.get(m).copied().unwrap_or(0));
                }
            }
            Op::CreditElsewhere { member, points } => {
                *hq.elsewhere.entry(MEMBERS[member].into()).or_default() += points;
            }
        }
        for m in MEMBERS {
            let shown = ledger.readers().balance(m).unwrap();
            let expected =
                local.get(m).copied().unwrap_or(0) + elsewhere_at_pull.get(m).copied().unwrap_or(0);
            prop_assert_eq!(shown, expected, "member {}", m);
        }
    }
    // Heal: push everything, pull once; HQ holds each event once and both sides agree.
    loop {
        let events = ledger.readers().unsynced(100).unwrap();
        if events.is_empty() {
            break;
        }
        for e in &events {
            hq.events
                .entry(e.event_id.clone())
                .or_insert((e.account.clone().unwrap_or_default(), e.points));
            hq.watermark = hq.watermark.max(e.seq);
        }
        ledger
            .push_acked(PushAck {
                watermark: hq.watermark,
                rejected: vec![],
                skew_ms: None,
                at: Utc::now().to_rfc3339(),
            })
            .await
            .unwrap();
    }
    ledger
        .changes_pulled(hq.page(), None, Utc::now().to_rfc3339())
        .await
        .unwrap();
    let ids: BTreeSet<&String> = hq.events.keys().collect();
    prop_assert_eq!(
        ids.len() as i64,
        ledger.readers().sync_status().unwrap().last_seq
    );
    for m in MEMBERS {
        prop_assert_eq!(ledger.readers().balance(m).unwrap(), hq.balance(m));
        prop_assert_eq!(
            hq.balance(m),
            local.get(m).copied().unwrap_or(0) + hq.elsewhere.get(m).copied().unwrap_or(0)
        );
    }
    prop_assert_eq!(ledger.readers().sync_status().unwrap().depth, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_of_pushes_retries_and_pulls_converges(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
