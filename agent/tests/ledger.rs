//! The ledger's promises, against a real SQLite file: once, durable, refusing when full.

use chrono::Utc;
use loyalty_agent::engine::gifts::{GiftCampaign, GiftLimit, GiftTrigger, PresenceFact};
use loyalty_agent::engine::{Rules, StoreTimeZone};
use loyalty_agent::ledger::{
    Identity, Ledger, LedgerError, MemberProfile, MemberRecord, PresenceRequest, RedeemRequest,
    Redeemed, RefundOf, RefundRequest, Refusal, SaleRequest,
};
use std::sync::Arc;

fn sale(receipt: &str, cents: i64, who: Identity) -> SaleRequest {
    SaleRequest {
        lane: "1".into(),
        receipt_id: receipt.into(),
        total_cents: cents,
        lines: Vec::new(),
        redemption_ids: Vec::new(),
        identity: Some(who),
        at: Utc::now(),
    }
}

async fn open(dir: &tempfile::TempDir) -> Ledger {
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    ledger
        .import_members(vec![MemberRecord {
            member_id: "m1".into(),
            profile: MemberProfile {
                tier: None,
                segments: vec![],
                cards: vec!["4006381333931".into()],
                qr_public_key: None,
                proximity_key: None,
                display_name: None,
            },
        }])
        .await
        .unwrap();
    ledger
}

#[tokio::test]
async fn a_repeated_receipt_returns_the_first_answer_and_credits_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let first = ledger
        .sale(sale("r1", 1250, Identity::Card("4006381333931".into())))
        .await
        .unwrap();
    assert_eq!(first.member_id.as_deref(), Some("m1"));
    assert_eq!(first.points_earned, 12);
    let again = ledger
        .sale(sale("r1", 9999, Identity::Card("4006381333931".into())))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(ledger.readers().balance("m1").unwrap(), 12);
}

#[tokio::test]
async fn unknown_card_earns_under_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let a = ledger
        .sale(sale("r2", 500, Identity::Card("5901234123457".into())))
        .await
        .unwrap();
    assert_eq!(a.member_id, None);
    assert_eq!(a.card.as_deref(), Some("5901234123457"));
    assert_eq!(ledger.readers().balance("card:5901234123457").unwrap(), 5);
}

#[tokio::test]
async fn refund_and_redemption_rules_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    ledger
        .sale(sale("r3", 2000, Identity::Member("m1".into())))
        .await
        .unwrap();
    let refund = |id: &str, cents| RefundRequest {
        lane: "1".into(),
        refund_id: id.into(),
        receipt_id: "r3".into(),
        what: RefundOf::Cents(cents),
        at: Utc::now(),
    };
    let half = ledger.refund(refund("f1", 1000)).await.unwrap();
    assert_eq!(half.points_taken_back, 10);
    assert_eq!(ledger.refund(refund("f1", 1000)).await.unwrap(), half);
    assert!(matches!(
        ledger.refund(refund("f2", 1500)).await,
        Err(LedgerError::Refused(Refusal::RefundRefused(_)))
    ));
    let spend = |id: &str, points| RedeemRequest {
        lane: "1".into(),
        redemption_id: id.into(),
        member_id: "m1".into(),
        points,
        at: Utc::now(),
        offline: false,
        reward: None,
    };
    assert!(matches!(
        ledger.redeem(spend("x1", 11)).await,
        Err(LedgerError::Refused(Refusal::InsufficientBalance(_)))
    ));
    let balance_after = |r: Redeemed| match r {
        Redeemed::Points(p) => p.balance,
        Redeemed::Gift(g) => panic!("a gift answered a points redemption: {g:?}"),
    };
    assert_eq!(
        balance_after(ledger.redeem(spend("x2", 10)).await.unwrap()),
        0
    );
    assert_eq!(
        balance_after(ledger.redeem(spend("x2", 10)).await.unwrap()),
        0
    );
    assert_eq!(ledger.readers().balance("m1").unwrap(), 0);
}

