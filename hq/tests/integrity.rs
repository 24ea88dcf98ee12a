//! What no store could have computed, a poisoned event, a card typed another way at HQ, and a
//! push from a ledger HQ does not hold the store's events from: each tried over HTTP.
//!
//! Tried: +10^12 and i64::MAX-ish points (refused, recorded, nobody else affected); 10^6 points
//! for a 1.00 EUR sale, a credit to a member HQ never registered, an event id re-sent with other
//! points (all kept and flagged); cards `ab-12` and `036000291452` at HQ against the scanner's
//! `AB-12` and `0036000291452`; a bad check digit (422); a second ledger, a gap, a seq HQ holds
//! another event at (409, nothing written) and the re-base that ends it.

mod common;

use common::*;
use loyalty_protocol::{EventBatch, OutcomeStatus, PROTOCOL_HEADER, PROTOCOL_VERSION};
use serde_json::{json, Value};

fn batch(store: &str, ledger: &str, after: i64, events: Vec<loyalty_protocol::Event>) -> Value {
    serde_json::to_value(EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: store.into(),
        ledger_id: ledger.into(),
        after_seq: after,
        events,
    })
    .unwrap()
}

#[tokio::test]
async fn a_poisoned_event_is_refused_alone_and_stops_no_other_store_or_member() {
    let hq = Hq::start().await;
    let t1 = hq.add_store("s1").await;
    let t2 = hq.add_store("s2").await;
    hq.add_member("m1", &[]).await;
    hq.add_member("m2", &[]).await;
    let huge = sale("s1", 1, "m1", 1_000_000_000_000, "r1");
    let mut edge = sale("s1", 2, "m1", 1, "r2");
    edge.points = i64::MAX - 5;
    let fine = sale("s1", 3, "m1", 40, "r3");
    let r = hq.push("s1", &t1, &[huge, edge, fine]).await;
    let statuses: Vec<_> = r.outcomes.iter().map(|o| o.status.clone()).collect();
    assert!(
        matches!(statuses[0], OutcomeStatus::Rejected { ref reason } if reason.contains("at most 1000000000")),
        "{statuses:?}"
    );
    assert!(matches!(statuses[1], OutcomeStatus::Rejected { .. }));
    assert_eq!(statuses[2], OutcomeStatus::Accepted);
    assert_eq!(
        r.watermark, 3,
        "the refused events are settled, not blocking"
    );

    // Everything else goes on: the member reads, other stores push and pull, other members earn.
    let m1 = hq.member("m1").await;
    assert_eq!(m1["balance"], 40, "{m1}");
    hq.push("s2", &t2, &[sale("s2", 1, "m2", 7, "x1")]).await;
    hq.push("s1", &t1, &[sale("s1", 4, "m1", 1, "r4")]).await;
    for (store, token) in [("s1", &t1), ("s2", &t2)] {
        let (status, page) = hq.changes(store, token, "").await;
        assert_eq!(status, 200, "{page}");
    }
    assert_eq!(hq.member("m2").await["balance"], 7);
    let rec = hq.reconciliation().await;
    assert_eq!(rec["rejections"].as_array().unwrap().len(), 2, "{rec}");
}

#[tokio::test]
async fn what_no_store_could_compute_is_kept_and_flagged() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let mut greedy = sale("s1", 1, "m1", 1_000_000, "r1");
    greedy.payload = json!({"receipt_id": "r1", "total_cents": 100});
    let stranger = sale("s1", 2, "never-registered", 5, "r2");
    let honest = sale("s1", 3, "m1", 10, "r3");
    let r = hq.push("s1", &t, &[greedy, stranger, honest.clone()]).await;
    assert_eq!(r.outcomes[0].flags, ["implausible_points"]);
    assert_eq!(r.outcomes[1].flags, ["unknown_member"]);
    assert!(r.outcomes[2].flags.is_empty());

    // The same event id again with other content: the first stands, the difference is flagged.
    let mut rewritten = honest;
    rewritten.points = 500;
    let r = hq.push("s1", &t, &[rewritten]).await;
    assert_eq!(r.outcomes[0].status, OutcomeStatus::Duplicate);
    assert_eq!(r.outcomes[0].flags, ["conflicting_duplicate"]);
    assert_eq!(hq.member("m1").await["balance"], 1_000_010);
    let rec = hq.reconciliation().await;
    let flags: Vec<&str> = rec["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap())
        .collect();
    assert_eq!(
        flags,
        [
            "implausible_points",
            "unknown_member",
            "conflicting_duplicate"
        ]
    );
    // The stranger's points are held under that id and count once the member exists.
    hq.add_member("never-registered", &[]).await;
    assert_eq!(hq.member("never-registered").await["balance"], 5);
}

