//! Scanners over real pseudo-terminals: the test writes what a scanner would send on the master
//! side, the agent reads the slave side exactly as it reads `/dev/ttyACM0`, and the assertions
//! are about what the cashier's lane receives.
//!
//! A re-plugged scanner is a new pty pair with a symlink re-pointed at it, which is how udev's
//! stable names (`/dev/serial/by-id/...`) behave when a USB scanner comes back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loyalty_agent::metrics::Metrics;
use loyalty_agent::scan::{
    qr, read_scans, supervise, CardNumber, LaneRead, LaneScan, PortSource, ReadError, ScannedCode,
    ScannerHealth, ScannerSettings, ScannerState,
};
use serialport::{SerialPort, TTYPort};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for a loaded machine, short enough that a failure does not hang.
const WAIT: Duration = Duration::from_secs(3);
/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(400);

/// A simulated scanner: the master side of a pty pair; the slave is kept open so the pair lives
/// until the scanner is "unplugged".
struct Scanner {
    master: TTYPort,
    slave: TTYPort,
}

impl Scanner {
    fn plug() -> Self {
        let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        Self { master, slave }
    }

    fn device(&self) -> PathBuf {
        PathBuf::from(self.slave.name().expect("the slave has a name"))
    }

    /// Writes `pieces` with a short pause between them, as a slow UART delivers a scan.
    async fn send(&mut self, pieces: &[&[u8]]) {
        for piece in pieces {
            self.master
                .write_all(piece)
                .expect("write to the pty master");
            self.master.flush().expect("flush the pty master");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    fn unplug(self) {
        drop(self.master);
        drop(self.slave);
    }
}

/// `read_scans` running on a pty slave.
struct ReaderLane {
    rx: mpsc::Receiver<LaneRead>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ReadError>>,
}

fn start_reader(scanner: &Scanner, settings: ScannerSettings) -> ReaderLane {
    let mut port = scanner.slave.try_clone_native().expect("clone the slave");
    port.set_timeout(Duration::from_millis(50))
        .expect("set the read timeout");
    let (tx, rx) = mpsc::channel(16);
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let task = {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || {
            read_scans(port, "1", &settings, &tx, &metrics, &shutdown)
        })
    };
    ReaderLane {
        rx,
        metrics,
        shutdown,
        task,
    }
}

impl ReaderLane {
    async fn stop(self) -> Result<(), ReadError> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the reader stops")
            .expect("the reader does not panic")
    }
}

async fn next_read(rx: &mut mpsc::Receiver<LaneRead>) -> LaneRead {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a read within the deadline")
        .expect("the channel is open")
}

/// The next code read, past any refused scans (their own test checks them).
async fn next_scan(rx: &mut mpsc::Receiver<LaneRead>) -> LaneScan {
    loop {
        if let LaneRead::Scan(scan) = next_read(rx).await {
            return scan;
        }
    }
}

/// No further code identifies anyone (refused scans may still be reported).
async fn assert_quiet(rx: &mut mpsc::Receiver<LaneRead>) {
    let deadline = tokio::time::Instant::now() + QUIET;
    while let Ok(Some(read)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let LaneRead::Scan(scan) = read {
            panic!("unexpected scan {scan:?}");
        }
    }
}

fn card(text: &str) -> ScannedCode {
    ScannedCode::Card(text.parse::<CardNumber>().expect("a valid card number"))
}

