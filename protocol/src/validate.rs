//! What makes an [`Event`] well-formed. HQ rejects an event that fails these checks; the agent
//! can run them before pushing.

use serde_json::Value;

use crate::{Event, EventKind};

/// Why an event is malformed. The `Display` text is the `reason` HQ answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("seq must be positive, got {0}")]
    BadSeq(i64),
    #[error(
        "recorded_at must be RFC 3339 UTC with milliseconds (2025-01-31T12:00:00.000Z), got {0:?}"
    )]
    BadTime(String),
    #[error("a {kind} must have {sign} points, got {points}")]
    BadSign {
        kind: String,
        sign: &'static str,
        points: i64,
    },
    #[error("an event moving points needs an account")]
    NoAccount,
    #[error("payload of a {kind} needs {field} ({expected})")]
    MissingField {
        kind: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error("payload of a redemption needs points or gift_id")]
    RedemptionWithoutTarget,
    #[error(transparent)]
    OutOfBounds(#[from] crate::bounds::OutOfBounds),
}

enum Ty {
    Str,
    Int,
    Bool,
}

impl Ty {
    fn name(&self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Bool => "a boolean",
        }
    }

    fn matches(&self, v: &Value) -> bool {
        match self {
            Ty::Str => v.as_str().is_some_and(|s| !s.is_empty()),
            Ty::Int => v.as_i64().is_some(),
            Ty::Bool => v.is_boolean(),
        }
    }
}

impl Event {
    /// Checks the kind, the sign of `points`, the account, the time format and the payload's
    /// required fields.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        if self.event_id.is_empty() {
            return Err(InvalidEvent::Empty("event_id"));
        }
        if self.store_id.is_empty() {
            return Err(InvalidEvent::Empty("store_id"));
        }
        if self.seq <= 0 {
            return Err(InvalidEvent::BadSeq(self.seq));
        }
        if !is_utc_millis(&self.recorded_at) {
            return Err(InvalidEvent::BadTime(self.recorded_at.clone()));
        }
        crate::bounds::check_event_points(self.points)?;
        if self.points != 0 && self.account.as_deref().is_none_or(str::is_empty) {
            return Err(InvalidEvent::NoAccount);
        }
        let (credit, required): (bool, &[(&'static str, Ty)]) = match &self.kind {
            EventKind::Unknown(k) => return Err(InvalidEvent::UnknownKind(k.clone())),
            EventKind::Sale => (true, &[("receipt_id", Ty::Str), ("total_cents", Ty::Int)]),
            EventKind::Refund => (
                false,
                &[
                    ("refund_id", Ty::Str),
                    ("receipt_id", Ty::Str),
                    ("total_cents", Ty::Int),
                    ("points_due", Ty::Int),
                    ("uncollected", Ty::Int),
                ],
            ),
            EventKind::Redemption => (false, &[("redemption_id", Ty::Str)]),
            EventKind::GiftIssued => (
                true,
                &[
                    ("gift_id", Ty::Str),
                    ("campaign_id", Ty::Str),
                    ("campaign_version", Ty::Int),
                    ("member_id", Ty::Str),
                    ("once_per_member", Ty::Bool),
                    ("expires_at", Ty::Str),
                ],
            ),
            EventKind::GiftRedeemed => (false, &[("gift_id", Ty::Str), ("redemption_id", Ty::Str)]),
            EventKind::RedemptionVoided => (true, &[("void_id", Ty::Str)]),
        };
        let sign_ok = if credit {
            self.points >= 0
        } else {
            self.points <= 0
        };
        if !sign_ok {
            return Err(InvalidEvent::BadSign {
                kind: self.kind.to_string(),
                sign: if credit {
                    "zero or positive"
                } else {
                    "zero or negative"
                },
                points: self.points,
            });
        }
        for (field, ty) in required {
            if !self.payload.get(field).is_some_and(|v| ty.matches(v)) {
                return Err(InvalidEvent::MissingField {
                    kind: self.kind.to_string(),
                    field,
                    expected: ty.name(),
                });
            }
        }
        if self.kind == EventKind::Redemption
            && !Ty::Int.matches(self.payload.get("points").unwrap_or(&Value::Null))
            && !Ty::Str.matches(self.payload.get("gift_id").unwrap_or(&Value::Null))
        {
            return Err(InvalidEvent::RedemptionWithoutTarget);
        }
        Ok(())
    }

    /// A string field of the payload, if present.
    pub fn payload_str(&self, field: &str) -> Option<&str> {
        self.payload.get(field).and_then(Value::as_str)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly: one fixed shape, so HQ can order times as strings
/// (the earlier of two duplicate gifts is decided that way).
fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    b.len() == SHAPE.len()
        && b.iter().zip(SHAPE).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

#[cfg(test)]
mod tests {
    use super::is_utc_millis;

    #[test]
    fn time_shape() {
        assert!(is_utc_millis("2025-01-31T12:00:00.000Z"));
        assert!(!is_utc_millis("2025-01-31T12:00:00Z"));
        assert!(!is_utc_millis("2025-01-31T12:00:00.000+01:00"));
        assert!(!is_utc_millis("2025-01-31 12:00:00.000Z"));
    }
}
