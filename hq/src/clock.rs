//! HQ's wall clock, in the one format the protocol uses.

use chrono::{SecondsFormat, Utc};

/// Now, RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}
