//! Store-local time: what "Monday", "17:00" and "today" mean for a store's campaigns.
//!
//! A store names its IANA time zone (`store.time_zone = "Europe/Amsterdam"`), so campaign hours
//! follow the clocks on the shop wall through daylight saving time. The zone database is
//! chrono-tz's, compiled in: no file is read, and the rules stay free of I/O.
//!
//! Semantics at the daylight-saving transitions:
//! - Weekdays and hours windows are judged on the local wall clock: "17:00-20:00" is local 17:00
//!   in winter and in summer. On the spring-forward night the skipped hour never shows on the
//!   clock, so a window inside it does not run that night and one across it is an hour shorter;
//!   on the fall-back night the repeated hour shows twice, so a window covering it runs both
//!   times (an hour longer).
//! - A store-local day, for per-day gift limits and a store's daily budget, runs from local
//!   midnight to the next local midnight: 23 hours on the spring-forward day, 25 on the
//!   fall-back day.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use std::fmt;

/// The release of the IANA time zone database compiled in (e.g. "2025b"): a zone whose rules
/// change after it needs an agent built with a newer chrono-tz.
pub const TZDB_VERSION: &str = chrono_tz::IANA_TZDB_VERSION;

/// Where the store's clocks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTimeZone {
    /// An IANA zone (`store.time_zone`): follows the zone's daylight-saving rules.
    Zone(Tz),
    /// A fixed offset from UTC (the deprecated `store.utc_offset`). Kept so existing configs
    /// still load, but it never changes: where the clocks do, campaign hours and days are an
    /// hour off for part of the year.
    Fixed(FixedOffset),
}

impl StoreTimeZone {
    pub const UTC: StoreTimeZone = StoreTimeZone::Zone(Tz::UTC);

    /// The zone called `name`, spelt as the IANA database spells it ("Europe/Amsterdam").
    pub fn named(name: &str) -> Result<StoreTimeZone, TimeZoneError> {
        if let Ok(tz) = name.parse::<Tz>() {
            return Ok(StoreTimeZone::Zone(tz));
        }
        let trimmed = name.trim();
        // "+01:00" here is someone reaching for the old key's form: say why a name is wanted.
        let looks_like_offset = trimmed == "Z"
            || trimmed
                .strip_prefix(['+', '-'])
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if looks_like_offset {
            return Err(TimeZoneError::Offset(name.to_owned()));
        }
        // Names are case-sensitive and use `_` for spaces; a near miss gets the exact spelling.
        let wanted = trimmed.replace(' ', "_");
        match chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(&wanted))
        {
            Some(tz) => Err(TimeZoneError::Misspelt {
                given: name.to_owned(),
                name: tz.name(),
            }),
            None => Err(TimeZoneError::Unknown(name.to_owned())),
        }
    }

    /// The date and time on the store's wall clock at `at`.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            StoreTimeZone::Zone(tz) => at.with_timezone(tz).naive_local(),
            StoreTimeZone::Fixed(offset) => at.with_timezone(offset).naive_local(),
        }
    }

    /// The store-local date at `at`: the day it counts against (midnight to midnight, local).
    pub fn date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.local(at).date()
    }
}

impl Default for StoreTimeZone {
    /// UTC, as before stores named a zone.
    fn default() -> Self {
        StoreTimeZone::UTC
    }
}

impl fmt::Display for StoreTimeZone {
    /// The zone's name ("Europe/Amsterdam") or the fixed offset ("+01:00").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreTimeZone::Zone(tz) => f.write_str(tz.name()),
            StoreTimeZone::Fixed(offset) => write!(f, "{offset}"),
        }
    }
}

/// A time zone name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    #[error(
        "`{0}` is a UTC offset, not a time zone: write the zone's name, like \"Europe/Amsterdam\", \
         so that campaign hours follow daylight saving time"
    )]
    Offset(String),
    #[error("`{given}` is not an IANA time zone name: names are case-sensitive, write \"{name}\"")]
    Misspelt { given: String, name: &'static str },
    #[error(
        "`{0}` is not an IANA time zone name: write one like \"Europe/Amsterdam\" \
         (`timedatectl list-timezones` lists them)"
    )]
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn amsterdam() -> StoreTimeZone {
        StoreTimeZone::named("Europe/Amsterdam").unwrap()
    }

    fn wall(zone: StoreTimeZone, at: &str) -> String {
        zone.local(utc(at))
            .format("%a %Y-%m-%d %H:%M:%S")
            .to_string()
    }

    #[test]
    fn a_zone_name_is_read_and_shown_as_written() {
        assert_eq!(amsterdam(), StoreTimeZone::Zone(Tz::Europe__Amsterdam));
        assert_eq!(amsterdam().to_string(), "Europe/Amsterdam");
        assert_eq!(StoreTimeZone::default().to_string(), "UTC");
        let fixed = StoreTimeZone::Fixed(FixedOffset::east_opt(3600).unwrap());
        assert_eq!(fixed.to_string(), "+01:00");
    }

    #[test]
    fn a_wrong_name_says_what_to_write() {
        assert_eq!(
            StoreTimeZone::named("Europe/Amsterdm")
                .unwrap_err()
                .to_string(),
            "`Europe/Amsterdm` is not an IANA time zone name: write one like \
             \"Europe/Amsterdam\" (`timedatectl list-timezones` lists them)"
        );
        assert_eq!(
            StoreTimeZone::named("europe/amsterdam")
                .unwrap_err()
                .to_string(),
            "`europe/amsterdam` is not an IANA time zone name: names are case-sensitive, \
             write \"Europe/Amsterdam\""
        );
        assert_eq!(
            StoreTimeZone::named("America/New York").unwrap_err(),
            TimeZoneError::Misspelt {
                given: "America/New York".into(),
                name: "America/New_York"
            }
        );
        for offset in ["+01:00", "-05:00", "Z"] {
            assert_eq!(
                StoreTimeZone::named(offset).unwrap_err(),
                TimeZoneError::Offset(offset.into())
            );
        }
        assert!(StoreTimeZone::named("").is_err());
    }

    #[test]
    fn amsterdam_wall_clock_skips_an_hour_in_spring_and_repeats_one_in_autumn() {
        let z = amsterdam();
        // Spring forward, 2027-03-28 01:00 UTC: 02:00 CET becomes 03:00 CEST.
        assert_eq!(wall(z, "2027-03-28T00:59:59Z"), "Sun 2027-03-28 01:59:59");
        assert_eq!(wall(z, "2027-03-28T01:00:00Z"), "Sun 2027-03-28 03:00:00");
        // Fall back, 2027-10-31 01:00 UTC: 03:00 CEST becomes 02:00 CET.
        assert_eq!(wall(z, "2027-10-31T00:59:59Z"), "Sun 2027-10-31 02:59:59");
        assert_eq!(wall(z, "2027-10-31T01:00:00Z"), "Sun 2027-10-31 02:00:00");
        // A fixed offset never moves: the old `utc_offset` behaviour, an hour off in summer.
        let fixed = StoreTimeZone::Fixed(FixedOffset::east_opt(3600).unwrap());
        assert_eq!(
            wall(fixed, "2027-06-14T15:30:00Z"),
            "Mon 2027-06-14 16:30:00"
        );
        assert_eq!(wall(z, "2027-06-14T15:30:00Z"), "Mon 2027-06-14 17:30:00");
    }
}
