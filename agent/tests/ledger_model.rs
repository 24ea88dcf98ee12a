//! Property test of the ledger against random sequences of sales, refunds, redemptions and
//! retries: balances never go negative, a retry changes nothing and returns the first answer,
//! and refunding every sale in full with nothing spent nets the balance to zero.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{
    Identity, Ledger, RedeemRequest, RefundOf, RefundRequest, SaleRequest,
};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Sale { cents: i64 },
    Refund { sale: usize, cents: i64 },
    Redeem { points: i64 },
    Retry { of: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..50_000).prop_map(|cents| Op::Sale { cents }),
        2 => (0usize..64, 1i64..50_000).prop_map(|(sale, cents)| Op::Refund { sale, cents }),
        2 => (1i64..300).prop_map(|points| Op::Redeem { points }),
        2 => (0usize..64).prop_map(|of| Op::Retry { of }),
    ]
}

#[derive(Debug, Clone)]
enum Sent {
    Sale(SaleRequest),
    Refund(RefundRequest),
    Redeem(RedeemRequest),
}

/// The answer as the API would send it: the contract is the JSON, whatever the type.
async fn send(ledger: &Ledger, s: &Sent) -> Option<Value> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.expect("answers serialize");
    match s {
        Sent::Sale(r) => ledger
            .sale(r.clone())
            .await
            .ok()
            .map(|o| json(serde_json::to_value(o))),
        Sent::Refund(r) => ledger
            .refund(r.clone())
            .await
            .ok()
            .map(|o| json(serde_json::to_value(o))),
        Sent::Redeem(r) => ledger
            .redeem(r.clone())
            .await
            .ok()
            .map(|o| json(serde_json::to_value(o))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn ledger_keeps_its_promises(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (ledger, _w) = Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
            let member = || Some(Identity::Member("m".into()));
            let mut sent: Vec<(Sent, Option<Value>)> = Vec::new();
            let mut sales: Vec<(String, i64)> = Vec::new();
            let mut spent = false;
            for (i, op) in ops.iter().enumerate() {
                let before = ledger.readers().balance("m").unwrap();
                let request = match op {
                    Op::Sale { cents } => {
                        sales.push((format!("r{i}"), *cents));
                        Sent::Sale(SaleRequest { lane: "1".into(), receipt_id: format!("r{i}"), total_cents: *cents, lines: Vec::new(), redemption_ids: Vec::new(), identity: member(), at: Utc::now() })
                    }
                    Op::Refund { sale, cents } => {
                        let Some((receipt, _)) = sales.get(sale % sales.len().max(1)).cloned() else { continue };
                        Sent::Refund(RefundRequest { lane: "1".into(), refund_id: format!("f{i}"), receipt_id: receipt, what: RefundOf::Cents(*cents), at: Utc::now() })
                    }
                    Op::Redeem { points } => Sent::Redeem(RedeemRequest { lane: "1".into(), redemption_id: format!("d{i}"), member_id: "m".into(), points: *points, at: Utc::now(), offline: false, reward: None }),
                    Op::Retry { of } => {
                        let Some((request, first)) = sent.get(of % sent.len().max(1)).cloned() else { continue };
                        let again = send(&ledger, &request).await;
                        if first.is_some() {
                            prop_assert_eq!(again, first, "a retry answered differently");
                            prop_assert_eq!(ledger.readers().balance("m").unwrap(), before, "a retry changed the balance");
                        }
                        continue;
                    }
                };
                let answer = send(&ledger, &request).await;
                if matches!(request, Sent::Redeem(_)) && answer.is_some() {
                    spent = true;
                }
                sent.push((request, answer));
                prop_assert!(ledger.readers().balance("m").unwrap() >= 0);
            }
            if !spent {
                // Refund what is left of every sale: the balance returns to zero.
                for (receipt, total) in &sales {
                    let refunded: i64 = sent.iter().filter_map(|(s, a)| match (s, a) {
                        (Sent::Refund(r), Some(_)) if &r.receipt_id == receipt => match &r.what { RefundOf::Cents(c) => Some(*c), RefundOf::Lines(_) => None },
                        _ => None,
                    }).sum();
                    if total - refunded > 0 {
                        let r = RefundRequest { lane: "1".into(), refund_id: format!("final-{receipt}"), receipt_id: receipt.clone(), what: RefundOf::Cents(total - refunded), at: Utc::now() };
                        prop_assert!(ledger.refund(r).await.is_ok());
                    }
                }
                prop_assert_eq!(ledger.readers().balance("m").unwrap(), 0);
            }
            Ok(())
        })?;
    }
}
