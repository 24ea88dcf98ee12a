//! The changes feed: pages, cursors, balances with their watermark, cards, allowances.

mod common;

use common::*;
use loyalty_protocol::{Change, ChangesPage};
use serde_json::json;

async fn page(hq: &Hq, store: &str, token: &str, query: &str) -> ChangesPage {
    let (status, body) = hq.changes(store, token, query).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

fn member(page: &ChangesPage, id: &str) -> loyalty_protocol::MemberRecord {
    page.changes
        .iter()
        .rev()
        .find_map(|c| match c {
            Change::Member(m) if m.member_id == id => Some(m.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{id} not in page {page:?}"))
}

#[tokio::test]
async fn pages_follow_the_cursor_and_end() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    for i in 0..5 {
        hq.add_member(&format!("m{i}"), &[]).await;
    }
    hq.admin_put(
        "/v1/admin/campaigns/spring",
        json!({"kind": "points", "multiplier": 2}),
    )
    .await;

    let p1 = page(&hq, "s1", &t, "limit=4").await;
    assert_eq!(p1.changes.len(), 4);
    assert!(p1.has_more);
    assert!(!p1.hq_time.is_empty());
    let p2 = page(&hq, "s1", &t, &format!("limit=4&cursor={}", p1.next_cursor)).await;
    assert_eq!(p2.changes.len(), 2);
    assert!(!p2.has_more);
    assert!(
        matches!(&p2.changes[1], Change::Campaign(c) if c.campaign_id == "spring" && c.version == 1)
    );
    let p3 = page(&hq, "s1", &t, &format!("cursor={}", p2.next_cursor)).await;
    assert!(p3.changes.is_empty());
    assert_eq!(p3.next_cursor, p2.next_cursor);

    // A sale on m2 brings m2 (only) back, with its new balance.
    hq.push("s1", &t, &[sale("s1", 1, "m2", 7, "r1")]).await;
    let p4 = page(&hq, "s1", &t, &format!("cursor={}", p3.next_cursor)).await;
    assert_eq!(p4.changes.len(), 1);
    assert_eq!(member(&p4, "m2").balance, 7);

    // A campaign edit bumps its version.
    hq.admin_put(
        "/v1/admin/campaigns/spring",
        json!({"kind": "points", "multiplier": 3}),
    )
    .await;
    let p5 = page(&hq, "s1", &t, &format!("cursor={}", p4.next_cursor)).await;
    assert!(
        matches!(&p5.changes[..], [Change::Campaign(c)] if c.version == 2 && c.body["multiplier"] == 3)
    );
}

#[tokio::test]
async fn garbage_or_future_cursor_is_400() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    for bad in ["cursor=banana", "cursor=c1.999", "limit=0", "limit=lots"] {
        let (status, body) = hq.changes("s1", &t, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].is_string());
    }
    let (_, body) = hq.changes("s1", &t, "cursor=banana").await;
    assert_eq!(body["error"], "bad_cursor");
}

#[tokio::test]
async fn balance_watermark_is_this_stores_watermark_with_the_balance() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    hq.push(
        "s1",
        &t1,
        &[sale("s1", 1, "m1", 30, "r1"), sale("s1", 2, "m1", 10, "r2")],
    )
    .await;
    hq.push("s2", &t2, &[sale("s2", 1, "m1", 60, "r1")]).await;

    let p1 = page(&hq, "s1", &t1, "").await;
    let m = member(&p1, "m1");
    assert_eq!(m.balance, 100);
    assert_eq!(m.balance_watermark, 2);
    assert_eq!(p1.watermark, 2);
    // Two stores registered: each may let the member spend half offline.
    assert_eq!(m.offline_allowance, 50);

    let p2 = page(&hq, "s2", &t2, "").await;
    assert_eq!(member(&p2, "m1").balance_watermark, 1);
}

#[tokio::test]
async fn a_card_credit_counts_once_the_card_is_attached() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    // Earned offline on a card HQ did not know.
    hq.push("s1", &t, &[sale("s1", 1, "card:4006381333931", 25, "r1")])
        .await;
    assert_eq!(hq.balance("m1").await, 0);
    let before = page(&hq, "s1", &t, "").await;

    hq.add_member("m1", &["4006381333931"]).await;
    let m = hq.member("m1").await;
    assert_eq!(m["balance"], 25);
    assert_eq!(m["events"], 1);
    assert_eq!(m["cards"], json!(["4006381333931"]));
    let after = page(&hq, "s1", &t, &format!("cursor={}", before.next_cursor)).await;
    let rec = member(&after, "m1");
    assert_eq!(rec.balance, 25);
    assert_eq!(rec.profile.cards, vec!["4006381333931".to_string()]);

    // Later credits on the card account land on the member straight away and bump it.
    hq.push("s1", &t, &[sale("s1", 2, "card:4006381333931", 5, "r2")])
        .await;
    let again = page(&hq, "s1", &t, &format!("cursor={}", after.next_cursor)).await;
    assert_eq!(member(&again, "m1").balance, 30);
}

#[tokio::test]
async fn a_gift_redeemed_at_one_store_reaches_the_others() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    let mut redeemed = redemption("s1", 1, "m1", 0);
    redeemed.kind = loyalty_protocol::EventKind::GiftRedeemed;
    redeemed.payload = json!({"gift_id": "g-42", "redemption_id": "rd-1"});
    hq.push("s1", &t1, &[redeemed]).await;

    let p2 = page(&hq, "s2", &t2, "").await;
    assert!(p2.changes.iter().any(
        |c| matches!(c, Change::RedemptionElsewhere(r) if r.gift_id == "g-42" && r.store_id == "s1")
    ));
    let p1 = page(&hq, "s1", &t1, "").await;
    assert!(!p1
        .changes
        .iter()
        .any(|c| matches!(c, Change::RedemptionElsewhere(_))));
}

/// HQ checks a campaign with the stores' own rules: a misspelt key is refused with the
/// sentences a store would have logged, and nothing reaches the stores.
#[tokio::test]
async fn a_campaign_no_store_could_run_is_refused_with_the_stores_words() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    let (status, body) = hq
        .admin_put(
            "/v1/admin/campaigns/triple",
            json!({"kind": "points", "multipler": 3}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_campaign");
    assert_eq!(
        body["message"],
        "campaign.multipler: unknown key; campaign: a campaign has either `multiplier` or `bonus`"
    );
    let (status, body) = hq
        .admin_put(
            "/v1/admin/campaigns/coffee",
            json!({"kind": "gift", "gift": "Free coffee", "trigger": "dwelled"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let page = page(&hq, "s1", &t, "").await;
    assert!(page.changes.is_empty(), "{:?}", page.changes);
}
