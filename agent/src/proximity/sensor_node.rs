//! A zone-sensor node on a serial port: frames in, [`Sighting`]s out.
//!
//! [`read_node_frames`] is the blocking loop over any [`Read`] (a port, a pseudo-terminal, bytes
//! in a test): it feeds a [`FrameDecoder`], which resynchronises after garbage or a cut frame, and
//! turns [`Uplink::Sightings`] and [`Uplink::CheckIn`] into [`Sighting`]s; [`Uplink::Hello`] and
//! [`Uplink::Heartbeat`] only update [`NodeHealth`]. Frames that fail to decode are counted and
//! logged, never fatal.
//!
//! [`supervise_node`] owns one node for the life of the agent, like
//! [`crate::scan::port::supervise`] owns a scanner: it opens the port with
//! [`port::open`](crate::scan::port::open), runs the reader on a blocking thread, and re-opens
//! with the same capped, jittered backoff when the node is missing or unplugged.

use std::io::{ErrorKind, Read};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use loyalty_firmware::token::find_token;
use loyalty_firmware::wire::{self, DecodeError, FrameDecoder, Heartbeat, Hello, Subject, Uplink};
use serde_json::json;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Sighting;
use crate::serial::PortSource;
use crate::serial::{supervise_device, DeviceState, SerialDevice};

/// A node's connection state, for `/healthz`: the same states as a lane scanner's.
pub type NodeState = DeviceState;

/// Report interval assumed until the node says otherwise (Hello or a sightings batch).
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A connected node silent for more than this many report intervals is down.
pub const DOWN_AFTER_INTERVALS: u32 = 3;

/// A non-blocking reader would spin without this pause.
const WOULD_BLOCK_PAUSE: Duration = Duration::from_millis(10);
/// How often a full channel is retried, so shutdown stays prompt while the consumer lags.
const FULL_CHANNEL_PAUSE: Duration = Duration::from_millis(5);

/// Why the read loop stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeReadError {
    /// End of file or EIO (a pty whose master closed, an unplugged USB device): the node is gone.
    #[error("sensor node disconnected")]
    Disconnected,
    #[error("reading the sensor node failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
struct Inner {
    state: NodeState,
    connected_at: Option<Instant>,
    hello: Option<Hello>,
    heartbeat: Option<Heartbeat>,
    frames_ok: u64,
    frame_errors: u64,
    last_frame: Option<Instant>,
    last_error: Option<String>,
    report_interval: Duration,
}

/// One node's health, shared between its [`supervise_node`] task (which writes) and the health
/// endpoint (which reads).
#[derive(Debug)]
pub struct NodeHealth {
    inner: Mutex<Inner>,
}

