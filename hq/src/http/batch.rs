//! Splitting a pushed body into events, each checked on its own.
//!
//! The batch is parsed with each event left raw, so one malformed event (an unknown kind, a
//! missing field, a wrong type) is rejected alone instead of failing the whole batch. An event
//! claiming another store is different: the whole push is refused (403) and nothing is written.

use loyalty_protocol::{check_version, Event};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::store::{Incoming, Push};

#[derive(Deserialize)]
struct RawBatch<'a> {
    protocol: u32,
    store_id: String,
    ledger_id: String,
    after_seq: i64,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Just enough of any body to tell a protocol mismatch from garbage.
#[derive(Deserialize)]
struct VersionOnly {
    protocol: u32,
}

/// What can be read from an event too malformed to parse as an [`Event`].
#[derive(Deserialize, Default)]
struct Fragments {
    event_id: Option<serde_json::Value>,
    store_id: Option<serde_json::Value>,
    seq: Option<serde_json::Value>,
}

pub fn parse(body: &[u8], store: &str, max_events: usize) -> Result<Push, ApiError> {
    // JSON is UTF-8; serde skips fields it ignores without looking inside their strings, so a
    // body with invalid UTF-8 there would otherwise pass (found by fuzzing).
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::bad_request(format!(
            "the body is not UTF-8 (byte {}): JSON must be",
            e.valid_up_to()
        )));
    }
    let batch: RawBatch<'_> = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            if let Ok(v) = serde_json::from_slice::<VersionOnly>(body) {
                check_version(v.protocol)?;
            }
            return Err(ApiError::bad_request(format!(
                "body is not an event batch {{\"protocol\", \"store_id\", \"ledger_id\", \"after_seq\", \"events\": [...]}}: {e}"
            )));
        }
    };
    check_version(batch.protocol)?;
    if batch.store_id != store {
        return Err(ApiError::forbidden(format!(
            "batch is for store {}, pushed to store {store}",
            batch.store_id
        )));
    }
    if batch.events.len() > max_events {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events in one batch; HQ takes at most {max_events}: split the batch",
                batch.events.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(batch.events.len());
    for (i, raw) in batch.events.into_iter().enumerate() {
        match serde_json::from_str::<Event>(raw.get()) {
            Ok(e) => {
                if e.store_id != store {
                    return Err(foreign(i, &e.event_id, &e.store_id, store));
                }
                match e.validate() {
                    Ok(()) => out.push(Incoming::Valid(e)),
                    Err(why) => out.push(Incoming::Invalid {
                        event_id: e.event_id,
                        seq: Some(e.seq),
                        reason: why.to_string(),
                        raw: raw.get().to_owned(),
                    }),
                }
            }
            Err(why) => {
                let f: Fragments = serde_json::from_str(raw.get()).unwrap_or_default();
                let event_id = text(f.event_id).unwrap_or_default();
                if let Some(other) = text(f.store_id).filter(|s| s != store) {
                    return Err(foreign(i, &event_id, &other, store));
                }
                out.push(Incoming::Invalid {
                    event_id,
                    seq: f.seq.and_then(|s| s.as_i64()),
                    reason: format!("malformed event: {why}"),
                    raw: raw.get().to_owned(),
                });
            }
        }
    }
    Ok(Push {
        ledger_id: batch.ledger_id,
        after_seq: batch.after_seq,
        events: out,
        agent_version: None,
    })
}

fn text(v: Option<serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

fn foreign(index: usize, event_id: &str, claimed: &str, store: &str) -> ApiError {
    ApiError::forbidden(format!(
        "event {index} ({event_id}) belongs to store {claimed}, pushed to store {store}: nothing was written"
    ))
}
