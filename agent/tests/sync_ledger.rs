//! The ledger's side of sync against a model HQ: any interleaving of local sales and
//! redemptions, pushes (answered, or with the answer lost so the batch goes again), pulls and
//! credits made at other stores converges, and the balance shown is never counted twice: it is
//! always this store's own events plus what other stores had done as of the last pull.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{
    Identity, Ledger, MemberProfile, MemberRecord, PushAck, RedeemRequest, SaleRequest,
};
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
    ledger_id: Option<String>,
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
                        profile: MemberProfile::default(),
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
            ledger_id: self.ledger_id.clone(),
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
                    profile: MemberProfile::default(),
                })
                .collect(),
        )
        .await
        .unwrap();
    let mut hq = ModelHq {
        ledger_id: Some(ledger.readers().identity().unwrap().0),
        ..ModelHq::default()
    };
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
                        lines: Vec::new(),
                        redemption_ids: Vec::new(),
                        identity: Some(Identity::Member(MEMBERS[member].into())),
                        at: Utc::now(),
                    })
                    .await
                    .unwrap();
                *local.entry(MEMBERS[member]).or_default() += a.points_earned;
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
                        reward: None,
                    })
                    .await
                    .is_ok()
                {
                    *local.entry(MEMBERS[member]).or_default() -= points;
                }
            }
            Op::Push { n, answer_lost } => {
                let events = ledger.readers().unsynced(n).unwrap().events;
                for e in &events {
                    hq.events
                        .entry(e.event_id.clone())
                        .or_insert((e.account.clone().unwrap_or_default(), e.points));
                    hq.watermark = hq.watermark.max(e.seq);
                }
                if let Some(last) = events.last().filter(|_| !answer_lost) {
                    ledger
                        .push_acked(PushAck {
                            watermark: hq.watermark.min(last.seq),
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
        let events = ledger.readers().unsynced(100).unwrap().events;
        let Some(last) = events.last().map(|e| e.seq) else {
            break;
        };
        for e in &events {
            hq.events
                .entry(e.event_id.clone())
                .or_insert((e.account.clone().unwrap_or_default(), e.points));
            hq.watermark = hq.watermark.max(e.seq);
        }
        ledger
            .push_acked(PushAck {
                watermark: hq.watermark.min(last),
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

/// The hole a restored backup or a forged push opened: HQ's watermark ahead of this store's
/// log. A pull must never mark events acknowledged, whatever watermark it carries, and a push
/// answer only the events that push sent; the balance is still counted once.
#[tokio::test]
async fn a_watermark_ahead_of_the_log_acknowledges_nothing_it_was_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    ledger
        .import_members(vec![MemberRecord {
            member_id: "m1".into(),
            profile: MemberProfile::default(),
        }])
        .await
        .unwrap();
    let sale = |n: u32| SaleRequest {
        lane: "1".into(),
        receipt_id: format!("r{n}"),
        total_cents: 1000,
        lines: Vec::new(),
        redemption_ids: Vec::new(),
        identity: Some(Identity::Member("m1".into())),
        at: Utc::now(),
    };
    for n in 0..3 {
        ledger.sale(sale(n)).await.unwrap();
    }
    let sent = ledger.readers().unsynced(2).unwrap();
    assert_eq!(sent.after_seq, 0);
    assert_eq!(sent.events.len(), 2);
    // Two more sales land while the push is in flight.
    for n in 3..5 {
        ledger.sale(sale(n)).await.unwrap();
    }
    let forged = 1_000_000_000_000;
    let hq_id = ledger.readers().identity().unwrap().0;
    let page = |watermark: i64, ledger_id: Option<String>| ChangesPage {
        protocol: PROTOCOL_VERSION,
        changes: vec![],
        next_cursor: "c".into(),
        has_more: false,
        hq_time: Utc::now().to_rfc3339(),
        watermark,
        ledger_id,
    };
    ledger
        .changes_pulled(
            page(forged, Some(hq_id.clone())),
            None,
            Utc::now().to_rfc3339(),
        )
        .await
        .unwrap();
    assert_eq!(
        ledger.readers().sync_status().unwrap().depth,
        5,
        "a pull acknowledged events"
    );
    let last_sent = sent.events.last().unwrap().seq;
    ledger
        .push_acked(PushAck {
            watermark: forged.min(last_sent),
            rejected: vec![],
            skew_ms: None,
            at: Utc::now().to_rfc3339(),
        })
        .await
        .unwrap();
    let status = ledger.readers().sync_status().unwrap();
    assert_eq!(status.acked_seq, 2);
    assert_eq!(
        status.depth, 3,
        "the three sales HQ was not sent are still queued"
    );
    let queued: Vec<String> = ledger
        .readers()
        .unsynced(10)
        .unwrap()
        .events
        .iter()
        .map(|e| e.idempotency_key.clone())
        .collect();
    assert_eq!(queued, ["sale:r2", "sale:r3", "sale:r4"]);
    // HQ's balance (two sales of 10 points counted at watermark 2) plus the three pending:
    // counted once, and the pending ones stay pending.
    ledger
        .changes_pulled(
            ChangesPage {
                changes: vec![Change::Member(HqMember {
                    member_id: "m1".into(),
                    profile: MemberProfile::default(),
                    balance: 20,
                    balance_watermark: 2,
                    offline_allowance: 0,
                })],
                ..page(2, Some(hq_id))
            },
            None,
            Utc::now().to_rfc3339(),
        )
        .await
        .unwrap();
    assert_eq!(ledger.readers().balance("m1").unwrap(), 50);
    assert_eq!(ledger.readers().sync_status().unwrap().depth, 3);
}

/// WAL frames in `ledger.db-wal` (4 KiB pages): what the next durable commit's fsync carries.
fn wal_frames(ledger: &std::path::Path) -> u64 {
    let len = std::fs::metadata(ledger.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    len.saturating_sub(32) / (24 + 4096)
}

/// Empties the WAL into ledger.db and truncates it, so the next commit's frames are counted
/// from zero. The ledger's own checkpointer may be mid-checkpoint (every 250 ms): then it is
/// tried again.
fn truncate_wal(ledger: &std::path::Path) {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let busy = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(1);
        if busy == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint was kept from finishing for 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(wal_frames(ledger), 0);
}

/// During a drain HQ sends every member back at each balance it counts: pages that repeat what
/// the ledger already holds. Such a page must write nothing but its cursor, or a till's next
/// fsync carries hundreds of pages of it (and the proximity resolver is rebuilt for nothing);
/// a page with a real change still writes it.
#[tokio::test]
async fn a_pulled_page_that_repeats_the_ledger_writes_only_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let (ledger, _writer) = Ledger::open(&path, Arc::new(Rules::default())).unwrap();
    let hq_id = ledger.readers().identity().unwrap().0;
    let profile = |name: &str, cards: &[&str]| MemberProfile {
        tier: Some("gold".into()),
        segments: vec!["coffee".into()],
        cards: cards.iter().map(|c| c.to_string()).collect(),
        proximity_key: Some("00112233445566778899aabbccddeeff".into()),
        display_name: Some(name.into()),
        ..MemberProfile::default()
    };
    let members = |m2_name: &str| -> Vec<Change> {
        (0..60)
            .map(|n| {
                let name = if n == 2 { m2_name } else { "Ann" };
                let card = format!("40063813{n:05}");
                Change::Member(HqMember {
                    member_id: format!("m{n}"),
                    profile: profile(name, &[card.as_str()]),
                    balance: 100 + n,
                    balance_watermark: 0,
                    offline_allowance: 500,
                })
            })
            .collect()
    };
    let page = |cursor: &str, changes: Vec<Change>| ChangesPage {
        protocol: PROTOCOL_VERSION,
        changes,
        next_cursor: cursor.into(),
        has_more: false,
        hq_time: Utc::now().to_rfc3339(),
        watermark: 0,
        ledger_id: Some(hq_id.clone()),
    };
    let pull = |p: ChangesPage| ledger.changes_pulled(p, None, Utc::now().to_rfc3339());

    let applied = pull(page("c1", members("Bea"))).await.unwrap();
    assert_eq!(applied.members, 60);
    let version = ledger.readers().members_version().unwrap();
    truncate_wal(&path);

    let applied = pull(page("c2", members("Bea"))).await.unwrap();
    assert_eq!(
        applied.members, 60,
        "every member is still counted as applied"
    );
    assert_eq!(
        wal_frames(&path),
        1,
        "the repeated page wrote more than the page holding its cursor"
    );
    assert_eq!(ledger.readers().sync_status().unwrap().cursor, "c2");
    assert_eq!(
        ledger.readers().members_version().unwrap(),
        version,
        "no member changed, yet the resolver would be rebuilt"
    );
    assert_eq!(ledger.readers().balance("m7").unwrap(), 107);
    assert_eq!(
        ledger
            .readers()
            .member_for_card("4006381300007")
            .unwrap()
            .as_deref(),
        Some("m7")
    );

    // One member renamed and one card moved: exactly those are written.
    truncate_wal(&path);
    let mut changed = members("Cleo");
    if let Change::Member(m) = &mut changed[7] {
        m.profile.cards = vec!["4006381399999".into()];
    }
    pull(page("c3", changed)).await.unwrap();
    assert!(wal_frames(&path) > 1, "the changes were not written");
    assert_ne!(ledger.readers().members_version().unwrap(), version);
    assert_eq!(
        ledger.readers().member_for_card("4006381300007").unwrap(),
        None
    );
    assert_eq!(
        ledger
            .readers()
            .member_for_card("4006381399999")
            .unwrap()
            .as_deref(),
        Some("m7")
    );
}