impl Default for NodeHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeHealth {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: NodeState::Connecting,
                connected_at: None,
                hello: None,
                heartbeat: None,
                frames_ok: 0,
                frame_errors: 0,
                last_frame: None,
                last_error: None,
                report_interval: DEFAULT_REPORT_INTERVAL,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain values, whole after any panic: a poisoned lock is still good.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn state(&self) -> NodeState {
        self.lock().state.clone()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state(), NodeState::Connected { .. })
    }

    /// The node's latest Hello, if one arrived since the agent started.
    pub fn hello(&self) -> Option<Hello> {
        self.lock().hello.clone()
    }

    /// The node's latest heartbeat counters.
    pub fn heartbeat(&self) -> Option<Heartbeat> {
        self.lock().heartbeat
    }

    /// Frames decoded, and frames lost to decode errors.
    pub fn frame_counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.frames_ok, inner.frame_errors)
    }

    /// When the last good frame arrived.
    pub fn last_frame(&self) -> Option<Instant> {
        self.lock().last_frame
    }

    /// The node's report interval: from its Hello or its latest sightings batch, else
    /// [`DEFAULT_REPORT_INTERVAL`].
    pub fn report_interval(&self) -> Duration {
        self.lock().report_interval
    }

    /// Connected, but no good frame for more than [`DOWN_AFTER_INTERVALS`] report intervals
    /// (counted from the connection when no frame arrived since).
    pub fn is_down(&self, now: Instant) -> bool {
        let inner = self.lock();
        if !matches!(inner.state, NodeState::Connected { .. }) {
            return false;
        }
        let since = match (inner.last_frame, inner.connected_at) {
            (Some(frame), Some(connected)) => frame.max(connected),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return false,
        };
        now.saturating_duration_since(since) > inner.report_interval * DOWN_AFTER_INTERVALS
    }

    /// Everything above as JSON, for `/healthz`.
    pub fn snapshot(&self) -> serde_json::Value {
        let now = Instant::now();
        let down = self.is_down(now);
        let inner = self.lock();
        let hello = inner.hello.as_ref().map(|h| {
            json!({
                // Hex: a u64 does not survive JSON numbers in every reader.
                "node_id": format!("{:016x}", h.node_id),
                "firmware": h.firmware.as_str(),
                "board": h.board.as_str(),
                "calibration": {
                    "rssi_at_1m": h.calibration.rssi_at_1m,
                    "path_loss_x10": h.calibration.path_loss_x10,
                },
                "report_interval_ms": h.report_interval_ms,
            })
        });
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        json!({
            "connection": inner.state,
            "down": down,
            "hello": hello,
            "heartbeat": inner.heartbeat,
            "frames_ok": inner.frames_ok,
            "frame_errors": inner.frame_errors,
            "last_frame_error": inner.last_error,
            "last_frame_ms_ago": inner.last_frame.map(|t| ms(now.saturating_duration_since(t))),
            "report_interval_ms": ms(inner.report_interval),
        })
    }

    fn set(&self, state: NodeState) {
        self.lock().state = state;
    }

    fn set_connected(&self, port: String, now: Instant) {
        let mut inner = self.lock();
        inner.state = NodeState::Connected { port };
        inner.connected_at = Some(now);
    }

    fn record_frame(&self, frame: &Uplink, now: Instant) {
        let mut inner = self.lock();
        inner.frames_ok = inner.frames_ok.saturating_add(1);
        inner.last_frame = Some(now);
        match frame {
            Uplink::Hello(hello) => {
                if hello.report_interval_ms > 0 {
                    inner.report_interval = Duration::from_millis(hello.report_interval_ms.into());
                }
                inner.hello = Some(hello.clone());
            }
            Uplink::Sightings(batch) if batch.interval_ms > 0 => {
                inner.report_interval = Duration::from_millis(batch.interval_ms.into());
            }
            Uplink::Heartbeat(heartbeat) => inner.heartbeat = Some(*heartbeat),
            Uplink::Sightings(_) | Uplink::CheckIn(_) => {}
        }
    }

    fn record_error(&self, error: &DecodeError) {
        let mut inner = self.lock();
        inner.frame_errors = inner.frame_errors.saturating_add(1);
        inner.last_error = Some(error.to_string());
    }
}

/// The [`Sighting`]s one frame carries (none for Hello and Heartbeat).
fn sightings_of(frame: &Uplink, sensor: &str, at: Instant) -> Vec<Sighting> {
    match frame {
        Uplink::Sightings(batch) => batch
            .sightings
            .iter()
            .map(|s| Sighting {
                sensor: sensor.to_owned(),
                token: match &s.subject {
                    Subject::Token(token) => Some(token.id),
                    Subject::Raw { adv, .. } => find_token(adv).ok().map(|t| t.id),
                },
                rssi: s.rssi.median,
                rssi_max: s.rssi.max,
                count: s.rssi.count,
                check_in: false,
                at,
            })
            .collect(),
        Uplink::CheckIn(check_in) => vec![Sighting {
            sensor: sensor.to_owned(),
            token: Some(check_in.token.id),
            rssi: check_in.rssi,
            rssi_max: check_in.rssi,
            count: 1,
            check_in: true,
            at,
        }],
        Uplink::Hello(_) | Uplink::Heartbeat(_) => Vec::new(),
    }
}

