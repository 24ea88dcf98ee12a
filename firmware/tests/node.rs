//! Node tasks under embassy-time's mock driver: scripted radio and serial in, frames out.
//! Run with `--features mock-time`.

use std::collections::VecDeque;

use embassy_time::{Duration, Instant};
use loyalty_firmware::heapless;
use loyalty_firmware::ibeacon::{self, IBeacon};
use loyalty_firmware::node::testkit::{drive, lock_time, Capture, ScriptRadio, ScriptReader};
use loyalty_firmware::node::{self, Advertisement, CheckInWrite, Exit, NodeConfig};
use loyalty_firmware::token::{self, PhoneToken};
use loyalty_firmware::wire::{self, Calibration, Downlink, Heartbeat, Subject, Uplink};

const STEP: Duration = Duration::from_millis(1);

fn beacon() -> IBeacon {
    IBeacon {
        uuid: [0x11; 16],
        major: 7,
        minor: 3,
        measured_power: -59,
    }
}

fn config() -> NodeConfig {
    NodeConfig::new(0xDEAD_BEEF, "test-board", beacon())
}

fn phone(at: u64, id: u64, rssi: i8) -> (u64, Advertisement) {
    (
        at,
        Advertisement {
            addr: [id as u8, 1, 2, 3, 4, 0x40],
            rssi,
            data: token::encode_advertisement(id, -59),
        },
    )
}

fn headphones(at: u64, n: u8) -> (u64, Advertisement) {
    (
        at,
        Advertisement {
            addr: [n, 9, 9, 9, 9, 0xC0],
            rssi: -80,
            data: heapless::Vec::from_slice(&[2, 1, 6, 3, 3, 0x0D, 0x18]).expect("fits"),
        },
    )
}

fn command(at: u64, cmd: Downlink) -> (u64, Vec<u8>) {
    (at, wire::encode_to_vec(&cmd).expect("encodes").to_vec())
}

fn ok_frames(capture: &Capture) -> Vec<Uplink> {
    capture
        .frames()
        .into_iter()
        .map(|f| f.expect("node frames decode"))
        .collect()
}

fn until(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn boot_sends_delimiter_then_hello_then_reports_and_heartbeats() {
    let _t = lock_time();
    let capture = Capture::default();
    let fut = node::run(
        ScriptRadio::default(),
        capture.clone(),
        ScriptReader::default(),
        config(),
    );
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(0), STEP).is_none());
    let bytes = capture.0.borrow().clone();
    assert_eq!(bytes[0], 0, "lone delimiter first");
    let frames = ok_frames(&capture);
    let [Uplink::Hello(hello)] = &frames[..] else {
        panic!("expected only Hello at boot: {frames:?}");
    };
    assert_eq!(hello.node_id, 0xDEAD_BEEF);
    assert_eq!(hello.board.as_str(), "test-board");
    assert_eq!(hello.firmware.as_str(), loyalty_firmware::FIRMWARE_VERSION);
    assert_eq!(hello.report_interval_ms, 1000);

    assert!(drive(fut.as_mut(), until(999), STEP).is_none());
    assert_eq!(
        ok_frames(&capture).len(),
        1,
        "nothing before the first boundary"
    );
    assert!(drive(fut.as_mut(), until(1000), STEP).is_none());
    let frames = ok_frames(&capture);
    let Some(Uplink::Sightings(batch)) = frames.last() else {
        panic!("expected a batch at 1 s: {frames:?}");
    };
    assert!(batch.sightings.is_empty() && !batch.more);
    assert_eq!(batch.interval_end_ms, 1000);
    assert_eq!(batch.interval_ms, 1000);

    assert!(drive(fut.as_mut(), until(5000), STEP).is_none());
    let frames = ok_frames(&capture);
    let heartbeats: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Heartbeat(h) => Some(*h),
            _ => None,
        })
        .collect();
    assert_eq!(
        heartbeats,
        vec![Heartbeat {
            uptime_ms: 5000,
            queue_high_water: 1,
            ..Heartbeat::default()
        }]
    );
    let batches = frames
        .iter()
        .filter(|f| matches!(f, Uplink::Sightings(_)))
        .count();
    assert_eq!(batches, 5);
}

