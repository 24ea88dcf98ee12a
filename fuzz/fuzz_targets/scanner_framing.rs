//! Scanner framing: `scan::framing::Framer` fed arbitrary bytes in arbitrary chunkings, with
//! every terminator, prefix/suffix stripping and length limit.
//!
//! Input: 4 setting bytes, then the byte stream the scanner sends (so a seed is a test's
//! scanner output behind 4 bytes).
//! - byte 0: bits 0-1 terminator (Line, Tab, None), bits 2-3 prefix, bits 4-5 suffix;
//! - byte 1: `max_len` (0 means the default 4096, else 1..=255);
//! - byte 2: inter-character timeout, ms;
//! - byte 3: seed of the chunking and of the gaps between chunks.
//!
//! Invariants:
//! - no scan is longer than `max_len`, empty, or holds its terminator;
//! - without silence, the chunking does not matter: one push of everything and pushes of
//!   arbitrary pieces at the same instant give the same events;
//! - with gaps (some longer than the timeout) and idle ticks, the same per-scan rules hold.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use loyalty_agent::scan::{FrameEvent, Framer, ScannerSettings, Terminator};

const PREFIXES: [&str; 4] = ["", "]", "\u{2}", "PRE"];
const SUFFIXES: [&str; 4] = ["", "\u{3}", "X", "\r"];

/// xorshift: a deterministic chunking from one seed byte and the input length.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

fn check(events: &[FrameEvent], settings: &ScannerSettings) {
    for event in events {
        if let FrameEvent::Line(text) = event {
            assert!(!text.is_empty(), "empty scan");
            assert!(
                text.len() <= settings.max_len,
                "scan of {} bytes over max_len {}",
                text.len(),
                settings.max_len
            );
            match settings.terminator {
                Terminator::Line => assert!(!text.contains(['\r', '\n']), "{text:?}"),
                Terminator::Tab => assert!(!text.contains('\t'), "{text:?}"),
                Terminator::None => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, max_len, timeout_ms, seed, stream @ ..] = data else {
        return;
    };
    let settings = ScannerSettings {
        terminator: [
            Terminator::Line,
            Terminator::Tab,
            Terminator::None,
            Terminator::Line,
        ][usize::from(mode & 3)],
        prefix: PREFIXES[usize::from((mode >> 2) & 3)].to_owned(),
        suffix: SUFFIXES[usize::from((mode >> 4) & 3)].to_owned(),
        max_len: if *max_len == 0 {
            4096
        } else {
            usize::from(*max_len)
        },
        inter_char_timeout: Duration::from_millis(u64::from(*timeout_ms)),
        ..ScannerSettings::default()
    };
    let t0 = Instant::now();

    // Everything at once, at one instant.
    let mut whole = Framer::new(&settings);
    let expected = whole.push(stream, t0);
    check(&expected, &settings);

    // Arbitrary pieces (empty ones included), still at one instant.
    let mut rng = Rng(u32::from(*seed) << 8 | 0x5a | (stream.len() as u32) << 16);
    let mut pieces = Framer::new(&settings);
    let mut got = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = (rng.next() as usize % 9).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        got.extend(pieces.push(chunk, t0));
        rest = tail;
    }
    assert_eq!(got, expected, "chunking changed the scans");

    // Arbitrary pieces with gaps, some past the timeout, and idle ticks between them.
    let mut timed = Framer::new(&settings);
    let mut now = t0;
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let r = rng.next();
        let n = (r as usize % 17).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        now += Duration::from_millis(u64::from(r >> 8) % (2 * u64::from(*timeout_ms) + 2));
        if r & 0x80 != 0 {
            events.extend(timed.on_idle(now));
        }
        events.extend(timed.push(chunk, now));
        rest = tail;
    }
    events.extend(timed.on_idle(now + settings.inter_char_timeout + Duration::from_millis(1)));
    check(&events, &settings);
});
