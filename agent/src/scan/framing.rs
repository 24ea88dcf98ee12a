//! Cuts a scanner's byte stream into scans. Pure: no I/O, the caller passes the time, so every
//! rule is testable without a port or a clock.
//!
//! - [`Terminator::Line`]: CR, LF and CR LF each end one scan. Empty lines are ignored, which is
//!   what makes CR LF one terminator even when the CR and the LF arrive in different reads.
//! - [`Terminator::Tab`]: TAB ends a scan.
//! - [`Terminator::None`]: silence longer than the inter-character timeout ends a scan.
//! - A scan longer than `max_len` bytes is dropped ([`DropReason::TooLong`]) and the rest of it,
//!   up to the next terminator (or silence), is discarded too: its tail is not a scan.
//! - With a terminator configured, a partial scan followed by silence is dropped
//!   ([`DropReason::Timeout`]): a half-received code must never be read as a shorter valid one.
//! - The configured prefix and suffix are stripped when present; a scan that is not UTF-8 is
//!   dropped ([`DropReason::NotUtf8`]).

use std::time::{Duration, Instant};

use super::{ScannerSettings, Terminator};

/// What the framer made of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// One scan's text, prefix and suffix stripped, AIM identifier (if any) still on.
    Line(String),
    Dropped(DropReason),
}

/// Why bytes were thrown away instead of becoming a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    TooLong,
    NotUtf8,
    /// A partial scan, then silence.
    Timeout,
}

impl DropReason {
    /// A short snake_case word for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DropReason::TooLong => "too_long",
            DropReason::NotUtf8 => "not_utf8",
            DropReason::Timeout => "timeout",
        }
    }
}

/// The framing state of one port.
#[derive(Debug, Clone)]
pub struct Framer {
    terminator: Terminator,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    inter_char_timeout: Duration,
    max_len: usize,
    buf: Vec<u8>,
    /// Inside an over-long scan that was already reported.
    discarding: bool,
    /// When the last byte of the pending scan arrived; `None` when nothing is pending.
    last_byte_at: Option<Instant>,
}

impl Framer {
    pub fn new(settings: &ScannerSettings) -> Self {
        Self {
            terminator: settings.terminator,
            prefix: settings.prefix.as_bytes().to_vec(),
            suffix: settings.suffix.as_bytes().to_vec(),
            inter_char_timeout: settings.inter_char_timeout,
            max_len: settings.max_len,
            buf: Vec::new(),
            discarding: false,
            last_byte_at: None,
        }
    }

    /// Feeds bytes read at `now`; returns the scans (and drops) they completed.
    pub fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<FrameEvent> {
        let mut events = Vec::new();
        // A read can follow a long silence without an idle tick in between (a reader without a
        // timeout); the silence still ended whatever was pending.
        if !bytes.is_empty() {
            events.extend(self.on_idle(now));
        }
        for &byte in bytes {
            if self.is_terminator(byte) {
                events.extend(self.finish());
                continue;
            }
            if self.discarding {
                continue;
            }
            if self.buf.len() >= self.max_len {
                self.buf.clear();
                self.discarding = true;
                events.push(FrameEvent::Dropped(DropReason::TooLong));
                continue;
            }
            self.buf.push(byte);
        }
        if self.pending() {
            self.last_byte_at = Some(now);
        }
        events
    }

    /// Tells the framer nothing arrived up to `now`; ends a scan whose silence has lasted longer
    /// than the inter-character timeout.
    pub fn on_idle(&mut self, now: Instant) -> Option<FrameEvent> {
        let last = self.last_byte_at?;
        if now.saturating_duration_since(last) <= self.inter_char_timeout {
            return None;
        }
        if self.discarding {
            // The over-long scan was reported when it overflowed; silence ends its tail.
            self.reset();
            return None;
        }
        match self.terminator {
            Terminator::None => self.finish(),
            Terminator::Line | Terminator::Tab => {
                self.reset();
                Some(FrameEvent::Dropped(DropReason::Timeout))
            }
        }
    }

