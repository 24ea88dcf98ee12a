//! The ledger's promises, against a real SQLite file: once, durable, refusing when full.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{
    Identity, Ledger, LedgerError, MemberRecord, RedeemRequest, RefundRequest, SaleRequest,
};
use std::sync::Arc;

fn sale(receipt: &str, cents: i64, who: Identity) -> SaleRequest {
    SaleRequest {
        lane: "1".into(),
        receipt_id: receipt.into(),
        total_cents: cents,
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
            tier: None,
            segments: vec![],
            cards: vec!["4006381333931".into()],
            qr_public_key: None,
            proximity_key: None,
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
    assert_eq!(first["member_id"], "m1");
    assert_eq!(first["points_earned"], 12);
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
    assert!(a["member_id"].is_null());
    assert_eq!(a["card"], "5901234123457");
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
        total_cents: cents,
        at: Utc::now(),
    };
    let half = ledger.refund(refund("f1", 1000)).await.unwrap();
    assert_eq!(half["points_taken_back"], 10);
    assert_eq!(ledger.refund(refund("f1", 1000)).await.unwrap(), half);
    assert!(matches!(
        ledger.refund(refund("f2", 1500)).await,
        Err(LedgerError::Refused { .. })
    ));
    let spend = |id: &str, points| RedeemRequest {
        lane: "1".into(),
        redemption_id: id.into(),
        member_id: "m1".into(),
        points,
        at: Utc::now(),
        offline: false,
    };
    assert!(matches!(
        ledger.redeem(spend("x1", 11)).await,
        Err(LedgerError::Refused {
            code: "insufficient_balance",
            ..
        })
    ));
    assert_eq!(ledger.redeem(spend("x2", 10)).await.unwrap()["balance"], 0);
    assert_eq!(ledger.redeem(spend("x2", 10)).await.unwrap()["balance"], 0);
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
    let double = loyalty_agent::config::hq_campaigns::points_campaign(
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
    assert_eq!(before["points_earned"], 10);
    assert_eq!(
        after["points_earned"], 20,
        "HQ's double-points campaign applies"
    );
}