#[test]
fn scan_aggregate_uplink_reports_tokens_per_interval() {
    let _t = lock_time();
    let capture = Capture::default();
    let radio = ScriptRadio {
        adverts: vec![
            phone(100, 42, -70),
            headphones(150, 1),
            phone(200, 42, -60),
            phone(300, 42, -65),
            phone(999, 7, -90),
            phone(1001, 7, -88), // just after the boundary: next interval
            phone(1500, 42, -50),
        ],
        check_ins: vec![],
    };
    let fut = node::run(radio, capture.clone(), ScriptReader::default(), config());
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(2000), STEP).is_none());
    let batches: Vec<_> = ok_frames(&capture)
        .into_iter()
        .filter_map(|f| match f {
            Uplink::Sightings(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 2);
    let first = &batches[0];
    assert_eq!(
        first.sightings.len(),
        2,
        "headphones not forwarded by default"
    );
    let s42 = first
        .sightings
        .iter()
        .find(|s| {
            s.subject
                == Subject::Token(PhoneToken {
                    id: 42,
                    tx_power: -59,
                })
        })
        .expect("token 42");
    assert_eq!(
        (s42.rssi.count, s42.rssi.max, s42.rssi.min, s42.rssi.median),
        (3, -60, -70, -65)
    );
    let second = &batches[1];
    assert_eq!(second.interval_end_ms, 2000);
    let ids: Vec<_> = second
        .sightings
        .iter()
        .map(|s| match s.subject {
            Subject::Token(t) => t.id,
            Subject::Raw { .. } => 0,
        })
        .collect();
    assert!(ids.contains(&42) && ids.contains(&7), "{ids:?}");
}

#[test]
fn raw_advertisements_are_forwarded_when_enabled() {
    let _t = lock_time();
    let capture = Capture::default();
    let radio = ScriptRadio {
        adverts: vec![headphones(10, 1), headphones(20, 1), headphones(30, 2)],
        check_ins: vec![],
    };
    let mut cfg = config();
    cfg.forward_raw = true;
    let fut = node::run(radio, capture.clone(), ScriptReader::default(), cfg);
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(1000), STEP).is_none());
    let Some(Uplink::Sightings(batch)) = ok_frames(&capture).pop() else {
        panic!("no batch");
    };
    assert_eq!(batch.sightings.len(), 2);
    assert!(batch
        .sightings
        .iter()
        .all(|s| matches!(&s.subject, Subject::Raw { adv, .. } if adv[..3] == [2, 1, 6])));
}

#[test]
fn many_devices_span_several_batches() {
    let _t = lock_time();
    let capture = Capture::default();
    let radio = ScriptRadio {
        adverts: (0..20).map(|i| phone(10 + i, 1000 + i, -70)).collect(),
        check_ins: vec![],
    };
    let fut = node::run(radio, capture.clone(), ScriptReader::default(), config());
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(1000), STEP).is_none());
    let batches: Vec<_> = ok_frames(&capture)
        .into_iter()
        .filter_map(|f| match f {
            Uplink::Sightings(b) => Some(b),
            _ => None,
        })
        .collect();
    let sizes: Vec<_> = batches
        .iter()
        .map(|b| (b.sightings.len(), b.more))
        .collect();
    assert_eq!(sizes, vec![(8, true), (8, true), (4, false)]);
}

#[test]
fn check_in_is_forwarded_at_once_and_bad_ones_counted() {
    let _t = lock_time();
    let capture = Capture::default();
    let good = token::encode_manufacturer_data(PhoneToken {
        id: 0xABCD,
        tx_power: -12,
    });
    let radio = ScriptRadio {
        adverts: vec![],
        check_ins: vec![
            (
                1500,
                CheckInWrite {
                    rssi: -48,
                    value: heapless::Vec::from_slice(&good).expect("fits"),
                },
            ),
            (
                1600,
                CheckInWrite {
                    rssi: -48,
                    value: heapless::Vec::from_slice(b"hello").expect("fits"),
                },
            ),
        ],
    };
    let fut = node::run(radio, capture.clone(), ScriptReader::default(), config());
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(1500), STEP).is_none());
    let frames = ok_frames(&capture);
    assert_eq!(
        frames.last(),
        Some(&Uplink::CheckIn(wire::CheckIn {
            token: PhoneToken {
                id: 0xABCD,
                tx_power: -12
            },
            rssi: -48,
            uptime_ms: 1500,
        }))
    );
    assert!(drive(fut.as_mut(), until(5000), STEP).is_none());
    let hb = ok_frames(&capture)
        .into_iter()
        .find_map(|f| match f {
            Uplink::Heartbeat(h) => Some(h),
            _ => None,
        })
        .expect("heartbeat");
    assert_eq!(hb.bad_check_ins, 1);
}

