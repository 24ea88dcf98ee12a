//! Prints the figures the firmware issue asks for: frames decoded per second by the streaming
//! decoder (as the agent runs it), and the size of the node's tables.
//!
//! `cargo run --release -p loyalty-firmware --features mock-time --bin wire-bench`
//! (mock-time only because the node's future is built with the test doubles to measure it.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use loyalty_firmware::aggregate::{Aggregator, Entry, TABLE_CAPACITY};
use loyalty_firmware::heapless;
use loyalty_firmware::ibeacon::IBeacon;
use loyalty_firmware::node::testkit::{Capture, ScriptRadio, ScriptReader};
use loyalty_firmware::node::{self, NodeConfig, UPLINK_QUEUE};
use loyalty_firmware::token::PhoneToken;
use loyalty_firmware::wire::{
    self, CheckIn, Downlink, FrameDecoder, Heartbeat, RssiStats, Sighting, SightingBatch, Subject,
    Uplink, BATCH_CAPACITY, MAX_ENCODED,
};

fn token_sighting(i: u64) -> Sighting {
    Sighting {
        subject: Subject::Token(PhoneToken {
            id: 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1),
            tx_power: -59,
        }),
        rssi: RssiStats {
            count: 12,
            median: -67,
            max: -60,
            min: -81,
        },
    }
}

fn raw_sighting(i: u8) -> Sighting {
    Sighting {
        subject: Subject::Raw {
            addr: [i, 1, 2, 3, 4, 5],
            adv: heapless::Vec::from_slice(&[0x5A; 31]).expect("31"),
        },
        rssi: RssiStats {
            count: 300,
            median: -90,
            max: -70,
            min: -99,
        },
    }
}

/// A node's typical traffic: mostly small token batches, check-ins and heartbeats.
fn typical_mix() -> Vec<Uplink> {
    (0..1000u64)
        .map(|i| match i % 10 {
            0 => Uplink::Heartbeat(Heartbeat {
                uptime_ms: i * 1000,
                ..Heartbeat::default()
            }),
            1 => Uplink::CheckIn(CheckIn {
                token: PhoneToken {
                    id: i,
                    tx_power: -59,
                },
                rssi: -50,
                uptime_ms: i * 1000,
            }),
            _ => Uplink::Sightings(SightingBatch {
                interval_end_ms: i * 1000,
                interval_ms: 1000,
                more: false,
                sightings: (0..(i % 4)).map(token_sighting).collect(),
            }),
        })
        .collect()
}

fn largest() -> Vec<Uplink> {
    vec![Uplink::Sightings(SightingBatch {
        interval_end_ms: u64::MAX,
        interval_ms: 1000,
        more: true,
        sightings: (0..BATCH_CAPACITY as u8).map(raw_sighting).collect(),
    })]
}

fn stream(frames: &[Uplink]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| wire::encode_to_vec(f).expect("encodes"))
        .collect()
}

/// Decodes `bytes` repeatedly in `chunk`-byte reads for about `budget`; returns frames/s, MB/s.
fn measure(bytes: &[u8], frames_per_pass: usize, chunk: usize, budget: Duration) -> (f64, f64) {
    let mut decoder = FrameDecoder::<Uplink>::new();
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < budget {
        let mut ok = 0usize;
        for piece in bytes.chunks(chunk) {
            for frame in decoder.feed(black_box(piece)) {
                ok += usize::from(black_box(frame).is_ok());
            }
        }
        assert_eq!(ok, frames_per_pass, "every frame decodes");
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let frames = (passes as usize * frames_per_pass) as f64;
    (
        frames / secs,
        (passes as usize * bytes.len()) as f64 / secs / 1e6,
    )
}

fn main() {
    println!("# wire decode (FrameDecoder<Uplink>, 4 KiB reads, one core)");
    for (name, frames) in [
        (
            "typical mix (heartbeat, check-in, 0-3 token batches)",
            typical_mix(),
        ),
        ("largest frame (8 raw sightings)", largest()),
    ] {
        let bytes = stream(&frames);
        let avg = bytes.len() as f64 / frames.len() as f64;
        // Warm up, then measure.
        measure(&bytes, frames.len(), 4096, Duration::from_millis(200));
        let (fps, mbps) = measure(&bytes, frames.len(), 4096, Duration::from_secs(2));
        println!("{name}: {avg:.0} B/frame, {fps:.0} frames/s, {mbps:.1} MB/s");
    }

    println!("# sizes (host, 64-bit; the board is 32-bit so its figures are smaller or equal)");
    println!("aggregate::Entry: {} B", size_of::<Entry>());
    println!(
        "aggregate::Aggregator ({TABLE_CAPACITY} devices): {} B",
        size_of::<Aggregator>()
    );
    println!(
        "uplink queue ({UPLINK_QUEUE} x Uplink of {} B): {} B",
        size_of::<Uplink>(),
        UPLINK_QUEUE * size_of::<Uplink>()
    );
    println!(
        "FrameDecoder<Downlink> (node rx): {} B, encode buffer: {MAX_ENCODED} B",
        size_of::<FrameDecoder<Downlink>>()
    );
    let config = NodeConfig::new(
        1,
        "bench",
        IBeacon {
            uuid: [0; 16],
            major: 0,
            minor: 0,
            measured_power: -59,
        },
    );
    let fut = node::run(
        ScriptRadio::default(),
        Capture::default(),
        ScriptReader::default(),
        config,
    );
    println!(
        "node::run future (all tasks, tables, queue, buffers; test radio): {} B",
        size_of_val(&fut)
    );
}
