//! Loading a sightings trace and replaying it as a [`Radio`].

use core::fmt;
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, path::Path};

use embassy_time::{Instant, Timer};
use heapless::Vec as HVec;
use serde::Deserialize;

use crate::ad;
use crate::node::{Advertisement, Beacon, CheckInWrite, Radio, Scanner};

/// One line of the trace, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t_ms: u64,
    rssi: i8,
    addr: Option<String>,
    mfg: Option<String>,
    adv: Option<String>,
    check_in: Option<String>,
}

/// A loaded trace, sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Advertisements: (ms, advertisement).
    pub adverts: Vec<(u64, Advertisement)>,
    /// Check-in writes: (ms, write).
    pub check_ins: Vec<(u64, CheckInWrite)>,
}

impl Trace {
    /// Time of the last event, ms.
    pub fn last_ms(&self) -> u64 {
        let a = self.adverts.last().map_or(0, |(t, _)| *t);
        let c = self.check_ins.last().map_or(0, |(t, _)| *t);
        a.max(c)
    }
}

/// A bad trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number (0: the file itself).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.message)
    }
}

impl core::error::Error for TraceError {}

/// Reads and parses a trace file.
pub fn load_trace(path: &Path) -> Result<Trace, Vec<TraceError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        std::vec![TraceError {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    parse_trace(&text)
}

/// Parses trace text; every bad line is reported (not just the first).
pub fn parse_trace(text: &str) -> Result<Trace, Vec<TraceError>> {
    let mut trace = Trace::default();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(message) = parse_line(line, &mut trace) {
            errors.push(TraceError {
                line: i + 1,
                message,
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    trace.adverts.sort_by_key(|(t, _)| *t);
    trace.check_ins.sort_by_key(|(t, _)| *t);
    Ok(trace)
}

fn parse_line(line: &str, trace: &mut Trace) -> Result<(), String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match (l.addr, l.mfg, l.adv, l.check_in) {
        (None, None, None, Some(value)) => {
            let value = HVec::from_slice(&hex(&value)?)
                .map_err(|_| "check_in is longer than 32 bytes".to_string())?;
            trace.check_ins.push((
                l.t_ms,
                CheckInWrite {
                    rssi: l.rssi,
                    value,
                },
            ));
        }
        (Some(addr), mfg, adv, None) => {
            let data = match (mfg, adv) {
                (Some(mfg), None) => {
                    let mut data = HVec::new();
                    let bytes = hex(&mfg)?;
                    ad::push_structure(
                        &mut data,
                        ad::TYPE_FLAGS,
                        &[ad::FLAGS_LE_GENERAL_DISCOVERABLE],
                    )
                    .and_then(|()| {
                        ad::push_structure(&mut data, ad::TYPE_MANUFACTURER_DATA, &bytes)
                    })
                    .map_err(|_| "mfg is longer than 26 bytes".to_string())?;
                    data
                }
                (None, Some(adv)) => HVec::from_slice(&hex(&adv)?)
                    .map_err(|_| "adv is longer than 31 bytes".to_string())?,
                _ => return Err("an advertisement needs exactly one of mfg, adv".into()),
            };
            trace.adverts.push((
                l.t_ms,
                Advertisement {
                    addr: parse_addr(&addr)?,
                    rssi: l.rssi,
                    data,
                },
            ));
        }
        _ => return Err("a line is either an advertisement (addr + mfg|adv) or a check_in".into()),
    }
    Ok(())
}

fn hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = core::str::from_utf8(pair).map_err(|_| format!("not hex: {text:?}"))?;
            u8::from_str_radix(s, 16).map_err(|_| format!("not hex: {text:?}"))
        })
        .collect()
}

fn parse_addr(text: &str) -> Result<[u8; 6], String> {
    let bytes = hex(&text.replace(':', ""))?;
    let mut addr: [u8; 6] = bytes
        .try_into()
        .map_err(|_| format!("address {text:?} is not 6 bytes"))?;
    // Written MSB first; on air (and in `Advertisement`) LSB first.
    addr.reverse();
    Ok(addr)
}