#[tokio::test]
async fn new_rules_apply_to_the_sales_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let before = ledger
        .sale(sale("r-rules-1", 1000, Identity::Member("m1".into())))
        .await
        .unwrap();
    let double = loyalty_agent::sync::campaigns::points_campaign(
        "double",
        3,
        &serde_json::json!({"kind": "points", "multiplier": 2.0}),
    )
    .unwrap()
    .unwrap();
    let rules = Rules {
        campaigns: vec![double],
        ..Rules::default()
    };
    ledger.set_rules(Arc::new(rules)).await.unwrap();
    let after = ledger
        .sale(sale("r-rules-2", 1000, Identity::Member("m1".into())))
        .await
        .unwrap();
    assert_eq!(before.points_earned, 10);
    assert_eq!(
        after.points_earned, 20,
        "HQ's double-points campaign applies"
    );
}

#[tokio::test]
async fn an_upgrade_backs_the_ledger_up_then_migrates_it_keeping_every_sale() {
    use loyalty_agent::ledger::schema::MIGRATIONS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        // A ledger written by the first released agent: schema v1 with one sale.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO members (member_id, updated_at) VALUES ('m1', 't');
             INSERT INTO events (event_id, idempotency_key, kind, account, lane, points, payload, response, recorded_at)
             VALUES ('e1', 'sale:r-old', 'sale', 'm1', '1', 12, '{}', '{\"receipt_id\":\"r-old\",\"points_earned\":12}', 't');
             INSERT INTO balances (account, points) VALUES ('m1', 12);
             INSERT INTO sales (receipt_id, account, total_cents, points_earned) VALUES ('r-old', 'm1', 1250, 12);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let (ledger, writer) = Ledger::open(&path, Arc::new(Rules::default())).unwrap();
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("ledger-v1-"), "{name}");
    let copy = rusqlite::Connection::open(&backups[0]).unwrap();
    let (version, events): (i64, i64) = (
        copy.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap(),
        copy.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap(),
    );
    assert_eq!(
        (version, events),
        (1, 1),
        "the copy is the ledger as it was"
    );
    // Migrated: the old sale still answers its receipt and can be refunded.
    assert_eq!(ledger.readers().balance("m1").unwrap(), 12);
    let again = ledger
        .sale(sale("r-old", 1250, Identity::Member("m1".into())))
        .await
        .unwrap();
    assert_eq!(again.points_earned, 12);
    let refund = ledger
        .refund(RefundRequest {
            lane: "1".into(),
            refund_id: "f-old".into(),
            receipt_id: "r-old".into(),
            what: RefundOf::Cents(1250),
            at: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(refund.points_taken_back, 12);
    // A second start finds a current schema: no second copy.
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let (_again, _w) = Ledger::open(&path, Arc::new(Rules::default())).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("backups"))
            .unwrap()
            .count(),
        1
    );
}

/// A sale whose points would pass `loyalty_protocol::bounds` (a 100 M EUR basket at 1,000
/// points per euro) is refused, nothing recorded; the member's next sale earns as usual.
#[tokio::test]
async fn a_credit_past_the_bounds_is_refused_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _writer) = Ledger::open(
        &dir.path().join("ledger.db"),
        Arc::new(Rules {
            per_euro: 1000,
            ..Rules::default()
        }),
    )
    .unwrap();
    let refused = ledger
        .sale(sale("huge", 10_000_000_000, Identity::Member("m1".into())))
        .await;
    match refused {
        Err(LedgerError::Refused(refusal @ Refusal::PointsOutOfBounds(_))) => {
            assert_eq!(refusal.code(), "points_out_of_bounds");
            let message = refusal.to_string();
            assert!(message.contains("nothing was recorded"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let status = ledger.readers().sync_status().unwrap();
    assert_eq!(status.last_seq, 0, "an event was recorded");
    let next = ledger
        .sale(sale("small", 100, Identity::Member("m1".into())))
        .await
        .unwrap();
    assert_eq!(next.points_earned, 1000);
    assert_eq!(ledger.readers().balance("m1").unwrap(), 1000);
}

/// Sync wakes on what the writer appends, not on a timer: a sale pokes it once committed; a
/// retried receipt, which appends nothing, and a ping do not.
#[tokio::test]
async fn a_commit_that_appends_events_wakes_sync_and_one_that_does_not_stays_quiet() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let appended = ledger.appended();
    // The import appended nothing; drain any permit so the checks below start clean.
    let _ = tokio::time::timeout(Duration::from_millis(50), appended.notified()).await;

    ledger
        .sale(sale("w1", 1000, Identity::Card("4006381333931".into())))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), appended.notified())
        .await
        .expect("a recorded sale wakes sync");

    ledger
        .sale(sale("w1", 1000, Identity::Card("4006381333931".into())))
        .await
        .unwrap();
    ledger.ping().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), appended.notified())
            .await
            .is_err(),
        "a retried receipt and a ping append nothing and must not wake sync"
    );
}

