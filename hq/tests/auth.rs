//! Who may push and pull: a store's token, for that store only.

mod common;

use common::*;
use loyalty_protocol::{EventBatch, PROTOCOL_VERSION};
use serde_json::json;

fn batch(store: &str, events: Vec<loyalty_protocol::Event>) -> serde_json::Value {
    serde_json::to_value(EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: store.into(),
        ledger_id: ledger_of(store),
        after_seq: events.first().map_or(0, |e| e.seq - 1),
        events,
    })
    .unwrap()
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_and_writes_nothing() {
    let hq = Hq::start().await;
    hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let events = vec![sale("s1", 1, "m1", 10, "r1")];

    let (status, body) = hq.push_raw("s1", None, batch("s1", events.clone())).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = hq
        .push_raw("s1", Some("not-a-token-of-anyone"), batch("s1", events))
        .await;
    assert_eq!(status, 401);
    let (status, _) = hq.changes("s1", "not-a-token-of-anyone", "").await;
    assert_eq!(status, 401);

    assert_eq!(hq.member("m1").await["events"], 0);
    assert!(hq.peek().account_balances().unwrap().is_empty());
}

#[tokio::test]
async fn another_stores_token_or_events_are_403_and_write_nothing() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;

    // s1's token on s2's path.
    let (status, body) = hq
        .push_raw(
            "s2",
            Some(&t1),
            batch("s2", vec![sale("s2", 1, "m1", 10, "r1")]),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    let (status, _) = hq.changes("s2", &t1, "").await;
    assert_eq!(status, 403);

    // s2's own path and token, but one event inside claims s1: the whole batch is refused.
    let mixed = vec![sale("s2", 1, "m1", 10, "r1"), sale("s1", 2, "m1", 10, "r2")];
    let (status, body) = hq.push_raw("s2", Some(&t2), batch("s2", mixed)).await;
    assert_eq!(status, 403, "{body}");
    // The batch header naming another store is refused too.
    let (status, _) = hq
        .push_raw(
            "s2",
            Some(&t2),
            batch("s1", vec![sale("s1", 1, "m1", 10, "r1")]),
        )
        .await;
    assert_eq!(status, 403);

    assert_eq!(hq.balance("m1").await, 0);
    assert!(hq.peek().account_balances().unwrap().is_empty());
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let hq = Hq::start().await;
    let r = hq
        .http
        .put(format!("{}/v1/admin/stores/s1", hq.url))
        .json(&json!({"token": "whatever-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = hq
        .http
        .get(format!("{}/v1/admin/reconciliation", hq.url))
        .bearer_auth("wrong-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A store token is not an admin token.
    let t1 = hq.add_store("s1").await;
    let r = hq
        .http
        .get(format!("{}/v1/admin/members/m1", hq.url))
        .bearer_auth(t1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_token_names_one_store() {
    let hq = Hq::start().await;
    hq.admin_put("/v1/admin/stores/s1", json!({"token": "shared-token-1"}))
        .await;
    let (status, body) = hq
        .admin_put("/v1/admin/stores/s2", json!({"token": "shared-token-1"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "token_taken");
}

/// A store's token is held as its SHA-256 only: the admin API never answers it, and a copy of
/// HQ's database holds nothing a store could push with.
#[tokio::test]
async fn store_tokens_are_kept_as_hashes_and_never_answered() {
    let hq = Hq::start().await;
    let token = "s1-plain-secret-token";
    let (status, body) = hq
        .admin_put("/v1/admin/stores/s1", json!({ "token": token }))
        .await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains(token), "{body}");
    let (status, _) = hq.changes("s1", token, "").await;
    assert_eq!(status, 200, "the token works");

    hq.admin_put(
        "/v1/admin/stores/s1",
        json!({ "token": "s1-new-secret-token" }),
    )
    .await;
    let (status, _) = hq.changes("s1", token, "").await;
    assert_eq!(status, 401, "a replaced token no longer works");
    let (status, _) = hq.changes("s1", "s1-new-secret-token", "").await;
    assert_eq!(status, 200);

    let held = hq.query("SELECT token_sha256 FROM stores WHERE store_id = 's1'");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].len(), 64, "{held:?}");
    let bytes = hq.database_bytes();
    for secret in [token, "s1-new-secret-token"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in HQ's database file"
        );
    }
}
