//! HQ push bodies: `loyalty_hq::http::parse_push_body`, the parser behind
//! `POST /v1/stores/{store}/events`, pushed to store `s1` (the tests' store) with a limit of 4
//! events per batch, so the fuzzer reaches the 413 too.
//!
//! Invariants for a body that parses: it is a JSON object whose `ledger_id`, `after_seq` and
//! number of `events` are what the push carries, within the limit; every valid event belongs to
//! `s1`, passes `Event::validate`, has the `event_id` and `seq` its JSON has, and survives a
//! serialize/parse round trip; every refused event carries the `seq` its JSON has, if any.
//! A refused body is refused with a 4xx. (serde also reads a struct from a JSON array of its
//! fields in order, so the batch and its events may be arrays: fields are looked up either way.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyalty_hq::http::parse_push_body;
use loyalty_hq::store::Incoming;
use loyalty_protocol::Event;
use serde_json::Value;

const STORE: &str = "s1";
const MAX_EVENTS: usize = 4;

/// Field `name` of an object, or element `index` of an array (serde's sequence form).
fn field<'a>(value: &'a Value, name: &str, index: usize) -> &'a Value {
    match value {
        Value::Array(items) => items.get(index).unwrap_or(&Value::Null),
        other => &other[name],
    }
}

fuzz_target!(|body: &[u8]| {
    let push = match parse_push_body(body, STORE, MAX_EVENTS) {
        Ok(push) => push,
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?}");
            return;
        }
    };
    let json: Value = serde_json::from_slice(body).expect("a parsed body is JSON");
    assert_eq!(
        field(&json, "ledger_id", 2).as_str(),
        Some(push.ledger_id.as_str())
    );
    assert_eq!(field(&json, "after_seq", 3).as_i64(), Some(push.after_seq));
    let events = field(&json, "events", 4)
        .as_array()
        .expect("events is an array");
    assert_eq!(events.len(), push.events.len());
    assert!(push.events.len() <= MAX_EVENTS);
    for (incoming, raw) in push.events.iter().zip(events) {
        match incoming {
            Incoming::Valid(e) => {
                assert_eq!(e.store_id, STORE);
                assert_eq!(e.validate(), Ok(()));
                assert_eq!(
                    field(raw, "event_id", 0).as_str(),
                    Some(e.event_id.as_str())
                );
                assert_eq!(field(raw, "seq", 2).as_i64(), Some(e.seq));
                let text = serde_json::to_string(e).expect("an event serializes");
                let again: Event = serde_json::from_str(&text).expect("and parses back");
                assert_eq!(&again, e);
            }
            Incoming::Invalid { seq, raw: text, .. } => {
                if let Some(seq) = seq {
                    assert_eq!(field(raw, "seq", 2).as_i64(), Some(*seq));
                }
                let _: Value = serde_json::from_str(text).expect("a refused event is JSON");
            }
        }
    }
});