#[tokio::test]
async fn a_card_typed_any_way_at_hq_is_the_card_the_lane_scans() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    let (status, view) = hq
        .admin_put(
            "/v1/admin/members/m1",
            json!({"cards": ["ab-12", " 036000291452 ", "AB-12"]}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["cards"], json!(["0036000291452", "AB-12"]));
    // A lane scanned them and earned under the card accounts.
    hq.push(
        "s1",
        &t,
        &[
            sale("s1", 1, "card:AB-12", 10, "r1"),
            sale("s1", 2, "card:0036000291452", 5, "r2"),
        ],
    )
    .await;
    assert_eq!(hq.member("m1").await["balance"], 15);
    let (status, body) = hq
        .admin_put("/v1/admin/members/m2", json!({"cards": ["4006381333932"]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "bad_card");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("EAN-13 check digit"));
}

#[tokio::test]
async fn another_ledger_a_gap_or_a_conflict_is_refused_whole_until_a_re_base() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let first = [sale("s1", 1, "m1", 10, "r1"), sale("s1", 2, "m1", 10, "r2")];
    hq.push("s1", &t, &first).await;

    let refused = [
        // A cloned box: its own ledger.
        (
            batch(
                "s1",
                "another-ledger",
                2,
                vec![sale("s1", 3, "m1", 1, "c1")],
            ),
            "ledger_conflict",
        ),
        // A gap: seq 4 without 3.
        (
            batch(
                "s1",
                &ledger_of("s1"),
                3,
                vec![sale("s1", 4, "m1", 1, "g1")],
            ),
            "seq_gap",
        ),
        // Not consecutive inside the batch.
        (
            batch(
                "s1",
                &ledger_of("s1"),
                2,
                vec![sale("s1", 3, "m1", 1, "g2"), sale("s1", 5, "m1", 1, "g3")],
            ),
            "seq_gap",
        ),
    ];
    for (body, code) in &refused {
        let (status, answer) = hq.push_raw("s1", Some(&t), body.clone()).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"], *code, "{answer}");
    }
    let restored = batch(
        "s1",
        &ledger_of("s1"),
        1,
        vec![sale("s1", 2, "m1", 99, "after-restore")],
    );
    let (status, answer) = hq.push_raw("s1", Some(&t), restored).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "seq_conflict");
    assert!(answer["message"].as_str().unwrap().contains("rebase"));
    assert_eq!(
        hq.member("m1").await["balance"],
        20,
        "nothing refused was written"
    );

    // The operator's re-base binds a new identity following seq 1.
    let ledger = |method: reqwest::Method, body: Option<Value>| {
        let mut r = hq
            .http
            .request(method, format!("{}/v1/stores/s1/ledger", hq.url))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .bearer_auth(&t);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let state: Value = ledger(reqwest::Method::GET, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["ledger_id"], ledger_of("s1"));
    assert_eq!(state["watermark"], 2);
    let rebound: Value = ledger(
        reqwest::Method::PUT,
        Some(json!({"protocol": PROTOCOL_VERSION, "ledger_id": "restored-1", "after_seq": 1, "reason": "restored backup"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(rebound["ledger_id"], "restored-1");
    assert_eq!(rebound["previous_ledger_id"], ledger_of("s1"));
    let after = batch(
        "s1",
        "restored-1",
        1,
        vec![sale("s1", 2, "m1", 99, "after-restore")],
    );
    let (status, answer) = hq.push_raw("s1", Some(&t), after).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(hq.member("m1").await["balance"], 119);
    let rec = hq.reconciliation().await;
    assert_eq!(
        rec["ledger_bindings"][0]["reason"], "restored backup",
        "{rec}"
    );
    assert_eq!(rec["ledger_bindings"][0]["previous_watermark"], 2, "{rec}");
}

/// A store ledger restored from a backup forgets a refund it made after the backup; the same
/// sale refunded again adds up to more than the sale. Both refunds stand (they happened), the
/// second is flagged for a person.
#[tokio::test]
async fn refunds_past_their_sale_are_flagged() {
    let hq = Hq::start().await;
    let t = hq.add_store("s1").await;
    hq.add_member("m1", &[]).await;
    let r = hq
        .push(
            "s1",
            &t,
            &[
                sale("s1", 1, "m1", 10, "r1"),
                refund("s1", 2, "m1", 6, "r1"),
                refund("s1", 3, "m1", 4, "r1"),
            ],
        )
        .await;
    assert!(r.outcomes.iter().all(|o| o.flags.is_empty()), "{r:?}");
    let again = hq.push("s1", &t, &[refund("s1", 4, "m1", 6, "r1")]).await;
    assert_eq!(
        again.outcomes[0].flags,
        ["refund_exceeds_sale", "overdraft"]
    );
    assert_eq!(hq.member("m1").await["balance"], -6);
}