#[test]
fn beacon_advertises_the_store_ibeacon() {
    let _t = lock_time();
    let radio = ScriptRadio::default();
    // Split ourselves to keep a handle on what the beacon half was asked to send.
    let (scanner, beacon_half) = loyalty_firmware::node::Radio::split(radio);
    let advertised = beacon_half.advertised.clone();
    struct Halves(
        Option<(
            loyalty_firmware::node::testkit::ScriptScanner,
            loyalty_firmware::node::testkit::ScriptBeacon,
        )>,
    );
    impl loyalty_firmware::node::Radio for Halves {
        type Scanner = loyalty_firmware::node::testkit::ScriptScanner;
        type Beacon = loyalty_firmware::node::testkit::ScriptBeacon;
        fn split(mut self) -> (Self::Scanner, Self::Beacon) {
            self.0.take().expect("split once")
        }
    }
    let fut = node::run(
        Halves(Some((scanner, beacon_half))),
        Capture::default(),
        ScriptReader::default(),
        config(),
    );
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(10), STEP).is_none());
    assert_eq!(
        advertised.borrow().as_slice(),
        &[ibeacon::encode(&beacon()).to_vec()]
    );
}

#[test]
fn commands_change_settings_and_are_acknowledged_with_hello() {
    let _t = lock_time();
    let capture = Capture::default();
    let mut commands = VecDeque::from(vec![
        command(
            100,
            Downlink::SetCalibration(Calibration {
                rssi_at_1m: -65,
                path_loss_x10: 30,
            }),
        ),
        command(200, Downlink::SetReportInterval { interval_ms: 250 }),
        // Implausible: refused, counted, no Hello.
        command(
            300,
            Downlink::SetCalibration(Calibration {
                rssi_at_1m: 20,
                path_loss_x10: 0,
            }),
        ),
        command(300, Downlink::SetReportInterval { interval_ms: 5 }),
    ]);
    // Garbage on the line: counted, then the next command still gets through.
    commands.push_back((350, b"\x01\x02\x03\x00".to_vec()));
    commands.push_back(command(400, Downlink::Identify));
    let fut = node::run(
        ScriptRadio::default(),
        capture.clone(),
        ScriptReader(commands),
        config(),
    );
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(1000), STEP).is_none());
    let frames = ok_frames(&capture);
    let hellos: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Hello(h) => Some((h.calibration, h.report_interval_ms)),
            _ => None,
        })
        .collect();
    let new_cal = Calibration {
        rssi_at_1m: -65,
        path_loss_x10: 30,
    };
    assert_eq!(
        hellos,
        vec![
            (Calibration::default(), 1000),
            (new_cal, 1000),
            (new_cal, 250),
            (new_cal, 250),
        ]
    );
    // Interval re-armed at 200 ms: boundaries at 450, 700, 950.
    let ends: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Sightings(b) => Some(b.interval_end_ms),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![450, 700, 950]);
    assert!(drive(fut.as_mut(), until(5000), STEP).is_none());
    let hb = ok_frames(&capture)
        .into_iter()
        .find_map(|f| match f {
            Uplink::Heartbeat(h) => Some(h),
            _ => None,
        })
        .expect("heartbeat");
    assert_eq!(hb.rejected_commands, 3);
}

#[test]
fn reboot_command_ends_run() {
    let _t = lock_time();
    let commands = VecDeque::from(vec![command(1234, Downlink::Reboot)]);
    let fut = node::run(
        ScriptRadio::default(),
        Capture::default(),
        ScriptReader(commands),
        config(),
    );
    let mut fut = std::pin::pin!(fut);
    assert_eq!(drive(fut.as_mut(), until(10_000), STEP), Some(Exit::Reboot));
    assert_eq!(Instant::now(), Instant::from_millis(1234));
}

#[test]
fn crowd_larger_than_the_table_is_counted_in_heartbeat() {
    let _t = lock_time();
    let capture = Capture::default();
    // 200 distinct phones within the first interval.
    let radio = ScriptRadio {
        adverts: (0..200)
            .map(|i| phone(1 + i * 4, 10_000 + i, -75))
            .collect(),
        check_ins: vec![],
    };
    let fut = node::run(radio, capture.clone(), ScriptReader::default(), config());
    let mut fut = std::pin::pin!(fut);
    assert!(drive(fut.as_mut(), until(5000), STEP).is_none());
    let frames = ok_frames(&capture);
    let hb = frames
        .iter()
        .find_map(|f| match f {
            Uplink::Heartbeat(h) => Some(*h),
            _ => None,
        })
        .expect("heartbeat");
    assert_eq!(hb.dropped_sightings, 200 - 128);
    assert_eq!(hb.table_high_water, 128);
    let reported: usize = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Sightings(b) => Some(b.sightings.len()),
            _ => None,
        })
        .sum();
    assert_eq!(reported, 128);
}