    fn is_terminator(&self, byte: u8) -> bool {
        match self.terminator {
            Terminator::Line => byte == b'\r' || byte == b'\n',
            Terminator::Tab => byte == b'\t',
            Terminator::None => false,
        }
    }

    fn pending(&self) -> bool {
        self.discarding || !self.buf.is_empty()
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.last_byte_at = None;
    }

    /// Ends the pending scan.
    fn finish(&mut self) -> Option<FrameEvent> {
        let raw = std::mem::take(&mut self.buf);
        let was_discarding = self.discarding;
        self.reset();
        if was_discarding {
            return None;
        }
        let mut text: &[u8] = &raw;
        if !self.prefix.is_empty() {
            text = text.strip_prefix(self.prefix.as_slice()).unwrap_or(text);
        }
        if !self.suffix.is_empty() {
            text = text.strip_suffix(self.suffix.as_slice()).unwrap_or(text);
        }
        if text.is_empty() {
            return None;
        }
        Some(match std::str::from_utf8(text) {
            Ok(text) => FrameEvent::Line(text.to_owned()),
            Err(_) => FrameEvent::Dropped(DropReason::NotUtf8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings(terminator: Terminator) -> ScannerSettings {
        ScannerSettings {
            terminator,
            ..ScannerSettings::default()
        }
    }

    fn line(s: &str) -> FrameEvent {
        FrameEvent::Line(s.to_owned())
    }

    /// Feeds `chunks` 1 ms apart and collects every event.
    fn feed(framer: &mut Framer, t0: Instant, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let mut events = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            events.extend(framer.push(chunk, t0 + MS * i as u32));
        }
        events
    }

    #[test]
    fn line_terminators_each_end_one_scan() {
        for input in [
            &b"4006381333931\r"[..],
            b"4006381333931\n",
            b"4006381333931\r\n",
            b"\r\n4006381333931\r\n\r\n",
            b"\n\n4006381333931\n\r",
        ] {
            let mut f = Framer::new(&settings(Terminator::Line));
            assert_eq!(
                f.push(input, Instant::now()),
                vec![line("4006381333931")],
                "{input:?}"
            );
        }
        let mut f = Framer::new(&settings(Terminator::Line));
        assert_eq!(
            f.push(b"A1\rB2\nC3\r\nD4\n\rE5\r\r", Instant::now()),
            ["A1", "B2", "C3", "D4", "E5"].map(line).to_vec()
        );
    }

    #[test]
    fn bytes_in_pieces() {
        let mut f = Framer::new(&settings(Terminator::Line));
        let t0 = Instant::now();
        assert_eq!(
            feed(&mut f, t0, &[b"40063", b"8", b"1333", b"931", b"\r", b"\n"]),
            vec![line("4006381333931")]
        );
        // One byte at a time.
        let bytes = b"5901234123457\r\n";
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            feed(&mut f, t0 + MS * 100, &chunks),
            vec![line("5901234123457")]
        );
    }

    #[test]
    fn crlf_split_across_reads_is_one_terminator() {
        let mut f = Framer::new(&settings(Terminator::Line));
        let t0 = Instant::now();
        assert_eq!(f.push(b"ABC-1\r", t0), vec![line("ABC-1")]);
        assert_eq!(f.push(b"\nABC-2\r", t0 + MS), vec![line("ABC-2")]);
        // Even when the LF comes after a pause.
        assert_eq!(f.on_idle(t0 + MS * 500), None);
        assert_eq!(f.push(b"\n", t0 + MS * 600), vec![]);
        assert_eq!(f.on_idle(t0 + MS * 1000), None);
    }

    #[test]
    fn tab_terminator() {
        let mut f = Framer::new(&settings(Terminator::Tab));
        let t0 = Instant::now();
        assert_eq!(
            feed(&mut f, t0, &[b"AB", b"CD\tEF", b"GH\t\t"]),
            vec![line("ABCD"), line("EFGH")]
        );
        // CR and LF are data on a TAB port.
        assert_eq!(f.push(b"A\rB\t", t0), vec![line("A\rB")]);
    }

    #[test]
    fn none_terminator_ends_on_silence() {
        let mut f = Framer::new(&settings(Terminator::None));
        let t0 = Instant::now();
        assert_eq!(feed(&mut f, t0, &[b"4006", b"381333931"]), vec![]);
        assert_eq!(f.on_idle(t0 + MS * 150), None);
        assert_eq!(f.on_idle(t0 + MS * 202), Some(line("4006381333931")));
        assert_eq!(f.on_idle(t0 + MS * 1000), None);
        // A scan that starts after the silence, without an idle tick, still ends the first.
        assert_eq!(f.push(b"AB-12", t0 + MS * 2000), vec![]);
        assert_eq!(f.push(b"CD-34", t0 + MS * 2300), vec![line("AB-12")]);
        assert_eq!(f.on_idle(t0 + MS * 2501), Some(line("CD-34")));
    }

    #[test]
    fn partial_then_silence_is_a_timeout() {
        for terminator in [Terminator::Line, Terminator::Tab] {
            let mut f = Framer::new(&settings(terminator));
            let t0 = Instant::now();
            assert_eq!(f.push(b"400638", t0), vec![]);
            assert_eq!(f.on_idle(t0 + MS * 200), None);
            assert_eq!(
                f.on_idle(t0 + MS * 201),
                Some(FrameEvent::Dropped(DropReason::Timeout))
            );
            // The rest of the code arriving late is not glued onto the first half.
            let end: &[u8] = if terminator == Terminator::Tab {
                b"1333931\t"
            } else {
                b"1333931\r\n"
            };
            assert_eq!(f.push(end, t0 + MS * 300), vec![line("1333931")]);
        }
        // Without an idle tick in between, the push reports the timeout first.
        let mut f = Framer::new(&settings(Terminator::Line));
        let t0 = Instant::now();
        f.push(b"4006", t0);
        assert_eq!(
            f.push(b"5901234123457\n", t0 + MS * 500),
            vec![
                FrameEvent::Dropped(DropReason::Timeout),
                line("5901234123457")
            ]
        );
    }

    #[test]
    fn over_long_line_then_a_good_one() {
        let mut f = Framer::new(&ScannerSettings {
            max_len: 8,
            ..ScannerSettings::default()
        });
        let t0 = Instant::now();
        assert_eq!(f.push(b"12345678\n", t0), vec![line("12345678")]);
        assert_eq!(
            feed(
                &mut f,
                t0,
                &[b"12345", b"6789", b"ABCDEFGHIJ", b"K\r\n", b"96385074\r\n"]
            ),
            vec![FrameEvent::Dropped(DropReason::TooLong), line("96385074")]
        );
        // A lost terminator: silence ends the discarding, so the next scan is not swallowed.
        assert_eq!(
            f.push(b"0123456789", t0 + MS * 10),
            vec![FrameEvent::Dropped(DropReason::TooLong)]
        );
        assert_eq!(f.on_idle(t0 + MS * 300), None);
        assert_eq!(f.push(b"AB-1\n", t0 + MS * 400), vec![line("AB-1")]);
    }

    #[test]
    fn over_long_without_terminator() {
        let mut f = Framer::new(&ScannerSettings {
            max_len: 4,
            terminator: Terminator::None,
            ..ScannerSettings::default()
        });
        let t0 = Instant::now();
        assert_eq!(
            f.push(b"123456789", t0),
            vec![FrameEvent::Dropped(DropReason::TooLong)]
        );
        assert_eq!(f.on_idle(t0 + MS * 300), None);
        assert_eq!(f.push(b"1234", t0 + MS * 400), vec![]);
        assert_eq!(f.on_idle(t0 + MS * 700), Some(line("1234")));
    }

    #[test]
    fn not_utf8_is_dropped_and_the_next_scan_passes() {
        let mut f = Framer::new(&settings(Terminator::Line));
        assert_eq!(
            f.push(b"\xff\xfe12\r\n\xc3\r\nAB-1\r\n", Instant::now()),
            vec![
                FrameEvent::Dropped(DropReason::NotUtf8),
                FrameEvent::Dropped(DropReason::NotUtf8),
                line("AB-1")
            ]
        );
        // A multi-byte character split across reads is fine.
        let t0 = Instant::now();
        assert_eq!(
            feed(&mut f, t0, &[b"caf\xc3", b"\xa9\n"]),
            vec![line("café")]
        );
    }

    #[test]
    fn prefix_and_suffix_are_stripped_when_present() {
        let mut f = Framer::new(&ScannerSettings {
            prefix: "#".into(),
            suffix: "!!".into(),
            ..ScannerSettings::default()
        });
        assert_eq!(
            f.push(
                b"#AB-1!!\r\nAB-2!!\r\n#AB-3\r\nAB-4\r\n#!!\r\n#!\r\n",
                Instant::now()
            ),
            ["AB-1", "AB-2", "AB-3", "AB-4", "!"].map(line).to_vec()
        );
    }

    #[test]
    fn idle_without_pending_data_is_quiet() {
        let mut f = Framer::new(&settings(Terminator::Line));
        let t0 = Instant::now();
        assert_eq!(f.on_idle(t0), None);
        assert_eq!(f.push(b"", t0), vec![]);
        assert_eq!(f.push(b"A1B2\n", t0), vec![line("A1B2")]);
        assert_eq!(f.on_idle(t0 + Duration::from_secs(10)), None);
        // A time before the last byte (clock passed in out of order) is not silence.
        f.push(b"AB", t0 + MS * 100);
        assert_eq!(f.on_idle(t0), None);
    }

    #[test]
    fn reasons() {
        assert_eq!(DropReason::TooLong.reason(), "too_long");
        assert_eq!(DropReason::NotUtf8.reason(), "not_utf8");
        assert_eq!(DropReason::Timeout.reason(), "timeout");
    }

    fn any_terminator() -> impl Strategy<Value = Terminator> {
        prop_oneof![
            Just(Terminator::Line),
            Just(Terminator::Tab),
            Just(Terminator::None)
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_max_len(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..64), 0u64..400), 0..20),
            terminator in any_terminator(),
            max_len in 0usize..40,
            prefix in "[#\\r]{0,2}",
            suffix in "[!\\t]{0,2}",
        ) {
            let mut f = Framer::new(&ScannerSettings {
                terminator, max_len, prefix, suffix, ..ScannerSettings::default()
            });
            let mut now = Instant::now();
            let mut events = Vec::new();
            for (bytes, gap_ms) in &chunks {
                now += Duration::from_millis(*gap_ms);
                events.extend(f.push(bytes, now));
                events.extend(f.on_idle(now + Duration::from_millis(*gap_ms / 2)));
            }
            events.extend(f.on_idle(now + Duration::from_secs(1)));
            for event in events {
                if let FrameEvent::Line(text) = event {
                    prop_assert!(!text.is_empty());
                    prop_assert!(text.len() <= max_len);
                    if terminator == Terminator::Line {
                        prop_assert!(!text.contains(['\r', '\n']));
                    }
                }
            }
        }

        #[test]
        fn any_chunking_gives_the_same_scans(
            scans in proptest::collection::vec("[A-Z0-9-]{1,20}", 1..6),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
            crlf in any::<bool>(),
        ) {
            let sep = if crlf { "\r\n" } else { "\r" };
            let stream: String = scans.iter().map(|s| format!("{s}{sep}")).collect();
            let bytes = stream.as_bytes();
            let mut positions: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            positions.extend([0, bytes.len()]);
            positions.sort_unstable();
            let mut f = Framer::new(&ScannerSettings::default());
            let now = Instant::now();
            let mut events = Vec::new();
            for w in positions.windows(2) {
                events.extend(f.push(&bytes[w[0]..w[1]], now));
            }
            let expected: Vec<FrameEvent> = scans.iter().map(|s| line(s)).collect();
            prop_assert_eq!(events, expected);
        }
    }
}
