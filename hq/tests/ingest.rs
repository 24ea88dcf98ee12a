//! Pushing events: idempotence, the reconciliation rules, malformed events, limits, versions.

mod common;

use common::*;
use loyalty_protocol::{OutcomeStatus, PROTOCOL_HEADER, PROTOCOL_VERSION};
use serde_json::json;

fn flags_named<'a>(rec: &'a serde_json::Value, flag: &str) -> Vec<&'a serde_json::Value> {
    rec["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["flag"] == flag)
        .collect()
}

#[tokio::test]
async fn pushing_twice_reports_duplicates_and_changes_no_balance() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let events = vec![
        sale("s1", 1, "m1", 10, "r1"),
        sale("s1", 2, "m1", 5, "r2"),
        redemption("s1", 3, "m1", 4),
    ];
    let first = hq.push("s1", &t, &events).await;
    assert!(first
        .outcomes
        .iter()
        .all(|o| o.status == OutcomeStatus::Accepted));
    assert_eq!(first.watermark, 3);
    assert_eq!(hq.balance("m1").await, 11);

    let again = hq.push("s1", &t, &events).await;
    assert!(again
        .outcomes
        .iter()
        .all(|o| o.status == OutcomeStatus::Duplicate));
    assert_eq!(again.watermark, 3);
    let m = hq.member("m1").await;
    assert_eq!(m["balance"], 11);
    assert_eq!(m["events"], 3);
    assert!(hq.peek().balance_drift().unwrap().is_empty());
}

#[tokio::test]
async fn a_refund_links_to_its_sale_or_is_flagged() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let r = hq
        .push(
            "s1",
            &t,
            &[
                sale("s1", 1, "m1", 20, "r1"),
                refund("s1", 2, "m1", 8, "r1"),
                refund("s1", 3, "m1", 2, "r-unknown"),
            ],
        )
        .await;
    assert!(r.outcomes[1].flags.is_empty(), "{:?}", r.outcomes[1]);
    let link = hq.query(&format!(
        "SELECT link_event_id FROM events WHERE event_id = '{}'",
        r.outcomes[1].event_id
    ));
    assert_eq!(link, vec![r.outcomes[0].event_id.clone()]);
    assert_eq!(r.outcomes[2].flags, vec!["refund_without_sale"]);
    // The refund still takes its points: the store did it.
    assert_eq!(hq.balance("m1").await, 10);
    let rec = hq.reconciliation().await;
    let flagged = flags_named(&rec, "refund_without_sale");
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["event_id"], r.outcomes[2].event_id);
    assert_eq!(flagged[0]["store_id"], "s1");
    assert_eq!(flagged[0]["member"], "m1");
}

#[tokio::test]
async fn an_overdraft_is_kept_and_flagged() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    hq.push("s1", &t1, &[sale("s1", 1, "m1", 100, "r1")]).await;
    // Both stores spent 80 while offline from each other.
    let a = hq.push("s1", &t1, &[redemption("s1", 2, "m1", 80)]).await;
    assert!(a.outcomes[0].flags.is_empty());
    let b = hq.push("s2", &t2, &[redemption("s2", 1, "m1", 80)]).await;
    assert_eq!(b.outcomes[0].status, OutcomeStatus::Accepted);
    assert_eq!(b.outcomes[0].flags, vec!["overdraft"]);
    assert_eq!(hq.balance("m1").await, -60);
    let rec = hq.reconciliation().await;
    let over = flags_named(&rec, "overdraft");
    assert_eq!(over.len(), 1);
    assert_eq!(over[0]["event_id"], b.outcomes[0].event_id);
    assert_eq!(over[0]["store_id"], "s2");
    assert_eq!(over[0]["member"], "m1");
    assert_eq!(hq.member("m1").await["flags"][0]["flag"], "overdraft");
}

#[tokio::test]
async fn malformed_events_are_rejected_alone_and_recorded() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let good = sale("s1", 1, "m1", 10, "r1");
    let negative = sale("s1", 2, "m1", -10, "r2");
    let mut unknown = serde_json::to_value(sale("s1", 3, "m1", 10, "r3")).unwrap();
    unknown["kind"] = json!("teleport");
    let mut no_receipt = sale("s1", 4, "m1", 10, "r4");
    no_receipt.payload = json!({"total_cents": 1000});
    let broken = json!({"event_id": "broken-1", "store_id": "s1", "seq": 5, "kind": "sale", "points": "ten"});
    let body = json!({
        "protocol": PROTOCOL_VERSION, "store_id": "s1", "ledger_id": ledger_of("s1"), "after_seq": 0,
        "events": [good, negative, unknown, no_receipt, broken],
    });
    let (status, body) = hq.push_raw("s1", Some(&t), body).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> = body["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "rejected", "rejected", "rejected", "rejected"]
    );
    assert!(body["outcomes"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("teleport"));
    assert_eq!(body["outcomes"][4]["event_id"], "broken-1");
    // Rejected events are settled too: the watermark covers them.
    assert_eq!(body["watermark"], 5);
    assert_eq!(hq.balance("m1").await, 10);
    let rec = hq.reconciliation().await;
    assert_eq!(rec["rejections"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn too_many_events_is_413_with_a_message() {
    let hq = Hq::start_with(|c| c.max_batch_events = Some(3)).await;
    let t = hq.add_store("s1").await;
    let events: Vec<_> = (1..=4)
        .map(|i| sale("s1", i, "m1", 1, &format!("r{i}")))
        .collect();
    let body = json!({"protocol": PROTOCOL_VERSION, "store_id": "s1", "ledger_id": ledger_of("s1"), "after_seq": 0, "events": events});
    let (status, body) = hq.push_raw("s1", Some(&t), body).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "batch_too_large");
    assert!(body["message"].as_str().unwrap().contains("at most 3"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let hq = Hq::start_with(|c| c.max_body_bytes = Some(4096)).await;
    let t = hq.add_store("s1").await;
    let events: Vec<_> = (1..=40)
        .map(|i| sale("s1", i, "m1", 1, &format!("r{i}")))
        .collect();
    let body = json!({"protocol": PROTOCOL_VERSION, "store_id": "s1", "ledger_id": ledger_of("s1"), "after_seq": 0, "events": events});
    let (status, body) = hq.push_raw("s1", Some(&t), body).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "body_too_large");
}

#[tokio::test]
async fn a_protocol_mismatch_is_400_naming_both_versions() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    let body = json!({"protocol": 3, "store_id": "s1", "events": [{"something": "new"}]});
    let (status, body) = hq.push_raw("s1", Some(&t), body).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "protocol_version", "message": "agent speaks 3, HQ speaks 2"})
    );

    let r = hq
        .http
        .get(format!("{}/v1/stores/s1/changes", hq.url))
        .header(PROTOCOL_HEADER, "3")
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()[PROTOCOL_HEADER], "2");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "protocol_version");
}

#[tokio::test]
async fn garbage_bodies_are_400_not_500() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    // The last: valid JSON but for invalid UTF-8 in a field HQ ignores (found by fuzzing).
    let mut not_utf8 =
        br#"{"protocol": 2, "store_id": "s1", "ledger_id": "l", "after_seq": 0, "x": "#.to_vec();
    not_utf8.extend_from_slice(b"\"\xff\", \"events\": []}");
    let bodies: [&[u8]; 5] = [b"", b"not json", b"[]", b"{\"protocol\": 2}", &not_utf8];
    for body in bodies {
        let r = hq
            .http
            .post(format!("{}/v1/stores/s1/events", hq.url))
            .bearer_auth(&t)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{:?}", String::from_utf8_lossy(body));
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"], "bad_request");
    }
}