fn assert_counted(metrics: &Metrics, outcome: &str, n: u64) {
    let text = metrics.encode();
    let line = format!(r#"loyalty_scans_total{{lane="1",outcome="{outcome}"}} {n}"#);
    assert!(text.contains(&line), "{line} missing from\n{text}");
}

async fn wait_for_state(health: &ScannerHealth, what: &str, want: impl Fn(&ScannerState) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = health.state();
        if want(&state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}; state is {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Points `link` at `target`, atomically as udev does.
fn point_link(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("create the symlink");
    std::fs::rename(&tmp, link).expect("re-point the symlink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_scan_written_in_pieces_arrives_once() {
    let mut scanner = Scanner::plug();
    let mut lane = start_reader(&scanner, ScannerSettings::default());

    scanner
        .send(&[b"]E0400", b"63813", b"33931", b"\r", b"\n"])
        .await;

    let scan = next_scan(&mut lane.rx).await;
    assert_eq!(scan.lane, "1");
    assert_eq!(scan.code, card("4006381333931"));
    assert_eq!(
        scan.symbology.map(|s| s.to_string()).as_deref(),
        Some("]E0")
    );
    assert_quiet(&mut lane.rx).await;
    assert_counted(&lane.metrics, "card", 1);
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cr_lf_and_crlf_each_end_one_scan() {
    let mut scanner = Scanner::plug();
    let mut lane = start_reader(&scanner, ScannerSettings::default());

    scanner
        .send(&[
            b"AB-0001\r",
            b"AB-0002\n",
            b"AB-0003\r\n",
            // CR at the end of one write, LF at the start of the next.
            b"AB-0004\r",
            b"\nab-0005\r\n\r\n",
            b"036000291452\n",
        ])
        .await;

    for expected in [
        "AB-0001",
        "AB-0002",
        "AB-0003",
        "AB-0004",
        "AB-0005",
        "0036000291452",
    ] {
        assert_eq!(next_scan(&mut lane.rx).await.code, card(expected));
    }
    assert_quiet(&mut lane.rx).await;
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_then_a_good_scan_still_gets_through() {
    let mut scanner = Scanner::plug();
    let mut lane = start_reader(&scanner, ScannerSettings::default());

    scanner
        .send(&[
            b"\xff\xfe\x00\x81\r\n",
            b"4006381333932\r\n",
            b"]E096385074\r\n",
            b"LE1.member-1.1700000000.nonce.sig\r\n",
            b"5901234123457\r\n",
        ])
        .await;

    // The lane hears of each refused code (the noise line is dropped before it is a code).
    let mut refused = Vec::new();
    let scan = loop {
        match next_read(&mut lane.rx).await {
            LaneRead::Rejected(r) => refused.push(r.reason),
            LaneRead::Scan(scan) => break scan,
        }
    };
    assert_eq!(refused, ["bad_check_digit", "malformed", "malformed"]);
    assert_eq!(scan.code, card("5901234123457"));
    assert_quiet(&mut lane.rx).await;
    assert_counted(&lane.metrics, "not_utf8", 1);
    assert_counted(&lane.metrics, "bad_check_digit", 1);
    assert_counted(&lane.metrics, "malformed", 2);
    assert_counted(&lane.metrics, "card", 1);
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_line_is_dropped_whole() {
    let mut scanner = Scanner::plug();
    let mut lane = start_reader(&scanner, ScannerSettings::default());

    // 5000 bytes against the default 4096 limit, in pty-sized pieces; its tail is not a scan.
    let long = [b"AB-1".repeat(1250), b"\r\n".to_vec()].concat();
    let pieces: Vec<&[u8]> = long.chunks(1000).collect();
    scanner.send(&pieces).await;
    scanner.send(&[b"96385074\r\n"]).await;

    assert_eq!(next_scan(&mut lane.rx).await.code, card("96385074"));
    assert_quiet(&mut lane.rx).await;
    assert_counted(&lane.metrics, "too_long", 1);
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_scan_is_debounced() {
    let mut scanner = Scanner::plug();
    let settings = ScannerSettings {
        debounce: Duration::from_millis(500),
        ..ScannerSettings::default()
    };
    let mut lane = start_reader(&scanner, settings);

    scanner
        .send(&[b"]E04006381333931\r\n", b"]E04006381333931\r\n"])
        .await;
    assert_eq!(next_scan(&mut lane.rx).await.code, card("4006381333931"));
    assert_quiet(&mut lane.rx).await;
    assert_counted(&lane.metrics, "debounced", 1);

    // Past the window the same card counts again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    scanner.send(&[b"]E04006381333931\r\n"]).await;
    assert_eq!(next_scan(&mut lane.rx).await.code, card("4006381333931"));
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_qr_arrives_parsed_and_verifiable() {
    let mut scanner = Scanner::plug();
    let mut lane = start_reader(&scanner, ScannerSettings::default());
    let key = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let token = qr::mint(&key, "member-7", 1_700_000_000, [4; 16]);

    scanner.send(&[b"]Q1", token.as_bytes(), b"\r\n"]).await;

    let scan = next_scan(&mut lane.rx).await;
    let ScannedCode::AppQr(app) = scan.code else {
        panic!("not an app QR: {:?}", scan.code);
    };
    assert_eq!(app.member_id, "member-7");
    app.verify(&key.verifying_key()).expect("a genuine token");
    assert_counted(&lane.metrics, "qr", 1);
    lane.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_writer_ends_read_scans_with_an_error() {
    let mut scanner = Scanner::plug();
    let mut port = scanner.slave.try_clone_native().expect("clone the slave");
    port.set_timeout(Duration::from_millis(50))
        .expect("set the read timeout");
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::task::spawn_blocking(move || {
        let metrics = Metrics::new();
        read_scans(
            port,
            "1",
            &ScannerSettings::default(),
            &tx,
            &metrics,
            &CancellationToken::new(),
        )
    });

    scanner.send(&[b"AB-1234\r\n"]).await;
    assert_eq!(next_scan(&mut rx).await.code, card("AB-1234"));
    scanner.unplug();

    let result = tokio::time::timeout(WAIT, task)
        .await
        .expect("the reader notices the hang-up")
        .expect("the reader does not panic");
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervise_reconnects_when_the_scanner_comes_back() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let link = dir.path().join("lane1-scanner");
    let mut scanner = Scanner::plug();
    point_link(&link, &scanner.device());

    let (tx, mut rx) = mpsc::channel(16);
    let health = Arc::new(ScannerHealth::new());
    let shutdown = CancellationToken::new();
    let settings = ScannerSettings {
        source: PortSource::Path(link.clone()),
        ..ScannerSettings::default()
    };
    let task = tokio::spawn(supervise(
        "1".into(),
        settings,
        tx,
        health.clone(),
        Arc::new(Metrics::new()),
        shutdown.clone(),
    ));

    let link_name = link.display().to_string();
    wait_for_state(&health, "connected", |s| {
        *s == ScannerState::Connected {
            port: link_name.clone(),
        }
    })
    .await;
    scanner.send(&[b"]E05901234123457\r\n"]).await;
    assert_eq!(next_scan(&mut rx).await.code, card("5901234123457"));

    scanner.unplug();
    wait_for_state(&health, "retrying", |s| {
        matches!(s, ScannerState::Retrying { .. })
    })
    .await;

    let mut scanner = Scanner::plug();
    point_link(&link, &scanner.device());
    wait_for_state(&health, "connected again", |s| {
        matches!(s, ScannerState::Connected { .. })
    })
    .await;
    scanner.send(&[b"AB-0042\r\n"]).await;
    assert_eq!(next_scan(&mut rx).await.code, card("AB-0042"));

    let stopping = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("supervise stops")
        .expect("supervise does not panic");
    assert!(
        stopping.elapsed() < Duration::from_millis(200),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    assert_eq!(health.state(), ScannerState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scanner_does_not_stop_another_lane() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (tx, mut rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());

    let missing = Arc::new(ScannerHealth::new());
    let missing_task = tokio::spawn(supervise(
        "2".into(),
        ScannerSettings {
            source: PortSource::Path(dir.path().join("not-plugged-in")),
            ..ScannerSettings::default()
        },
        tx.clone(),
        missing.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    let mut scanner = Scanner::plug();
    let present = Arc::new(ScannerHealth::new());
    let present_task = tokio::spawn(supervise(
        "1".into(),
        ScannerSettings {
            source: PortSource::Path(scanner.device()),
            ..ScannerSettings::default()
        },
        tx,
        present.clone(),
        metrics,
        shutdown.clone(),
    ));

    wait_for_state(&missing, "retrying", |s| {
        matches!(s, ScannerState::Retrying { .. })
    })
    .await;
    wait_for_state(&present, "connected", |s| {
        matches!(s, ScannerState::Connected { .. })
    })
    .await;
    scanner.send(&[b"96385074\r\n"]).await;
    let scan = next_scan(&mut rx).await;
    assert_eq!((scan.lane.as_str(), scan.code), ("1", card("96385074")));

    shutdown.cancel();
    for task in [missing_task, present_task] {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("supervise stops")
            .expect("supervise does not panic");
    }
    assert_eq!(missing.state(), ScannerState::Stopped);
    assert_eq!(present.state(), ScannerState::Stopped);
}
