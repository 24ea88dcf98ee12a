//! HQ push bodies: `loyalty_hq::http::parse_push_body`, the parser behind
//! `POST /v1/stores/{store}/events`, pushed to store `s1` (the tests' store) with a limit of 4
//! events per batch, so the fuzzer reaches the 413 too.
//!
//! Invariants for a body that parses: the push carries its `ledger_id`, `after_seq` and as many
//! events as it has, within the limit; every valid event belongs to `s1`, passes
//! `Event::validate`, has the `event_id` and `seq` its JSON has, and survives a serialize/parse
//! round trip; every refused event keeps its text and the `seq` its JSON has, if any; an event
//! that is not even a JSON value (a number past `f64`, say) is refused. A refused body is
//! refused with a 4xx. (serde also reads a struct from a JSON array of its fields in order, so
//! the batch and its events may be arrays: fields are looked up either way.)
//!
//! The body is not checked to be JSON as a whole: serde_json skips fields a batch does not have
//! without checking their strings are UTF-8 (found by this target; harmless, they are never
//! read), and keeps an event's text without checking its numbers fit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyalty_hq::http::parse_push_body;
use loyalty_hq::store::Incoming;
use loyalty_protocol::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
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

/// The batch's fields as written, each event left as its text.
#[derive(Deserialize)]
struct Written<'a> {
    ledger_id: String,
    after_seq: i64,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

fuzz_target!(|body: &[u8]| {
    let push = match parse_push_body(body, STORE, MAX_EVENTS) {
        Ok(push) => push,
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?}");
            return;
        }
    };
    let written: Written<'_> = serde_json::from_slice(body).expect("a parsed body is a batch");
    assert_eq!(written.ledger_id, push.ledger_id);
    assert_eq!(written.after_seq, push.after_seq);
    assert_eq!(written.events.len(), push.events.len());
    assert!(push.events.len() <= MAX_EVENTS);
    for (incoming, raw) in push.events.iter().zip(&written.events) {
        let value = serde_json::from_str::<Value>(raw.get()).ok();
        match incoming {
            Incoming::Valid(e) => {
                let value = value.expect("a valid event is a JSON value");
                assert_eq!(e.store_id, STORE);
                assert_eq!(e.validate(), Ok(()));
                assert_eq!(
                    field(&value, "event_id", 0).as_str(),
                    Some(e.event_id.as_str())
                );
                assert_eq!(field(&value, "seq", 2).as_i64(), Some(e.seq));
                let text = serde_json::to_string(e).expect("an event serializes");
                let again: Event = serde_json::from_str(&text).expect("and parses back");
                assert_eq!(&again, e);
            }
            Incoming::Invalid { seq, raw: text, .. } => {
                assert_eq!(text, raw.get());
                if let (Some(seq), Some(value)) = (seq, &value) {
                    assert_eq!(field(value, "seq", 2).as_i64(), Some(*seq));
                }
            }
        }
    }
});