// ---------------------------------------------------------------------------------------------
// Per-day gift limits in a store with daylight saving time (Europe/Amsterdam): the day a gift
// counts against runs from local midnight to local midnight, 23 hours on 2027-03-28 (clocks
// forward at 01:00 UTC) and 25 hours on 2027-10-31 (clocks back at 01:00 UTC).

fn daily_coffee(limit: GiftLimit, daily_budget: Option<u32>) -> GiftCampaign {
    GiftCampaign {
        id: "daily-coffee".into(),
        version: 1,
        gift: "Free coffee".into(),
        trigger: GiftTrigger::EnteredStore,
        tiers: vec![],
        segments: vec![],
        limit,
        daily_budget,
        starts: None,
        ends: None,
        valid_for: chrono::Duration::hours(1),
        expires_at: None,
        points: 0,
        reward: None,
    }
}

async fn amsterdam_store(dir: &tempfile::TempDir, gift: GiftCampaign) -> Ledger {
    let rules = Rules {
        time_zone: StoreTimeZone::named("Europe/Amsterdam").unwrap(),
        gifts: vec![gift],
        ..Rules::default()
    };
    let (ledger, _writer) = Ledger::open(&dir.path().join("ledger.db"), Arc::new(rules)).unwrap();
    let member = |id: &str| MemberRecord {
        member_id: id.into(),
        profile: MemberProfile {
            tier: None,
            segments: vec![],
            cards: vec![],
            qr_public_key: None,
            proximity_key: None,
            display_name: None,
        },
    };
    ledger
        .import_members(vec![member("m1"), member("m2")])
        .await
        .unwrap();
    ledger
}

/// Whether `member` walking in at `utc` gets the coffee.
async fn gets_coffee(ledger: &Ledger, member: &str, utc: &str) -> bool {
    let at = chrono::DateTime::parse_from_rfc3339(utc)
        .unwrap()
        .with_timezone(&Utc);
    let answer = ledger
        .presence(PresenceRequest {
            member_id: member.into(),
            fact: PresenceFact::WalkedIn,
            at,
        })
        .await
        .unwrap();
    !answer.gifts.is_empty()
}

#[tokio::test]
async fn once_per_day_resets_at_local_midnight_on_the_23_hour_day() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = amsterdam_store(&dir, daily_coffee(GiftLimit::OncePerDay, None)).await;
    for (utc, local, expected) in [
        ("2027-03-27T22:30:00Z", "Sat 23:30 CET", true),
        ("2027-03-27T23:00:00Z", "Sun 00:00 CET", true),
        ("2027-03-28T21:59:00Z", "Sun 23:59 CEST", false),
        // A fixed +01:00 would still call this Sunday 23:00.
        ("2027-03-28T22:00:00Z", "Mon 00:00 CEST", true),
    ] {
        assert_eq!(gets_coffee(&ledger, "m1", utc).await, expected, "{local}");
    }
}

