//! The operator's view: the store list with each store's contacts, and HQ's `/metrics`.

mod common;

use common::{ledger_of, Hq};
use loyalty_protocol::{PROTOCOL_HEADER, PROTOCOL_VERSION};

#[tokio::test]
async fn the_store_list_shows_pushes_pulls_events_today_and_the_agent_version() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    let events = [
        common::sale("s1", 1, "m1", 10, "r1"),
        common::sale("s1", 2, "m1", 5, "r2"),
    ];
    let r = hq
        .http
        .post(format!("{}/v1/stores/s1/events", hq.url))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .header("user-agent", "loyalty-agent/9.8.7")
        .bearer_auth(&t1)
        .json(&loyalty_protocol::EventBatch {
            protocol: PROTOCOL_VERSION,
            store_id: "s1".into(),
            ledger_id: ledger_of("s1"),
            after_seq: 0,
            events: events.to_vec(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A re-push stores nothing new: today's count stays.
    hq.push("s1", &t1, &events).await;
    let (s, _) = hq.changes("s1", &t1, "").await;
    assert_eq!(s, 200);

    let (s, body) = hq.admin_get("/v1/admin/stores").await;
    assert_eq!(s, 200, "{body}");
    let stores = body["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    let s1 = &stores[0];
    assert_eq!(s1["store_id"], "s1");
    assert_eq!(s1["ledger_id"], ledger_of("s1"));
    assert_eq!(s1["watermark"], 2);
    assert_eq!(s1["events_today"], 2);
    assert_eq!(s1["agent_version"], "9.8.7");
    assert!(s1["last_push_at"].is_string());
    assert!(s1["last_pull_at"].is_string());
    let s2 = &stores[1];
    assert_eq!(s2["ledger_id"], serde_json::Value::Null);
    assert_eq!(s2["events_today"], 0);
    assert_eq!(s2["last_push_at"], serde_json::Value::Null);

    let r = hq
        .http
        .get(format!("{}/v1/admin/stores", hq.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    hq.stop().await;
}

#[tokio::test]
async fn metrics_count_ingest_flags_contacts_and_routes() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    hq.push("s1", &t1, &[common::sale("s1", 1, "m1", 10, "r1")])
        .await;
    let r = hq
        .http
        .get(format!("{}/metrics", hq.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("loyalty_hq_events_stored_total 1"), "{text}");
    assert!(
        text.contains("loyalty_hq_push_duration_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains("loyalty_hq_store_last_contact_seconds{store=\"s1\"}"),
        "{text}"
    );
    assert!(
        text.contains(r#"loyalty_hq_http_requests_total{method="PUT",route="/v1/admin/members/{member_id}",status="200"} 1"#),
        "{text}"
    );
    hq.stop().await;
}

#[tokio::test]
async fn a_members_history_pages_newest_first_with_card_events_and_flags() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    hq.add_member("m1", &["CARD-77"]).await;
    let events: Vec<_> = (1..=5)
        .map(|seq| {
            let account = if seq == 3 { "card:CARD-77" } else { "m1" };
            let mut e = common::sale("s1", seq, account, 10 * seq, &format!("r{seq}"));
            e.recorded_at = common::at(seq as u32);
            e
        })
        .collect();
    hq.push("s1", &t1, &events).await;
    // A refund of more than the sale: flagged.
    let mut refund = common::refund("s1", 6, "m1", 500, "r1");
    refund.recorded_at = common::at(6);
    hq.push("s1", &t1, &[refund]).await;

    let (s, page) = hq.admin_get("/v1/admin/members/m1/events?limit=4").await;
    assert_eq!(s, 200, "{page}");
    let seqs: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [6, 5, 4, 3]);
    assert_eq!(page["items"][3]["account"], "card:CARD-77");
    assert_eq!(
        page["items"][0]["flags"][0], "refund_exceeds_sale",
        "{page}"
    );
    let before = page["next_before"].as_str().unwrap();
    let (s, older) = hq
        .admin_get(&format!(
            "/v1/admin/members/m1/events?limit=4&before={before}"
        ))
        .await;
    assert_eq!(s, 200, "{older}");
    let seqs: Vec<i64> = older["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 1]);
    assert_eq!(older["next_before"], serde_json::Value::Null);

    assert_eq!(hq.admin_get("/v1/admin/members/nobody/events").await.0, 404);
    let (s, body) = hq.admin_get("/v1/admin/members/m1/events?before=zz!").await;
    assert_eq!((s, body["error"].as_str()), (400, Some("bad_cursor")));
    hq.stop().await;
}

#[tokio::test]
async fn the_reconciliation_report_filters_by_store_flag_and_time() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    // Credits to members HQ never registered: `unknown_member` at both stores.
    hq.push("s1", &t1, &[common::sale("s1", 1, "ghost-1", 10, "r1")])
        .await;
    hq.push("s2", &t2, &[common::sale("s2", 1, "ghost-2", 10, "r1")])
        .await;
    hq.push("s2", &t2, &[common::refund("s2", 2, "ghost-2", 50, "r1")])
        .await;

    let all = hq.reconciliation().await;
    let (s, same) = hq.admin_get("/v1/admin/reconciliation?store=&flag=").await;
    assert_eq!(s, 200);
    assert_eq!(same, all, "empty parameters filter nothing");
    let flags = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["store_id"].as_str().unwrap().to_owned(),
                    f["flag"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert!(flags(&all).len() >= 3, "{all}");

    let (_, s2) = hq.admin_get("/v1/admin/reconciliation?store=s2").await;
    assert!(flags(&s2).iter().all(|(s, _)| s == "s2"), "{s2}");
    assert!(!flags(&s2).is_empty());
    assert_eq!(s2["ledger_bindings"].as_array().unwrap().len(), 1);

    let (_, refunds) = hq
        .admin_get("/v1/admin/reconciliation?flag=refund_exceeds_sale")
        .await;
    assert_eq!(
        flags(&refunds),
        [("s2".to_owned(), "refund_exceeds_sale".to_owned())]
    );
    assert_eq!(refunds["ledger_bindings"], serde_json::json!([]));

    let (_, future) = hq
        .admin_get("/v1/admin/reconciliation?since=2999-01-01T00:00:00Z")
        .await;
    assert!(flags(&future).is_empty());
    assert_eq!(future["ledger_bindings"], serde_json::json!([]));
    let (_, past) = hq
        .admin_get("/v1/admin/reconciliation?until=2999-01-01T00:00:00%2B02:00")
        .await;
    assert_eq!(flags(&past), flags(&all));

    let (s, body) = hq
        .admin_get("/v1/admin/reconciliation?since=yesterday")
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = hq.admin_get("/v1/admin/reconciliation?shop=s1").await;
    assert_eq!(s, 400);
    hq.stop().await;
}
