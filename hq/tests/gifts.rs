//! A once-per-member gift handed out by two offline stores: HQ keeps the earlier one.

mod common;

use common::*;
use loyalty_protocol::OutcomeStatus;

async fn duplicate_flags(hq: &Hq) -> Vec<serde_json::Value> {
    hq.reconciliation().await["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["flag"] == "duplicate_gift")
        .cloned()
        .collect()
}

#[tokio::test]
async fn later_gift_arriving_second_is_flagged() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    let earlier = gift("s1", 1, "m1", "welcome", &at(10));
    let later = gift("s2", 1, "m1", "welcome", &at(20));

    let a = hq.push("s1", &t1, std::slice::from_ref(&earlier)).await;
    assert!(a.outcomes[0].flags.is_empty());
    let b = hq.push("s2", &t2, std::slice::from_ref(&later)).await;
    assert_eq!(b.outcomes[0].status, OutcomeStatus::Accepted);
    assert_eq!(b.outcomes[0].flags, vec!["duplicate_gift"]);

    let flags = duplicate_flags(&hq).await;
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0]["event_id"], later.event_id);
    assert_eq!(flags[0]["store_id"], "s2");
    // Both were handed out: both stay stored.
    assert_eq!(hq.member("m1").await["events"], 2);
}

#[tokio::test]
async fn later_gift_arriving_first_is_flagged_when_the_earlier_arrives() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    let earlier = gift("s1", 1, "m1", "welcome", &at(10));
    let later = gift("s2", 1, "m1", "welcome", &at(20));

    let b = hq.push("s2", &t2, std::slice::from_ref(&later)).await;
    assert!(
        b.outcomes[0].flags.is_empty(),
        "nothing to compare with yet"
    );
    let a = hq.push("s1", &t1, std::slice::from_ref(&earlier)).await;
    assert!(a.outcomes[0].flags.is_empty(), "the earlier one is kept");

    let flags = duplicate_flags(&hq).await;
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0]["event_id"], later.event_id);
    assert_eq!(flags[0]["store_id"], "s2");

    // A third, later still, is flagged against the kept one; a re-push changes nothing.
    let third = gift("s1", 2, "m1", "welcome", &at(30));
    let c = hq.push("s1", &t1, &[earlier, third]).await;
    assert_eq!(c.outcomes[0].status, OutcomeStatus::Duplicate);
    assert_eq!(c.outcomes[1].flags, vec!["duplicate_gift"]);
    assert_eq!(duplicate_flags(&hq).await.len(), 2);
}

#[tokio::test]
async fn other_members_and_campaigns_are_not_duplicates() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let r = hq
        .push(
            "s1",
            &t1,
            &[
                gift("s1", 1, "m1", "welcome", &at(1)),
                gift("s1", 2, "m2", "welcome", &at(2)),
                gift("s1", 3, "m1", "spring", &at(3)),
            ],
        )
        .await;
    assert!(r.outcomes.iter().all(|o| o.flags.is_empty()));
    assert!(duplicate_flags(&hq).await.is_empty());
}
