//! `loyalty-agent demo` plays its day to the end: HQ down then back, and carla's phone (the
//! reference member client) told of her door gift within seconds of the deciding sighting.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_demo_runs_and_carlas_phone_prints_her_gift_seconds_after_the_sighting() {
    let started = Instant::now();
    let out = Command::new(loyalty_e2e::agent_binary())
        .arg("demo")
        .output()
        .expect("running the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the demo stays short"
    );
    let line = text
        .lines()
        .find(|l| l.contains("carla's phone: GIFT  Free coffee"))
        .unwrap_or_else(|| panic!("no gift on carla's phone:\n{text}"));
    let secs: f64 = line
        .rsplit(", ")
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line}"));
    assert!(
        (0.0..5.0).contains(&secs),
        "the gift reached her phone {secs} s after the sighting: {line}"
    );
    assert!(text.contains("Agent and HQ stopped cleanly"), "{text}");
}
