//! The simulator end to end on one machine: sensor-sim on a pseudo-terminal, read back through
//! the same `FrameDecoder` the agent uses, with a command sent the other way.
//! Run with `--features sim` (its own invocation: the std time driver).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loyalty_firmware::wire::{self, Downlink, FrameDecoder, Subject, Uplink};

#[test]
fn simulated_node_speaks_over_a_pty() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/traces/demo.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sensor-sim"))
        .args([
            "--trace",
            trace,
            "--report-ms",
            "500",
            "--heartbeat-ms",
            "1000",
        ])
        .args(["--node-id", "77", "--exit-after-ms", "3000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sensor-sim starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("pty path");
    let path = first.trim();
    assert!(path.starts_with("/dev/pts/"), "{path:?}");
    let mut port = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open pty");
    port.write_all(
        &wire::encode_to_vec(&Downlink::SetReportInterval { interval_ms: 400 }).expect("encodes"),
    )
    .expect("send command");

    let mut decoder = FrameDecoder::<Uplink>::new();
    let mut frames = Vec::new();
    let mut buf = [0u8; 256];
    let started = Instant::now();
    // Reads until the simulator exits (the pty hangs up: EOF or EIO).
    while started.elapsed() < Duration::from_secs(10) {
        match port.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => frames.extend(decoder.feed(&buf[..n])),
        }
    }
    let status = child.wait().expect("sensor-sim exits");
    assert!(status.success());
    let frames: Vec<Uplink> = frames.into_iter().map(|f| f.expect("clean link")).collect();

    let hellos: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Hello(h) => Some((h.node_id, h.report_interval_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(hellos.first(), Some(&(77, 500)), "{frames:?}");
    assert!(
        hellos.contains(&(77, 400)),
        "command acknowledged: {hellos:?}"
    );
    let token = |s: &Subject| match s {
        Subject::Token(t) => Some(t.id),
        Subject::Raw { .. } => None,
    };
    let seen: Vec<u64> = frames
        .iter()
        .filter_map(|f| match f {
            Uplink::Sightings(b) => Some(b.sightings.iter().filter_map(|s| token(&s.subject))),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        seen.contains(&0x0123_4567_89AB_CDEF) && seen.contains(&0xDEAD_BEEF),
        "{seen:x?}"
    );
    assert!(frames.iter().any(|f| matches!(
        f,
        Uplink::CheckIn(c) if c.token.id == 0x0123_4567_89AB_CDEF && c.rssi == -52
    )));
    assert!(frames.iter().any(|f| matches!(f, Uplink::Heartbeat(_))));
}
