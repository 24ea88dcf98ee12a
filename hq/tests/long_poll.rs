//! Waiting pulls (`GET /v1/stores/{store}/changes?wait=N`): an idle store's pull is held until
//! a change is committed or the wait ends, so a thousand idle stores are not a thousand
//! requests a second.

mod common;

use std::time::{Duration, Instant};

use common::*;
use loyalty_protocol::{Change, ChangesPage};
use serde_json::{json, Value};

/// The cursor after everything HQ holds now.
async fn caught_up(hq: &Hq, store: &str, token: &str) -> String {
    let (status, body) = hq.changes(store, token, "").await;
    assert_eq!(status, 200, "{body}");
    body["next_cursor"].as_str().unwrap().to_owned()
}

fn parse(status: u16, body: Value) -> ChangesPage {
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Starts a waiting pull and checks it is still waiting a moment later.
async fn waiting(
    hq: &Hq,
    store: &str,
    token: &str,
    query: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let pull = tokio::spawn(hq.pull(store, token, query));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pull.is_finished(), "the pull answered without a change");
    pull
}

/// The waiting pull's answer, which must come within 2 s of `since`.
async fn answered_soon(pull: tokio::task::JoinHandle<(u16, Value)>, since: Instant) -> ChangesPage {
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), pull)
        .await
        .expect("the waiting pull was not answered after the change")
        .unwrap();
    let took = since.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "answered {took:?} after the change"
    );
    parse(status, body)
}

#[tokio::test]
async fn a_waiting_pull_is_answered_as_soon_as_a_member_is_saved() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m0", &[]).await;
    let cursor = caught_up(&hq, "s1", &t).await;

    let pull = waiting(&hq, "s1", &t, &format!("cursor={cursor}&wait=20")).await;
    let saved = Instant::now();
    hq.add_member("carla", &["4006381333931"]).await;
    let page = answered_soon(pull, saved).await;
    assert!(
        matches!(&page.changes[..], [Change::Member(m)] if m.member_id == "carla"),
        "{:?}",
        page.changes
    );
    assert_ne!(page.next_cursor, cursor);
}

#[tokio::test]
async fn a_waiting_pull_is_answered_as_soon_as_a_campaign_changes() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    let cursor = caught_up(&hq, "s1", &t).await;

    let pull = waiting(&hq, "s1", &t, &format!("cursor={cursor}&wait=20")).await;
    let saved = Instant::now();
    let (status, body) = hq
        .admin_put(
            "/v1/admin/campaigns/spring",
            json!({"kind": "points", "multiplier": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = answered_soon(pull, saved).await;
    assert!(
        matches!(&page.changes[..], [Change::Campaign(c)] if c.campaign_id == "spring"),
        "{:?}",
        page.changes
    );

    // A deletion wakes it too.
    let pull = waiting(
        &hq,
        "s1",
        &t,
        &format!("cursor={}&wait=20", page.next_cursor),
    )
    .await;
    let deleted = Instant::now();
    let (status, _) = hq
        .local()
        .admin(reqwest::Method::DELETE, "/v1/admin/campaigns/spring", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let page = answered_soon(pull, deleted).await;
    assert!(matches!(&page.changes[..], [Change::Campaign(c)] if c.deleted));
}

#[tokio::test]
async fn a_waiting_pull_is_answered_when_another_store_redeems_a_gift() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    let cursor = caught_up(&hq, "s2", &t2).await;

    let pull = waiting(&hq, "s2", &t2, &format!("cursor={cursor}&wait=20")).await;
    let pushed = Instant::now();
    let mut redeemed = redemption("s1", 1, "m1", 0);
    redeemed.kind = loyalty_protocol::EventKind::GiftRedeemed;
    redeemed.payload = json!({"gift_id": "g-42", "redemption_id": "rd-1"});
    hq.push("s1", &t1, &[redeemed]).await;
    let page = answered_soon(pull, pushed).await;
    assert!(page.changes.iter().any(
        |c| matches!(c, Change::RedemptionElsewhere(r) if r.gift_id == "g-42" && r.store_id == "s1")
    ));
}

#[tokio::test]
async fn pending_changes_are_answered_at_once_whatever_the_wait() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let asked = Instant::now();
    let page = parse_pull(&hq, "s1", &t, "wait=20").await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(page.changes.len(), 1);
}

async fn parse_pull(hq: &Hq, store: &str, token: &str, query: &str) -> ChangesPage {
    let (status, body) = hq.changes(store, token, query).await;
    parse(status, body)
}

#[tokio::test]
async fn without_a_change_the_empty_page_comes_at_the_end_of_the_wait() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let cursor = caught_up(&hq, "s1", &t).await;
    let asked = Instant::now();
    let page = parse_pull(&hq, "s1", &t, &format!("cursor={cursor}&wait=2")).await;
    let took = asked.elapsed();
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(4)).contains(&took),
        "{took:?}"
    );
    assert!(page.changes.is_empty());
    assert!(!page.has_more);
    assert_eq!(page.next_cursor, cursor);
    // Read when it left, not when the wait began: the store measures its clock skew with it.
    let hq_time = chrono::DateTime::parse_from_rfc3339(&page.hq_time).unwrap();
    let age = chrono::Utc::now() - hq_time.with_timezone(&chrono::Utc);
    assert!(
        age < chrono::Duration::milliseconds(500),
        "hq_time {age:?} old"
    );

    // A change made while nobody waits is in the next pull at once.
    hq.add_member("m2", &[]).await;
    let asked = Instant::now();
    let page = parse_pull(&hq, "s1", &t, &format!("cursor={cursor}&wait=20")).await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(page.changes.len(), 1);
}

#[tokio::test]
async fn a_wait_past_hqs_cap_is_cut_to_the_cap() {
    let hq = Hq::start_with(|raw| raw.max_pull_wait_secs = Some(1)).await;
    let t = hq.add_store("s1").await;
    let cursor = caught_up(&hq, "s1", &t).await;
    let asked = Instant::now();
    let page = parse_pull(&hq, "s1", &t, &format!("cursor={cursor}&wait=3600")).await;
    let took = asked.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&took),
        "{took:?}"
    );
    assert!(page.changes.is_empty());
}

#[tokio::test]
async fn a_wait_that_is_not_whole_seconds_is_400() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    for bad in ["wait=soon", "wait=-1", "wait=1.5"] {
        let (status, body) = hq.changes("s1", &t, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
}

#[tokio::test]
async fn stopping_hq_answers_the_waiting_pulls_at_once() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    let cursor = caught_up(&hq, "s1", &t).await;
    let pull = waiting(&hq, "s1", &t, &format!("cursor={cursor}&wait=30")).await;
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), hq.stop())
        .await
        .expect("HQ's shutdown waited for the pull's whole wait");
    let (status, _) = pull.await.unwrap();
    assert_eq!(status, 200);
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

/// A store drops its waiting pull when it has events to push; HQ must let go of the request
/// then, not hold a connection for the rest of the wait, or a busy chain's dropped pulls would
/// fill the connection cap.
#[tokio::test]
async fn a_pull_the_store_drops_does_not_hold_a_connection() {
    let hq = Hq::start_with(|raw| raw.max_connections = Some(16)).await;
    let t = hq.add_store("s1").await;
    let cursor = caught_up(&hq, "s1", &t).await;
    for _ in 0..40 {
        let pull = tokio::spawn(hq.pull("s1", &t, &format!("cursor={cursor}&wait=30")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        pull.abort();
        let _ = pull.await;
    }
    let asked = Instant::now();
    let (status, body) = hq.changes("s1", &t, &format!("cursor={cursor}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}
