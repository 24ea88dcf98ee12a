//! A till never waits behind background work: a sale sent after a long queue of background
//! commands (imports here; sync's bookkeeping and presence facts the same way) is answered
//! while most of that queue is still waiting.

use chrono::Utc;
use loyalty_agent::engine::Rules;
use loyalty_agent::ledger::{Identity, Ledger, MemberProfile, MemberRecord, SaleRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IMPORTS: usize = 120;
// Enough work that the queue is still long when the sale is sent, even on a loaded machine.
const MEMBERS_EACH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_overtakes_background_work_queued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _writer) =
        Ledger::open(&dir.path().join("ledger.db"), Arc::new(Rules::default())).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let mut imports = Vec::new();
    for i in 0..IMPORTS {
        let members = (0..MEMBERS_EACH)
            .map(|m| MemberRecord {
                member_id: format!("m-{i}-{m}"),
                profile: MemberProfile::default(),
            })
            .collect();
        let (ledger, done) = (ledger.clone(), done.clone());
        imports.push(tokio::spawn(async move {
            ledger.import_members(members).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Every import is on its way to the writer before the sale is sent.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Judged against what was still queued when the sale left, not against a fixed sleep: a
    // loaded machine may let the writer get through part of the queue first.
    let before = done.load(Ordering::SeqCst);
    assert!(
        before < IMPORTS / 2,
        "the writer got through {before} of {IMPORTS} imports before the sale was sent: too little work to tell"
    );
    ledger
        .sale(SaleRequest {
            lane: "1".into(),
            receipt_id: "r1".into(),
            total_cents: 1250,
            lines: Vec::new(),
            redemption_ids: Vec::new(),
            identity: Some(Identity::Card("4006381333931".into())),
            at: Utc::now(),
        })
        .await
        .unwrap();
    let waited = done.load(Ordering::SeqCst) - before;
    let queued = IMPORTS - before;
    assert!(
        waited < queued / 2,
        "the sale waited for {waited} of the {queued} imports queued before it"
    );
    for import in imports {
        import.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), IMPORTS);
}