/// Reads frames from `reader` and sends the sightings on `tx` until `shutdown` is cancelled or
/// the receiver is dropped (both `Ok(())`), the reader ends (`Err(Disconnected)`) or fails.
///
/// Blocking: run it under `spawn_blocking` or on a thread of its own. The reader should have a
/// short read timeout (ports from [`open`] use 50 ms): timeouts are idle ticks that notice
/// shutdown.
pub fn read_node_frames<R: Read>(
    mut reader: R,
    name: &str,
    tx: &Sender<Sighting>,
    health: &NodeHealth,
    shutdown: &CancellationToken,
) -> Result<(), NodeReadError> {
    let mut decoder = FrameDecoder::<Uplink>::new();
    let mut buf = [0u8; wire::MAX_ENCODED];
    loop {
        if shutdown.is_cancelled() || tx.is_closed() {
            return Ok(());
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => return Err(NodeReadError::Disconnected),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(WOULD_BLOCK_PAUSE);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                return Err(NodeReadError::Disconnected)
            }
            Err(e) => return Err(NodeReadError::Io(e)),
        };
        let now = Instant::now();
        for frame in decoder.feed(buf.get(..n).unwrap_or(&buf)) {
            match frame {
                Ok(frame) => {
                    health.record_frame(&frame, now);
                    match &frame {
                        Uplink::Hello(hello) => info!(
                            sensor = %name,
                            node_id = %format_args!("{:016x}", hello.node_id),
                            firmware = %hello.firmware,
                            board = %hello.board,
                            report_interval_ms = hello.report_interval_ms,
                            "Sensor node said hello."
                        ),
                        Uplink::Heartbeat(hb) => {
                            debug!(sensor = %name, uptime_ms = hb.uptime_ms, "Sensor node heartbeat.");
                        }
                        Uplink::Sightings(_) | Uplink::CheckIn(_) => {}
                    }
                    for sighting in sightings_of(&frame, name, now) {
                        if send(tx, shutdown, sighting) == Flow::Stop {
                            return Ok(());
                        }
                    }
                }
                Err(error) => {
                    health.record_error(&error);
                    warn!(sensor = %name, error = %error, "Sensor node frame lost.");
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// `blocking_send` would hold the loop while the consumer lags and make shutdown wait on it, so
/// retry `try_send` and watch the token between tries.
fn send(tx: &Sender<Sighting>, shutdown: &CancellationToken, mut sighting: Sighting) -> Flow {
    loop {
        match tx.try_send(sighting) {
            Ok(()) => return Flow::Continue,
            Err(TrySendError::Closed(_)) => return Flow::Stop,
            Err(TrySendError::Full(back)) => {
                if shutdown.is_cancelled() {
                    return Flow::Stop;
                }
                sighting = back;
                std::thread::sleep(FULL_CHANNEL_PAUSE);
            }
        }
    }
}

/// Runs one node until `shutdown` is cancelled or the receiver of `tx` is dropped: opens
/// `source` at `baud`, reads it, and re-opens with capped, jittered backoff when it is missing or
/// goes away.
pub async fn supervise_node(
    name: String,
    source: PortSource,
    baud: u32,
    tx: Sender<Sighting>,
    health: Arc<NodeHealth>,
    shutdown: CancellationToken,
) {
    let node = Node { name, tx, health };
    supervise_device(Arc::new(node), source, baud, shutdown).await;
}

struct Node {
    name: String,
    tx: Sender<Sighting>,
    health: Arc<NodeHealth>,
}

impl SerialDevice for Node {
    const KIND: &'static str = "sensor node";

    fn name(&self) -> &str {
        &self.name
    }

    fn consumer_gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn set_state(&self, state: NodeState) {
        self.health.set(state);
    }

    fn connected(&self, port: String, at: Instant) {
        self.health.set_connected(port, at);
    }

    fn read(
        &self,
        port: Box<dyn serialport::SerialPort>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        read_node_frames(port, &self.name, &self.tx, &self.health, shutdown)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::PathBuf;

    use loyalty_firmware::heapless;
    use loyalty_firmware::token::{encode_advertisement, PhoneToken};
    use loyalty_firmware::wire::{Calibration, CheckIn, RssiStats, SightingBatch};
    use serialport::{SerialPort as _, TTYPort};
    use tokio::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(3);

    fn hello(report_interval_ms: u32) -> Uplink {
        Uplink::Hello(Hello {
            node_id: 0x00c0_ffee_1234_5678,
            firmware: heapless::String::try_from("0.3.1").unwrap(),
            board: heapless::String::try_from("nrf52840-dongle").unwrap(),
            calibration: Calibration {
                rssi_at_1m: -61,
                path_loss_x10: 27,
            },
            report_interval_ms,
        })
    }

    fn heartbeat() -> Uplink {
        Uplink::Heartbeat(Heartbeat {
            uptime_ms: 12_000,
            dropped_frames: 2,
            radio_errors: 1,
            ..Heartbeat::default()
        })
    }

    fn stats(median: i8, max: i8, count: u16) -> RssiStats {
        RssiStats {
            count,
            median,
            max,
            min: median - 5,
        }
    }

    fn batch() -> Uplink {
        let mut sightings = heapless::Vec::new();
        sightings
            .push(wire::Sighting {
                subject: Subject::Token(PhoneToken {
                    id: 0x0123_4567_89ab_cdef,
                    tx_power: -59,
                }),
                rssi: stats(-62, -55, 14),
            })
            .unwrap();
        sightings
            .push(wire::Sighting {
                subject: Subject::Raw {
                    addr: [1, 2, 3, 4, 5, 6],
                    adv: encode_advertisement(42, -59),
                },
                rssi: stats(-80, -74, 3),
            })
            .unwrap();
        sightings
            .push(wire::Sighting {
                subject: Subject::Raw {
                    addr: [6, 5, 4, 3, 2, 1],
                    adv: heapless::Vec::from_slice(&[2, 1, 6]).unwrap(),
                },
                rssi: stats(-90, -88, 1),
            })
            .unwrap();
        Uplink::Sightings(SightingBatch {
            interval_end_ms: 12_000,
            interval_ms: 500,
            more: false,
            sightings,
        })
    }

    fn check_in() -> Uplink {
        Uplink::CheckIn(CheckIn {
            token: PhoneToken {
                id: 7,
                tx_power: -59,
            },
            rssi: -48,
            uptime_ms: 12_100,
        })
    }

    fn encoded(frames: &[Uplink]) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| wire::encode_to_vec(f).unwrap().to_vec())
            .collect()
    }

    /// Reads `bytes` to their end; returns what reached the channel.
    fn read_all(bytes: &[u8], health: &NodeHealth) -> Vec<Sighting> {
        let (tx, mut rx) = mpsc::channel(64);
        let result = read_node_frames(bytes, "entrance", &tx, health, &CancellationToken::new());
        assert!(
            matches!(result, Err(NodeReadError::Disconnected)),
            "{result:?}"
        );
        let mut out = Vec::new();
        while let Ok(s) = rx.try_recv() {
            out.push(s);
        }
        out
    }

    fn summary(s: &[Sighting]) -> Vec<(Option<u64>, i8, i8, u16, bool)> {
        s.iter()
            .map(|s| (s.token, s.rssi, s.rssi_max, s.count, s.check_in))
            .collect()
    }

    #[test]
    fn frames_become_sightings_and_health() {
        let health = NodeHealth::new();
        let bytes = encoded(&[hello(250), heartbeat(), batch(), check_in()]);
        let sightings = read_all(&bytes, &health);
        assert_eq!(
            summary(&sightings),
            [
                (Some(0x0123_4567_89ab_cdef), -62, -55, 14, false),
                (Some(42), -80, -74, 3, false),
                (None, -90, -88, 1, false),
                (Some(7), -48, -48, 1, true),
            ]
        );
        assert!(sightings.iter().all(|s| s.sensor == "entrance"));
        assert_eq!(health.frame_counts(), (4, 0));
        assert_eq!(health.hello().unwrap().node_id, 0x00c0_ffee_1234_5678);
        assert_eq!(health.heartbeat().unwrap().dropped_frames, 2);
        // The batch came after the hello: its interval wins.
        assert_eq!(health.report_interval(), Duration::from_millis(500));

        let snap = health.snapshot();
        assert_eq!(snap["hello"]["node_id"], "00c0ffee12345678");
        assert_eq!(snap["hello"]["board"], "nrf52840-dongle");
        assert_eq!(snap["hello"]["calibration"]["rssi_at_1m"], -61);
        assert_eq!(snap["heartbeat"]["radio_errors"], 1);
        assert_eq!(snap["frames_ok"], 4);
        assert_eq!(snap["connection"]["state"], "connecting");
        assert_eq!(snap["report_interval_ms"], 500);
    }

    #[test]
    fn garbage_and_cut_frames_are_counted_and_decoding_resumes() {
        let health = NodeHealth::new();
        let mut bytes = b"\xff\x13garbage\x00".to_vec();
        bytes.extend(encoded(&[hello(1000)]));
        // A frame cut short: its head, then the next frame's start follows directly.
        let cut = encoded(&[batch()]);
        bytes.extend(&cut[..cut.len() / 2]);
        bytes.push(0);
        // A flipped bit.
        let mut flipped = encoded(&[check_in()]);
        flipped[4] ^= 0x10;
        bytes.extend(flipped);
        bytes.extend(encoded(&[batch(), check_in()]));
        let sightings = read_all(&bytes, &health);
        assert_eq!(sightings.len(), 4, "{sightings:?}");
        assert_eq!(sightings[0].token, Some(0x0123_4567_89ab_cdef));
        assert!(sightings[3].check_in);
        assert_eq!(health.frame_counts(), (3, 3));
        assert!(health.snapshot()["last_frame_error"].is_string());
    }

    #[test]
    fn silence_for_three_intervals_is_down() {
        let health = NodeHealth::new();
        let t0 = Instant::now();
        // Not connected: never down.
        assert!(!health.is_down(t0 + Duration::from_secs(60)));
        health.set_connected("/dev/ttyACM0".into(), t0);
        // No frame yet, default 1 s interval, counted from the connection.
        assert!(!health.is_down(t0 + Duration::from_millis(3000)));
        assert!(health.is_down(t0 + Duration::from_millis(3001)));

        let t1 = t0 + Duration::from_millis(100);
        health.record_frame(&hello(200), t1);
        assert!(!health.is_down(t1 + Duration::from_millis(600)));
        assert!(health.is_down(t1 + Duration::from_millis(601)));
        let t2 = t1 + Duration::from_millis(500);
        health.record_frame(&heartbeat(), t2);
        assert!(!health.is_down(t2 + Duration::from_millis(600)));
        assert!(health.is_down(t2 + Duration::from_millis(700)));

        health.set(NodeState::Retrying {
            error: "gone".into(),
            attempt: 1,
            retry_in_ms: 250,
        });
        assert!(!health.is_down(t2 + Duration::from_secs(60)));
    }

    #[test]
    fn shutdown_and_closed_channel_stop_the_reader() {
        struct Idle;
        impl Read for Idle {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(5));
                Err(ErrorKind::TimedOut.into())
            }
        }
        let health = NodeHealth::new();
        let shutdown = CancellationToken::new();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        assert!(read_node_frames(Idle, "n", &tx, &health, &shutdown).is_ok());
        let (tx, _rx) = mpsc::channel(1);
        shutdown.cancel();
        assert!(read_node_frames(Idle, "n", &tx, &health, &shutdown).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn supervised_node_over_a_pty() {
        let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let path = PathBuf::from(slave.name().expect("the slave has a name"));
        let health = Arc::new(NodeHealth::new());
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervise_node(
            "till-zone".into(),
            PortSource::Path(path),
            115_200,
            tx,
            health.clone(),
            shutdown.clone(),
        ));
        let deadline = Instant::now() + WAIT;
        while !health.is_connected() {
            assert!(Instant::now() < deadline, "{:?}", health.state());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // open() discards input waiting at open time; let it finish before writing.
        tokio::time::sleep(Duration::from_millis(50)).await;

        let bytes = encoded(&[hello(1000), batch(), heartbeat(), check_in()]);
        for piece in bytes.chunks(37) {
            master.write_all(piece).expect("write to the pty master");
            master.flush().expect("flush the pty master");
        }
        let mut got = Vec::new();
        while got.len() < 4 {
            let s = tokio::time::timeout(WAIT, rx.recv())
                .await
                .expect("sightings arrive")
                .expect("channel open");
            got.push(s);
        }
        assert_eq!(
            summary(&got),
            [
                (Some(0x0123_4567_89ab_cdef), -62, -55, 14, false),
                (Some(42), -80, -74, 3, false),
                (None, -90, -88, 1, false),
                (Some(7), -48, -48, 1, true),
            ]
        );
        assert!(got.iter().all(|s| s.sensor == "till-zone"));
        assert_eq!(health.frame_counts(), (4, 0));
        assert!(!health.is_down(Instant::now()));
        assert_eq!(health.snapshot()["hello"]["firmware"], "0.3.1");

        // Unplugged: the reader sees EIO, the supervisor retries.
        drop(master);
        let deadline = Instant::now() + WAIT;
        while !matches!(health.state(), NodeState::Retrying { .. }) {
            assert!(Instant::now() < deadline, "{:?}", health.state());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        let stopping = Instant::now();
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert!(stopping.elapsed() < Duration::from_millis(300));
        assert_eq!(health.state(), NodeState::Stopped);
        drop(slave);
    }

    #[tokio::test]
    async fn missing_node_retries_and_shutdown_is_prompt() {
        let health = Arc::new(NodeHealth::new());
        let (tx, _rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervise_node(
            "n".into(),
            PortSource::Path("/nonexistent/ttyACM9".into()),
            115_200,
            tx,
            health.clone(),
            shutdown.clone(),
        ));
        let deadline = Instant::now() + WAIT;
        while !matches!(health.state(), NodeState::Retrying { .. }) {
            assert!(Instant::now() < deadline, "{:?}", health.state());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!health.is_down(Instant::now() + Duration::from_secs(60)));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(health.state(), NodeState::Stopped);
    }
}
