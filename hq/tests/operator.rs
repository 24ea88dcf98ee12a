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
