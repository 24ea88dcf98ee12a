//! The whole serial chain of a zone sensor on one machine: the firmware's simulator (the same
//! node tasks as the board, radio fed from a trace) on a pseudo-terminal, the agent reading it.
//! The agent must show the node in `/healthz` (its hello, connected) and count its sightings;
//! when the node dies the agent reports it down. Zone entry comes with the proximity issue.

use loyalty_e2e::Store;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sensor_sim() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "-p",
            "loyalty-firmware",
            "--features",
            "sim",
            "--bin",
            "sensor-sim",
        ])
        .status()
        .expect("building sensor-sim");
    assert!(status.success());
    loyalty_e2e::target_profile_dir().join("sensor-sim")
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn simulated_node_on_a_pty_reports_to_the_agent() {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/traces/demo.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("sensor-door");
    let mut sim = Command::new(sensor_sim())
        .arg("--trace")
        .arg(&trace)
        .args([
            "--repeat",
            "--report-ms",
            "200",
            "--heartbeat-ms",
            "200",
            "--node-id",
            "4242",
            "--link",
        ])
        .arg(&link)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sensor-sim");
    let mut first = String::new();
    BufReader::new(sim.stdout.take().expect("sim stdout"))
        .read_line(&mut first)
        .expect("sim prints its pty");
    assert!(first.trim().starts_with("/dev/pts/"), "{first}");

    let store = Store::new(&format!(
        "[[proximity.sensors]]\nname = \"door\"\nport = \"{}\"\n",
        link.display()
    ));
    let _agent = store.start();
    let client = reqwest::blocking::Client::new();
    let health = || -> Value {
        client
            .get(store.url("/healthz"))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    wait_for("the node's hello in /healthz", || {
        let door = &health()["components"]["proximity"]["sensors"]["door"];
        door["hello"]["node_id"] == format!("{:016x}", 4242) && door["down"] == false
    });
    let sightings = || -> u64 {
        client
            .get(store.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("loyalty_sightings_total{sensor=\"door\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    wait_for("sightings counted from the trace", || sightings() > 0);
    assert_eq!(health()["components"]["proximity"]["state"], "ok");

    // The node dies: the agent says so.
    let _ = sim.kill();
    let _ = sim.wait();
    wait_for("the node reported down", || {
        health()["components"]["proximity"]["state"] == "degraded"
    });
    assert_eq!(health()["status"], "degraded");
}
