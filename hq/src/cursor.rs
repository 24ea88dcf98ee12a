//! The changes feed's cursor: opaque to the agent, a change sequence number inside.

/// What a cursor string did not say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor {0:?} is not one HQ gave out: pull again from an empty cursor")]
pub struct BadCursor(pub String);

const PREFIX: &str = "c1.";

pub fn encode(change_seq: i64) -> String {
    format!("{PREFIX}{change_seq}")
}

/// An empty cursor starts from the beginning.
pub fn decode(cursor: &str) -> Result<i64, BadCursor> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor
        .strip_prefix(PREFIX)
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| BadCursor(cursor.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        assert_eq!(decode(&encode(42)), Ok(42));
        assert_eq!(decode(""), Ok(0));
        for bad in ["42", "c1.", "c1.-3", "c1.x", "zzz", "c2.5"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