/// A [`Radio`] replaying a trace from `start`, optionally forever (period = last event + 1 s).
#[derive(Debug, Clone)]
pub struct TraceRadio {
    trace: Rc<Trace>,
    start: Instant,
    repeat: bool,
}

impl TraceRadio {
    /// Replays `trace` with its time 0 at `start`.
    pub fn new(trace: Rc<Trace>, start: Instant, repeat: bool) -> Self {
        Self {
            trace,
            start,
            repeat,
        }
    }

    fn period_ms(&self) -> Option<u64> {
        self.repeat.then(|| self.trace.last_ms() + 1000)
    }
}

impl Radio for TraceRadio {
    type Scanner = Replay<Advertisement>;
    type Beacon = Replay<CheckInWrite>;

    fn split(self) -> (Self::Scanner, Self::Beacon) {
        let period = self.period_ms();
        let adverts: Rc<[(u64, Advertisement)]> = self.trace.adverts.clone().into();
        let writes: Rc<[(u64, CheckInWrite)]> = self.trace.check_ins.clone().into();
        (
            Replay::new(adverts, self.start, period),
            Replay::new(writes, self.start, period),
        )
    }
}

/// One half of [`TraceRadio`]: yields its events at their times.
#[derive(Debug)]
pub struct Replay<T> {
    events: Rc<[(u64, T)]>,
    next: usize,
    base: Instant,
    period_ms: Option<u64>,
}

impl<T: Clone> Replay<T> {
    fn new(events: Rc<[(u64, T)]>, base: Instant, period_ms: Option<u64>) -> Self {
        Self {
            events,
            next: 0,
            base,
            period_ms,
        }
    }

    async fn next_event(&mut self) -> T {
        if self.next == self.events.len() {
            match self.period_ms {
                Some(period) if !self.events.is_empty() => {
                    self.base += embassy_time::Duration::from_millis(period);
                    self.next = 0;
                }
                _ => return core::future::pending().await,
            }
        }
        let (at, event) = &self.events[self.next];
        self.next += 1;
        Timer::at(self.base + embassy_time::Duration::from_millis(*at)).await;
        event.clone()
    }
}

impl Scanner for Replay<Advertisement> {
    type Error = core::convert::Infallible;

    async fn next(&mut self) -> Result<Advertisement, Self::Error> {
        Ok(self.next_event().await)
    }
}

impl Beacon for Replay<CheckInWrite> {
    type Error = core::convert::Infallible;

    async fn advertise(&mut self, _adv: &[u8]) -> Result<CheckInWrite, Self::Error> {
        Ok(self.next_event().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token;

    #[test]
    fn documented_lines_parse() {
        let text = r#"
# a comment
{"t_ms":40,"addr":"11:22:33:44:55:66","rssi":-85,"adv":"0201060303 0d18"}
{"t_ms":0,"addr":"c0:ff:ee:00:00:01","rssi":-62,"mfg":"ffff4c45010123456789abcdefc5"}
{"t_ms":1500,"check_in":"ffff4c45010123456789abcdefc5","rssi":-55}
"#;
        let trace = parse_trace(text).expect("valid");
        assert_eq!(trace.adverts.len(), 2);
        let (t0, first) = &trace.adverts[0];
        assert_eq!(*t0, 0);
        assert_eq!(first.addr, [0x01, 0x00, 0x00, 0xEE, 0xFF, 0xC0]);
        assert_eq!(
            token::find_token(&first.data).map(|t| t.id),
            Ok(0x0123_4567_89AB_CDEF)
        );
        assert_eq!(trace.check_ins[0].1.value.len(), 14);
        assert_eq!(trace.last_ms(), 1500);
    }

    #[test]
    fn every_bad_line_is_reported() {
        let text = "{\"t_ms\":1,\"rssi\":-1}\nnot json\n{\"t_ms\":1,\"addr\":\"00:11\",\"rssi\":1,\"mfg\":\"ff\"}\n";
        let errors = parse_trace(text).expect_err("invalid");
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3]);
    }
}
