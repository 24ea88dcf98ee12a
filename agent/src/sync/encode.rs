//! A push encoded straight from the ledger's rows, in the shape of
//! `loyalty_protocol::EventBatch` (tested against it). Each event's payload is stored as JSON
//! text and goes out as it is, checked but not parsed into a tree and written again: for a
//! batch of 5,000 events, building those trees was most of the allocations, and most of the
//! CPU, of a push.

use crate::ledger::{Outbox, UnsyncedEvent};
use loyalty_protocol::PROTOCOL_VERSION;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Batch<'a> {
    protocol: u32,
    store_id: &'a str,
    ledger_id: &'a str,
    after_seq: i64,
    events: Vec<Event<'a>>,
}

#[derive(Serialize)]
struct Event<'a> {
    event_id: &'a str,
    store_id: &'a str,
    seq: i64,
    kind: &'a str,
    account: Option<&'a str>,
    lane: Option<&'a str>,
    points: i64,
    payload: Payload<'a>,
    rule_version: Option<&'a str>,
    recorded_at: &'a str,
    idempotency_key: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Json(&'a RawValue),
    /// A payload that no longer parses is sent as text: HQ rejects it with a reason and the
    /// event is dead-lettered, instead of blocking the queue here.
    Text(&'a str),
}

fn event<'a>(store: &'a str, e: &'a UnsyncedEvent) -> Event<'a> {
    Event {
        event_id: &e.event_id,
        store_id: store,
        seq: e.seq,
        // The stored kind is the protocol's text (`EventKind` keeps unknown kinds verbatim).
        kind: &e.kind,
        account: e.account.as_deref(),
        lane: e.lane.as_deref(),
        points: e.points,
        payload: serde_json::from_str::<&RawValue>(&e.payload)
            .map_or(Payload::Text(&e.payload), Payload::Json),
        rule_version: e.rule_version.as_deref(),
        recorded_at: &e.recorded_at,
        idempotency_key: &e.idempotency_key,
    }
}

/// The body of `POST /v1/stores/{store}/events` for `outbox`.
pub fn push_body(store: &str, outbox: &Outbox) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Batch {
        protocol: PROTOCOL_VERSION,
        store_id: store,
        ledger_id: &outbox.ledger_id,
        after_seq: outbox.after_seq,
        events: outbox.events.iter().map(|e| event(store, e)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_protocol::{EventBatch, EventKind};

    fn unsynced(seq: i64, kind: &str, payload: &str) -> UnsyncedEvent {
        UnsyncedEvent {
            seq,
            event_id: format!("01900000-0000-7000-8000-{seq:012}"),
            idempotency_key: format!("{kind}:{seq}"),
            kind: kind.into(),
            account: (seq % 2 == 0).then(|| "m1".to_owned()),
            lane: (seq % 3 == 0).then(|| "L\"1\"".to_owned()),
            points: -seq,
            payload: payload.into(),
            rule_version: (seq == 1).then(|| "default".to_owned()),
            recorded_at: "2026-11-30T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_body_reads_back_as_the_protocols_batch() {
        let outbox = Outbox {
            ledger_id: "abc".into(),
            after_seq: 41,
            events: vec![
                unsynced(
                    42,
                    "sale",
                    r#"{"receipt_id":"R\u00e9-1","total_cents":1250,"card":null}"#,
                ),
                unsynced(43, "gift_issued", r#"{ "gift_id": "G-1", "zone": "door" }"#),
                unsynced(44, "some_future_kind", "[1, 2.5, \"x\"]"),
                unsynced(45, "refund", "{not json"),
            ],
        };
        let body = push_body("s1", &outbox).unwrap();
        let batch: EventBatch = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (
                batch.protocol,
                batch.store_id.as_str(),
                batch.ledger_id.as_str(),
                batch.after_seq
            ),
            (PROTOCOL_VERSION, "s1", "abc", 41)
        );
        assert_eq!(batch.events.len(), 4);
        for (sent, row) in batch.events.iter().zip(&outbox.events) {
            assert_eq!(sent.event_id, row.event_id);
            assert_eq!(sent.store_id, "s1");
            assert_eq!(sent.seq, row.seq);
            assert_eq!(sent.kind, EventKind::from(row.kind.clone()));
            assert_eq!(sent.account, row.account);
            assert_eq!(sent.lane, row.lane);
            assert_eq!(sent.points, row.points);
            assert_eq!(sent.rule_version, row.rule_version);
            assert_eq!(sent.recorded_at, row.recorded_at);
            assert_eq!(sent.idempotency_key, row.idempotency_key);
            let expected = serde_json::from_str(&row.payload)
                .unwrap_or_else(|_| serde_json::Value::String(row.payload.clone()));
            assert_eq!(sent.payload, expected);
        }
        assert_eq!(batch.events[1].kind, EventKind::GiftIssued);
        assert_eq!(batch.events[3].payload, serde_json::json!("{not json"));
    }
}
