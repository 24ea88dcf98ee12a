//! Sighting traces: JSON lines, recorded by the agent from any source, synthesised by the
//! simulator (`loyalty-sim`), and replayed by the agent in tests and the demo.
//!
//! # Format
//! One sighting per line, a JSON object:
//!
//! | key | type | meaning |
//! | --- | --- | --- |
//! | `t_ms` | integer | milliseconds since the trace started |
//! | `sensor` | string | the sensor's configured name |
//! | `rssi` | integer | dBm (a sensor node's per-interval median) |
//! | `rssi_max` | integer, optional | strongest RSSI of the interval; default `rssi` |
//! | `count` | integer, optional | advertisements in the interval; default 1 |
//! | `token` | string, optional | the phone token's rotating id, 16 hex digits |
//! | `adv` | string, optional | the raw advertisement payload, hex (decoded on replay) |
//! | `check_in` | bool, optional | a GATT check-in write; default false |
//!
//! At most one of `token` and `adv`; neither means an advertiser that is no member's phone.
//! Unknown keys are refused, so a misspelt `chek_in` in a hand-written trace is an error rather
//! than a silent `false`. Blank lines and lines starting with `#` are skipped (comments in
//! hand-written traces). Example:
//!
//! ```text
//! # walk-in at the door
//! {"t_ms":0,"sensor":"door-out","rssi":-61,"token":"0123456789abcdef"}
//! {"t_ms":1000,"sensor":"door-in","rssi":-58,"adv":"0201060fffffff4c45010123456789abcdefc5"}
//! {"t_ms":2500,"sensor":"door-in","rssi":-70,"token":"0123456789abcdef","check_in":true}
//! ```
//!
//! Reading never stops at a bad line: [`read_trace`] returns the good records and an error per
//! bad line, with its line number.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// What identifies the advertiser in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceToken {
    /// A phone token's rotating id.
    Id(u64),
    /// A raw advertisement payload.
    Advert(Vec<u8>),
    /// Neither: some other advertiser.
    None,
}

/// One sighting of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Milliseconds since the trace started.
    pub t_ms: u64,
    /// Sensor name.
    pub sensor: String,
    /// RSSI, dBm.
    pub rssi: i8,
    /// Strongest RSSI of the interval, dBm.
    pub rssi_max: i8,
    /// Advertisements in the interval.
    pub count: u16,
    /// The advertiser.
    pub token: TraceToken,
    /// A check-in write.
    pub check_in: bool,
}

/// The line as serde sees it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t_ms: u64,
    sensor: String,
    rssi: i8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rssi_max: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adv: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    check_in: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a line is not a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Not JSON, or not the record's shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// `token` is not 16 hex digits.
    #[error("`token` must be 16 hex digits, got {0:?}")]
    Token(String),
    /// `adv` is not hex.
    #[error("`adv` is not hex: {0}")]
    Advert(hex::FromHexError),
    /// Both `token` and `adv`.
    #[error("a record has `token` or `adv`, not both")]
    Both,
    /// Reading failed (the rest of the trace is not read).
    #[error("reading the trace failed: {0}")]
    Io(#[from] io::Error),
}

/// A bad line, and where.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct TraceLineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub error: TraceError,
}

impl TraceRecord {
    /// Parses one line (without its newline).
    pub fn from_line(line: &str) -> Result<Self, TraceError> {
        let raw: Line = serde_json::from_str(line)?;
        let token = match (raw.token, raw.adv) {
            (Some(_), Some(_)) => return Err(TraceError::Both),
            (Some(t), None) => {
                let id = (t.len() == 16)
                    .then(|| u64::from_str_radix(&t, 16).ok())
                    .flatten()
                    // `from_str_radix` takes a leading `+`: refuse it, a token is digits only.
                    .filter(|_| t.bytes().all(|b| b.is_ascii_hexdigit()));
                TraceToken::Id(id.ok_or(TraceError::Token(t))?)
            }
            (None, Some(a)) => TraceToken::Advert(hex::decode(&a).map_err(TraceError::Advert)?),
            (None, None) => TraceToken::None,
        };
        Ok(Self {
            t_ms: raw.t_ms,
            sensor: raw.sensor,
            rssi: raw.rssi,
            rssi_max: raw.rssi_max.unwrap_or(raw.rssi),
            count: raw.count.unwrap_or(1),
            token,
            check_in: raw.check_in,
        })
    }

