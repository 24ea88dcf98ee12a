//! The blocking read loop of one lane: bytes in, [`LaneScan`]s out.
//!
//! It takes any [`Read`] so tests, pseudo-terminals and real ports go through the same code;
//! opening the port is [`super::port`]'s job. The reader should have a short read timeout
//! (ports from [`super::port::open`] use 50 ms): timeouts are the ticks that end silent scans and
//! notice shutdown.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::aim::split_aim;
use super::codes::{classify, CodeError};
use super::framing::{FrameEvent, Framer};
use super::{LaneRead, LaneScan, RejectedScan, ScannedCode, ScannerSettings};
use crate::metrics::Metrics;

/// Why the read loop stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The reader reached end of file: the device is gone.
    #[error("scanner disconnected")]
    Disconnected,
    #[error("reading the scanner failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A non-blocking reader would spin without this pause.
const WOULD_BLOCK_PAUSE: Duration = Duration::from_millis(10);
/// How often a full channel is retried, so shutdown stays prompt while the consumer lags.
const FULL_CHANNEL_PAUSE: Duration = Duration::from_millis(5);

/// Reads scans from `reader` and sends the good ones on `tx` until `shutdown` is cancelled or the
/// receiver is dropped (both `Ok(())`), the reader ends (`Err(Disconnected)`) or fails.
///
/// Blocking: run it under `spawn_blocking` or on a thread of its own.
pub fn read_scans<R: Read>(
    mut reader: R,
    lane: &str,
    settings: &ScannerSettings,
    tx: &Sender<LaneRead>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), ReadError> {
    let mut lane_state = Lane {
        lane,
        framer: Framer::new(settings),
        debounce: settings.debounce,
        last: None,
        tx,
        metrics,
        shutdown,
    };
    let mut buf = [0u8; 1024];
    loop {
        if shutdown.is_cancelled() || tx.is_closed() {
            return Ok(());
        }
        let events = match reader.read(&mut buf) {
            Ok(0) => return Err(ReadError::Disconnected),
            Ok(n) => {
                let now = Instant::now();
                lane_state.framer.push(buf.get(..n).unwrap_or(&buf), now)
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                lane_state
                    .framer
                    .on_idle(Instant::now())
                    .into_iter()
                    .collect()
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(WOULD_BLOCK_PAUSE);
                lane_state
                    .framer
                    .on_idle(Instant::now())
                    .into_iter()
                    .collect()
            }
            Err(e) => return Err(ReadError::Io(e)),
        };
        for event in events {
            if lane_state.handle(event) == Flow::Stop {
                return Ok(());
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Lane<'a> {
    lane: &'a str,
    framer: Framer,
    debounce: Duration,
    /// The last good code and when it was last read, for debouncing.
    last: Option<(ScannedCode, Instant)>,
    tx: &'a Sender<LaneRead>,
    metrics: &'a Metrics,
    shutdown: &'a CancellationToken,
}

impl Lane<'_> {
    fn handle(&mut self, event: FrameEvent) -> Flow {
        let lane = self.lane;
        let text = match event {
            FrameEvent::Line(text) => text,
            FrameEvent::Dropped(reason) => {
                warn!(lane = %lane, reason = reason.reason(), "Dropped scan.");
                self.metrics.scan(lane, reason.reason());
                return Flow::Continue;
            }
        };
        let now = Instant::now();
        let (symbology, body) = split_aim(&text);
        let code = match classify(symbology, body) {
            Ok(code) => code,
            Err(e) => {
                return self.reject(&e, symbology.map(|s| s.to_string()), body.len());
            }
        };

        // The window slides with every read of the same code: a card held in front of a
        // presentation scanner is re-read every few hundred ms and must still count once.
        let repeated = matches!(&self.last, Some((last, at)) if *last == code && now.saturating_duration_since(*at) < self.debounce);
        self.last = Some((code.clone(), now));
        if repeated {
            debug!(lane = %lane, kind = code.kind(), "Debounced repeated scan.");
            self.metrics.scan(lane, "debounced");
            return Flow::Continue;
        }

        let kind = code.kind();
        match &code {
            ScannedCode::Card(card) => info!(lane = %lane, kind, card = %card, "Scanned."),
            ScannedCode::AppQr(qr) => info!(lane = %lane, kind, member = %qr.member_id, "Scanned."),
        }
        let scan = LaneScan {
            lane: lane.to_owned(),
            code,
            symbology,
            read_at: now,
        };
        if self.send(LaneRead::Scan(scan)) == Flow::Stop {
            return Flow::Stop;
        }
        self.metrics.scan(lane, kind);
        Flow::Continue
    }

    fn reject(&self, error: &CodeError, symbology: Option<String>, len: usize) -> Flow {
        let lane = self.lane;
        let reason = error.reason();
        // The text is not logged: a damaged app token is still most of a credential.
        warn!(lane = %lane, reason, symbology = symbology.as_deref().unwrap_or("none"), len, error = %error, "Rejected scan.");
        self.metrics.scan(lane, reason);
        if let CodeError::Qr(e) = error {
            self.metrics.qr_rejected(e.reason());
        }
        self.send(LaneRead::Rejected(RejectedScan {
            lane: lane.to_owned(),
            reason,
            message: format!("Scan refused: {error}. Scan the card or app QR again."),
        }))
    }

    /// `blocking_send` would hold the loop while the consumer lags and make shutdown wait on
    /// it, so retry `try_send` and watch the token between tries.
    fn send(&self, mut scan: LaneRead) -> Flow {
        loop {
            match self.tx.try_send(scan) {
                Ok(()) => return Flow::Continue,
                Err(TrySendError::Closed(_)) => return Flow::Stop,
                Err(TrySendError::Full(back)) => {
                    if self.shutdown.is_cancelled() {
                        return Flow::Stop;
                    }
                    scan = back;
                    std::thread::sleep(FULL_CHANNEL_PAUSE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{qr, CardNumber, Terminator};
    use std::collections::VecDeque;
    use std::io;
    use tokio::sync::mpsc;

    /// One scripted step of a fake port.
    enum Step {
        Data(&'static [u8]),
        Owned(Vec<u8>),
        Idle(Duration),
        Fail(ErrorKind),
    }

    /// Plays `steps`, then reports EOF.
    struct Script(VecDeque<Step>);

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let data = match self.0.pop_front() {
                None => return Ok(0),
                Some(Step::Data(d)) => d.to_vec(),
                Some(Step::Owned(d)) => d,
                Some(Step::Idle(d)) => {
                    std::thread::sleep(d);
                    return Err(io::Error::new(ErrorKind::TimedOut, "timed out"));
                }
                Some(Step::Fail(kind)) => return Err(io::Error::new(kind, "failed")),
            };
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            if n < data.len() {
                self.0.push_front(Step::Owned(data[n..].to_vec()));
            }
            Ok(n)
        }
    }

    /// The scans only (refusals are checked by [`run_reads`]).
    fn run(
        steps: Vec<Step>,
        settings: &ScannerSettings,
    ) -> (Result<(), ReadError>, Vec<LaneScan>, String) {
        let (result, reads, metrics) = run_reads(steps, settings);
        let scans = reads
            .into_iter()
            .filter_map(|r| match r {
                LaneRead::Scan(s) => Some(s),
                LaneRead::Rejected(_) => None,
            })
            .collect();
        (result, scans, metrics)
    }

    fn run_reads(
        steps: Vec<Step>,
        settings: &ScannerSettings,
    ) -> (Result<(), ReadError>, Vec<LaneRead>, String) {
        let (tx, mut rx) = mpsc::channel(64);
        let metrics = Metrics::new();
        let result = read_scans(
            Script(steps.into()),
            "7",
            settings,
            &tx,
            &metrics,
            &CancellationToken::new(),
        );
        let mut scans = Vec::new();
        while let Ok(scan) = rx.try_recv() {
            scans.push(scan);
        }
        (result, scans, metrics.encode())
    }

    fn card(s: &str) -> ScannedCode {
        ScannedCode::Card(s.parse::<CardNumber>().unwrap())
    }

    fn codes(scans: &[LaneScan]) -> Vec<ScannedCode> {
        scans.iter().map(|s| s.code.clone()).collect()
    }

    #[test]
    fn a_refused_code_reaches_the_lane_without_its_text() {
        let (_, reads, _) = run_reads(
            vec![Step::Data(b"4006381333932\r\n]E04006381333931\r\n")],
            &ScannerSettings::default(),
        );
        let LaneRead::Rejected(refused) = &reads[0] else {
            panic!("the bad check digit was not reported: {reads:?}");
        };
        assert_eq!(
            (refused.lane.as_str(), refused.reason),
            ("7", "bad_check_digit")
        );
        assert!(
            refused.message.contains("check digit"),
            "{}",
            refused.message
        );
        assert!(!refused.message.contains("4006381333932"));
        assert!(matches!(&reads[1], LaneRead::Scan(s) if s.code == card("4006381333931")));
        assert_eq!(reads.len(), 2);
    }

    #[test]
    fn good_and_bad_scans() {
        let (result, scans, metrics) = run(
            vec![
                Step::Data(b"]E04006381"),
                Step::Data(b"333931\r"),
                Step::Data(b"\n\xff\xfe\r\n4006381333932\r\n"),
                Step::Data(b"]C0ab-77\r\n]A0ABCD\r\n"),
                Step::Fail(ErrorKind::Interrupted),
                Step::Data(b"036000291452\n"),
            ],
            &ScannerSettings::default(),
        );
        assert!(matches!(result, Err(ReadError::Disconnected)));
        assert_eq!(
            codes(&scans),
            vec![card("4006381333931"), card("AB-77"), card("0036000291452")]
        );
        assert_eq!(
            scans[0].symbology.map(|s| s.to_string()).as_deref(),
            Some("]E0")
        );
        assert_eq!(scans[0].lane, "7");
        assert!(scans[2].symbology.is_none());
        for expected in [
            r#"loyalty_scans_total{lane="7",outcome="card"} 3"#,
            r#"loyalty_scans_total{lane="7",outcome="not_utf8"} 1"#,
            r#"loyalty_scans_total{lane="7",outcome="bad_check_digit"} 1"#,
            r#"loyalty_scans_total{lane="7",outcome="unsupported_symbology"} 1"#,
        ] {
            assert!(
                metrics.contains(expected),
                "{expected} missing from\n{metrics}"
            );
        }
    }

    #[test]
    fn debounce_slides_and_resets_on_another_code() {
        let settings = ScannerSettings {
            debounce: Duration::from_millis(300),
            ..ScannerSettings::default()
        };
        let (_, scans, metrics) = run(
            vec![
                Step::Data(b"96385074\r\n96385074\r\n"),
                Step::Idle(Duration::from_millis(200)),
                Step::Data(b"96385074\r\n"),
                Step::Idle(Duration::from_millis(200)),
                // 400 ms after the first read, 200 ms after the last: still one scan.
                Step::Data(b"96385074\r\n"),
                Step::Idle(Duration::from_millis(450)),
                Step::Data(b"96385074\r\nAB-12\r\n96385074\r\n"),
            ],
            &settings,
        );
        assert_eq!(
            codes(&scans),
            vec![
                card("96385074"),
                card("96385074"),
                card("AB-12"),
                card("96385074")
            ]
        );
        assert!(
            metrics.contains(r#"loyalty_scans_total{lane="7",outcome="debounced"} 3"#),
            "{metrics}"
        );
    }

    #[test]
    fn app_qr_scans_and_malformed_tokens() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let token = qr::mint(&key, "member-9", 1_700_000_000, [1; 16]);
        let mut bytes = format!("]Q1{token}\r\n]Q1LE1.member-9.17\r\n").into_bytes();
        bytes.extend_from_slice(b"]Q1http://example.com\r\n");
        let (_, scans, metrics) = run(vec![Step::Owned(bytes)], &ScannerSettings::default());
        assert_eq!(scans.len(), 1);
        match &scans[0].code {
            ScannedCode::AppQr(q) => {
                assert_eq!(q.member_id, "member-9");
                q.verify(&key.verifying_key()).unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert!(
            metrics.contains(r#"loyalty_scans_total{lane="7",outcome="qr"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"loyalty_scans_total{lane="7",outcome="malformed"} 2"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"loyalty_qr_rejections_total{reason="malformed"} 1"#),
            "{metrics}"
        );
    }

    #[test]
    fn silence_ends_a_scan_without_terminator() {
        let settings = ScannerSettings {
            terminator: Terminator::None,
            inter_char_timeout: Duration::from_millis(20),
            ..ScannerSettings::default()
        };
        let (_, scans, _) = run(
            vec![
                Step::Data(b"4006381"),
                Step::Data(b"333931"),
                Step::Idle(Duration::from_millis(30)),
                Step::Idle(Duration::from_millis(1)),
            ],
            &settings,
        );
        assert_eq!(codes(&scans), vec![card("4006381333931")]);
    }

    #[test]
    fn io_errors_end_the_loop() {
        let (result, scans, _) = run(
            vec![Step::Data(b"AB-12\n"), Step::Fail(ErrorKind::Other)],
            &ScannerSettings::default(),
        );
        assert!(matches!(result, Err(ReadError::Io(_))));
        assert_eq!(codes(&scans), vec![card("AB-12")]);
    }

    #[test]
    fn shutdown_and_closed_receiver_stop_cleanly() {
        let metrics = Metrics::new();
        let settings = ScannerSettings::default();
        let endless = io::repeat(b'\n');

        let (tx, _rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(read_scans(endless, "1", &settings, &tx, &metrics, &shutdown).is_ok());

        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let endless = io::repeat(b'\n');
        assert!(read_scans(
            endless,
            "1",
            &settings,
            &tx,
            &metrics,
            &CancellationToken::new()
        )
        .is_ok());
    }

    #[test]
    fn full_channel_does_not_block_shutdown() {
        let (tx, _rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            cancel.cancel();
        });
        let started = Instant::now();
        let steps: Vec<Step> = vec![Step::Data(b"AB-1\nAB-2\nAB-3\n")];
        let result = read_scans(
            Script(steps.into()),
            "1",
            &ScannerSettings::default(),
            &tx,
            &Metrics::new(),
            &shutdown,
        );
        assert!(result.is_ok());
        assert!(started.elapsed() < Duration::from_secs(2));
        canceller.join().unwrap();
    }
}
