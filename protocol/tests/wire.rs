//! The JSON shapes agent and HQ exchange, as they appear on the wire.

use loyalty_protocol::*;
use serde_json::json;

fn sale() -> Event {
    Event {
        event_id: "0190f5a2-7c1e-7000-8000-000000000001".into(),
        store_id: "store-042".into(),
        seq: 7,
        kind: EventKind::Sale,
        account: Some("m-1".into()),
        lane: Some("1".into()),
        points: 12,
        payload: json!({"receipt_id": "r-1", "total_cents": 1234, "card": null, "member_id": "m-1"}),
        rule_version: Some("points-v1".into()),
        recorded_at: "2025-03-01T10:15:00.123Z".into(),
        idempotency_key: "r-1".into(),
    }
}

#[test]
fn batch_round_trips_and_kind_is_a_plain_string() {
    let batch = EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: "store-042".into(),
        ledger_id: "0f3c9a".into(),
        after_seq: 6,
        events: vec![sale()],
    };
    let text = serde_json::to_value(&batch).unwrap();
    assert_eq!(text["events"][0]["kind"], "sale");
    assert_eq!(text["protocol"], 2);
    assert_eq!(text["ledger_id"], "0f3c9a");
    assert_eq!(text["after_seq"], 6);
    let back: EventBatch = serde_json::from_value(text).unwrap();
    assert_eq!(back, batch);
}

#[test]
fn every_known_kind_round_trips() {
    for k in [
        "sale",
        "refund",
        "redemption",
        "gift_issued",
        "gift_redeemed",
    ] {
        let kind: EventKind = serde_json::from_value(json!(k)).unwrap();
        assert!(!matches!(kind, EventKind::Unknown(_)), "{k}");
        assert_eq!(serde_json::to_value(&kind).unwrap(), json!(k));
    }
}

#[test]
fn unknown_kind_deserializes_and_is_rejected_by_validate() {
    let mut v = serde_json::to_value(sale()).unwrap();
    v["kind"] = json!("teleport");
    let e: Event = serde_json::from_value(v).unwrap();
    assert_eq!(e.kind, EventKind::Unknown("teleport".into()));
    assert_eq!(serde_json::to_value(&e).unwrap()["kind"], "teleport");
    assert_eq!(
        e.validate(),
        Err(InvalidEvent::UnknownKind("teleport".into()))
    );
}

#[test]
fn validate_rejects_what_hq_must_not_store() {
    assert_eq!(sale().validate(), Ok(()));

    let mut negative_sale = sale();
    negative_sale.points = -5;
    assert!(matches!(
        negative_sale.validate(),
        Err(InvalidEvent::BadSign { .. })
    ));

    let mut no_receipt = sale();
    no_receipt.payload = json!({"total_cents": 100});
    assert!(matches!(
        no_receipt.validate(),
        Err(InvalidEvent::MissingField {
            field: "receipt_id",
            ..
        })
    ));

    let mut no_account = sale();
    no_account.account = None;
    assert_eq!(no_account.validate(), Err(InvalidEvent::NoAccount));

    let mut bad_time = sale();
    bad_time.recorded_at = "yesterday".into();
    assert!(matches!(bad_time.validate(), Err(InvalidEvent::BadTime(_))));

    let mut redemption = sale();
    redemption.kind = EventKind::Redemption;
    redemption.points = -10;
    redemption.payload = json!({"redemption_id": "x"});
    assert_eq!(
        redemption.validate(),
        Err(InvalidEvent::RedemptionWithoutTarget)
    );
    redemption.payload = json!({"redemption_id": "x", "points": 10});
    assert_eq!(redemption.validate(), Ok(()));
}

#[test]
fn outcomes_are_flat_objects_tagged_by_status() {
    let resp = PushResponse {
        protocol: PROTOCOL_VERSION,
        outcomes: vec![
            EventOutcome {
                event_id: "a".into(),
                status: OutcomeStatus::Accepted,
                flags: vec!["overdraft".into()],
            },
            EventOutcome {
                event_id: "b".into(),
                status: OutcomeStatus::Duplicate,
                flags: vec![],
            },
            EventOutcome {
                event_id: "c".into(),
                status: OutcomeStatus::Rejected {
                    reason: "unknown event kind".into(),
                },
                flags: vec![],
            },
        ],
        watermark: 9,
        hq_time: "2025-03-01T10:15:00.123Z".into(),
    };
    let v = serde_json::to_value(&resp).unwrap();
    assert_eq!(
        v["outcomes"],
        json!([
            {"event_id": "a", "status": "accepted", "flags": ["overdraft"]},
            {"event_id": "b", "status": "duplicate", "flags": []},
            {"event_id": "c", "status": "rejected", "reason": "unknown event kind", "flags": []},
        ])
    );
    assert_eq!(serde_json::from_value::<PushResponse>(v).unwrap(), resp);
}

#[test]
fn changes_page_round_trips_with_type_tags() {
    let page = ChangesPage {
        protocol: PROTOCOL_VERSION,
        ledger_id: Some("0f3c9a".into()),
        changes: vec![
            Change::Member(MemberRecord {
                member_id: "m-1".into(),
                profile: MemberProfile {
                    tier: Some("gold".into()),
                    segments: vec!["family".into()],
                    cards: vec!["4006381333931".into()],
                    qr_public_key: None,
                    proximity_key: Some("k".into()),
                    display_name: None,
                },
                balance: 120,
                balance_watermark: 7,
                offline_allowance: 60,
            }),
            Change::Campaign(CampaignRecord {
                campaign_id: "spring".into(),
                version: 2,
                body: json!({"kind": "gift"}),
                deleted: false,
            }),
            Change::RedemptionElsewhere(GiftRedeemedElsewhere {
                gift_id: "g-1".into(),
                member_id: Some("m-1".into()),
                store_id: "store-007".into(),
                event_id: "e".into(),
            }),
        ],
        next_cursor: "3".into(),
        has_more: false,
        hq_time: "2025-03-01T10:15:00.123Z".into(),
        watermark: 7,
    };
    let v = serde_json::to_value(&page).unwrap();
    assert_eq!(v["changes"][0]["type"], "member");
    assert_eq!(v["changes"][1]["type"], "campaign");
    assert_eq!(v["changes"][2]["type"], "redemption_elsewhere");
    assert_eq!(serde_json::from_value::<ChangesPage>(v).unwrap(), page);
}

#[test]
fn version_mismatch_names_both_versions() {
    assert_eq!(check_version(PROTOCOL_VERSION), Ok(()));
    let err = check_version(3).unwrap_err();
    assert_eq!(
        err,
        VersionMismatch {
            found: 3,
            expected: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "protocol version mismatch: the other end speaks 3, this end speaks 2"
    );
}

#[test]
fn card_accounts_carry_the_prefix() {
    assert_eq!(card_account("4006381333931"), "card:4006381333931");
    assert!(card_account("1").starts_with(CARD_ACCOUNT_PREFIX));
}