    /// The record as one line of JSON (no newline); optional keys at their default are left out.
    pub fn to_line(&self) -> String {
        let (token, adv) = match &self.token {
            TraceToken::Id(id) => (Some(format!("{id:016x}")), None),
            TraceToken::Advert(bytes) => (None, Some(hex::encode(bytes))),
            TraceToken::None => (None, None),
        };
        let line = Line {
            t_ms: self.t_ms,
            sensor: self.sensor.clone(),
            rssi: self.rssi,
            rssi_max: (self.rssi_max != self.rssi).then_some(self.rssi_max),
            count: (self.count != 1).then_some(self.count),
            token,
            adv,
            check_in: self.check_in,
        };
        // A struct of strings and integers always serialises.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// Reads a whole trace: the good records in order, and one error per bad line.
pub fn read_trace<R: BufRead>(reader: R) -> (Vec<TraceRecord>, Vec<TraceLineError>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for item in records_of(reader) {
        match item {
            Ok(r) => records.push(r),
            Err(e) => errors.push(e),
        }
    }
    (records, errors)
}

/// Iterates a trace's records lazily (for replaying a long recording). An I/O error is yielded
/// once and ends the iteration; a bad line is yielded and reading goes on.
pub fn records_of<R: BufRead>(
    reader: R,
) -> impl Iterator<Item = Result<TraceRecord, TraceLineError>> {
    let mut lines = reader.lines().enumerate();
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        let (i, line) = lines.next()?;
        let line_no = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                done = true;
                return Some(Err(TraceLineError {
                    line: line_no,
                    error: TraceError::Io(e),
                }));
            }
        };
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        return Some(
            TraceRecord::from_line(text).map_err(|error| TraceLineError {
                line: line_no,
                error,
            }),
        );
    })
}

/// Writes records, one line each.
pub fn write_trace<'a, W: Write>(
    mut writer: W,
    records: impl IntoIterator<Item = &'a TraceRecord>,
) -> io::Result<()> {
    for r in records {
        writeln!(writer, "{}", r.to_line())?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: TraceToken) -> TraceRecord {
        TraceRecord {
            t_ms: 1500,
            sensor: "door-in".into(),
            rssi: -63,
            rssi_max: -63,
            count: 1,
            token,
            check_in: false,
        }
    }

    #[test]
    fn documented_line_shapes() {
        let r = record(TraceToken::Id(0x0123_4567_89AB_CDEF));
        assert_eq!(
            r.to_line(),
            r#"{"t_ms":1500,"sensor":"door-in","rssi":-63,"token":"0123456789abcdef"}"#
        );
        let mut r = record(TraceToken::Advert(vec![0x02, 0x01, 0x06]));
        r.check_in = true;
        r.count = 3;
        r.rssi_max = -60;
        assert_eq!(
            r.to_line(),
            r#"{"t_ms":1500,"sensor":"door-in","rssi":-63,"rssi_max":-60,"count":3,"adv":"020106","check_in":true}"#
        );
    }

    #[test]
    fn round_trip_through_a_file() {
        let adv = vec![0x02, 0x01, 0x06, 0x03, 0xff, 0xff, 0xff];
        let records = vec![
            record(TraceToken::Id(u64::MAX)),
            record(TraceToken::Advert(adv)),
            record(TraceToken::None),
        ];
        let mut buf = Vec::new();
        write_trace(&mut buf, &records).expect("writes to memory");
        let (back, errors) = read_trace(buf.as_slice());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, records);
    }

    #[test]
    fn bad_lines_are_reported_with_numbers_and_skipped() {
        let text = "\
# a comment
{\"t_ms\":0,\"sensor\":\"a\",\"rssi\":-60,\"token\":\"00000000000000ff\"}

{\"t_ms\":1,\"sensor\":\"a\",\"rssi\":-60,\"token\":\"ff\"}
{\"t_ms\":2,\"sensor\":\"a\",\"rssi\":-60,\"chek_in\":true}
not json
{\"t_ms\":3,\"sensor\":\"a\",\"rssi\":-600}
{\"t_ms\":4,\"sensor\":\"a\",\"rssi\":-60,\"adv\":\"0g\"}
{\"t_ms\":5,\"sensor\":\"a\",\"rssi\":-60,\"token\":\"+000000000000001\"}
{\"t_ms\":6,\"sensor\":\"a\",\"rssi\":-60,\"token\":\"0000000000000001\",\"adv\":\"00\"}
{\"t_ms\":7,\"sensor\":\"b\",\"rssi\":-61,\"check_in\":true}
";
        let (records, errors) = read_trace(text.as_bytes());
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].token, TraceToken::Id(0xff));
        assert!(records[1].check_in);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9, 10]);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("line 4: `token` must be 16 hex digits"),
            "{}",
            text[0]
        );
        assert!(text[1].contains("unknown field `chek_in`"), "{}", text[1]);
        assert!(text[6].contains("not both"), "{}", text[6]);
    }
}