#[tokio::test]
async fn once_per_day_resets_at_local_midnight_on_the_25_hour_day() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = amsterdam_store(&dir, daily_coffee(GiftLimit::OncePerDay, None)).await;
    for (utc, local, expected) in [
        ("2027-10-30T21:59:00Z", "Sat 23:59 CEST", true),
        // A fixed +01:00 would still call this Saturday 23:00.
        ("2027-10-30T22:00:00Z", "Sun 00:00 CEST", true),
        ("2027-10-31T22:59:00Z", "Sun 23:59 CET", false),
        ("2027-10-31T23:00:00Z", "Mon 00:00 CET", true),
    ] {
        assert_eq!(gets_coffee(&ledger, "m1", utc).await, expected, "{local}");
    }
}

#[tokio::test]
async fn the_store_daily_budget_lasts_the_whole_25_hour_day() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = amsterdam_store(&dir, daily_coffee(GiftLimit::OncePerVisit, Some(1))).await;
    assert!(
        gets_coffee(&ledger, "m1", "2027-10-30T22:00:00Z").await,
        "Sun 00:00 CEST"
    );
    assert!(
        !gets_coffee(&ledger, "m2", "2027-10-31T22:59:00Z").await,
        "Sun 23:59 CET: Sunday's one gift is gone"
    );
    assert!(
        gets_coffee(&ledger, "m2", "2027-10-31T23:00:00Z").await,
        "Mon 00:00 CET"
    );
}

/// A gift that is a reward: handed over with a basket, it answers the discount lines the POS
/// applies; a voided basket opens it again; a basket it does not fit is refused, the gift kept.
#[tokio::test]
async fn a_reward_gift_gives_discount_lines_and_a_void_opens_it_again() {
    use loyalty_agent::engine::reward::Reward;
    use loyalty_agent::engine::BasketLine;
    use loyalty_agent::ledger::{GiftRedeemRequest, VoidRequest};
    let dir = tempfile::tempdir().unwrap();
    let mut gift = daily_coffee(GiftLimit::OncePerMember, None);
    gift.reward = Some(Reward::FreeItem {
        sku: "COF-1".into(),
    });
    let ledger = amsterdam_store(&dir, gift).await;
    let now = Utc::now();
    let issued = ledger
        .presence(PresenceRequest {
            member_id: "m1".into(),
            fact: PresenceFact::WalkedIn,
            at: now,
        })
        .await
        .unwrap();
    let gift_id = issued.gifts[0].gift_id.clone();
    assert!(issued.gifts[0].reward.is_some());
    let line = |sku: &str| BasketLine {
        sku: sku.into(),
        category: "coffee".into(),
        brand: None,
        quantity: 2,
        unit_cents: 320,
        total_cents: 640,
    };
    let hand_over = |id: &str, basket: Vec<BasketLine>| GiftRedeemRequest {
        lane: "1".into(),
        redemption_id: id.into(),
        member_id: "m1".into(),
        gift_id: gift_id.clone(),
        basket,
        at: now,
    };
    let refused = ledger
        .redeem_gift(hand_over("G-0", vec![line("TEA-1")]))
        .await;
    assert!(matches!(
        refused,
        Err(LedgerError::Refused(Refusal::RewardNotApplicable(_)))
    ));
    let Redeemed::Gift(handed) = ledger
        .redeem_gift(hand_over("G-1", vec![line("TEA-1"), line("COF-1")]))
        .await
        .unwrap()
    else {
        panic!("not a gift");
    };
    assert_eq!(handed.discounts.len(), 1);
    assert_eq!(
        (handed.discounts[0].line, handed.discounts[0].amount_cents),
        (2, 320)
    );
    let open = |l: &Ledger| {
        let r = l.readers().clone();
        move || r.open_gifts("m1").unwrap().len()
    };
    assert_eq!(open(&ledger)(), 0);
    let voided = ledger
        .void(VoidRequest {
            lane: "1".into(),
            void_id: "V-1".into(),
            redemption_ids: vec!["G-1".into()],
            at: now,
        })
        .await
        .unwrap();
    assert_eq!(
        voided.returned[0].gift_id.as_deref(),
        Some(gift_id.as_str())
    );
    assert_eq!(open(&ledger)(), 1, "the gift is open again");
}
