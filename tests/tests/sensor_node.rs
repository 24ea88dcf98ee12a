//! The whole serial chain of a zone sensor on one machine: the firmware's simulator (the same
//! node tasks as the board, radio fed from a trace) on a pseudo-terminal, the agent reading it.
//! The agent must show the node in `/healthz` (its hello, connected) and count its sightings;
//! when the node dies the agent reports it down. A member's phone heard by the node enters the
//! node's zone, dwells, and earns the zone's gift exactly once.

use loyalty_e2e::Store;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the simulator on its own pty behind `link`, replaying `trace` forever.
fn start_sim(trace: &Path, link: &Path, node_id: &str) -> std::process::Child {
    let mut sim = Command::new(loyalty_e2e::sensor_sim_binary())
        .arg("--trace")
        .arg(trace)
        .args([
            "--repeat",
            "--report-ms",
            "200",
            "--heartbeat-ms",
            "200",
            "--node-id",
            node_id,
            "--link",
        ])
        .arg(link)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sensor-sim");
    let mut first = String::new();
    BufReader::new(sim.stdout.take().expect("sim stdout"))
        .read_line(&mut first)
        .expect("sim prints its pty");
    assert!(first.trim().starts_with("/dev/pts/"), "{first}");
    sim
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
    let mut sim = start_sim(&trace, &link, "4242");

    let store = Store::new(&format!(
        "[[proximity.zones]]\nname = \"door\"\n\n[[proximity.sensors]]\nname = \"door\"\nport = \"{}\"\nzone = \"door\"\n",
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

#[test]
fn a_members_phone_heard_by_a_simulated_node_enters_its_zone_and_earns_the_dwell_gift_once() {
    const KEY: &str = "4c45000102030405060708090a0b0c0d";
    // What the member's app advertises now, from the agent's own phone-side generator.
    let phone = loyalty_e2e::phone(KEY);
    let mfg = phone["manufacturer_data"]
        .as_str()
        .expect("manufacturer data");

    // The phone sits half a metre from the node (-50 dBm against -59 at 1 m); a stranger's
    // phone (no member key) advertises far away.
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("coffee.jsonl");
    let mut lines = String::new();
    for i in 0..20 {
        lines.push_str(&format!(
            "{{\"t_ms\":{},\"addr\":\"c0:ff:ee:00:00:01\",\"rssi\":-50,\"mfg\":\"{mfg}\"}}\n",
            i * 100
        ));
        lines.push_str(&format!(
            "{{\"t_ms\":{},\"addr\":\"d0:0d:00:00:00:02\",\"rssi\":-90,\"mfg\":\"ffff4c450100000000deadbeefc5\"}}\n",
            i * 100 + 50
        ));
    }
    std::fs::write(&trace, lines).expect("writing the trace");
    let link = dir.path().join("sensor-coffee");
    let mut sim = start_sim(&trace, &link, "77");

    let store = Store::new(&format!(
        "[proximity]\n\n[[proximity.zones]]\nname = \"coffee\"\nmin_dwell_secs = 1\n\n\
         [[proximity.sensors]]\nname = \"coffee-node\"\nport = \"{}\"\nzone = \"coffee\"\nrssi_at_1m = -59\n\n\
         [[gifts]]\nid = \"coffee-dwell\"\ngift = \"Pastry\"\ntrigger = \"dwelled\"\nzone = \"coffee\"\n\
         dwell_seconds = 1\nlimit = \"once_per_day\"\nvalid_for_minutes = 30\n",
        link.display()
    ));
    store.import(&format!(
        r#"[{{"member_id": "m-coffee", "proximity_key": "{KEY}"}}]"#
    ));
    let _agent = store.start();
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| -> Value {
        client
            .get(store.url(path))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    wait_for("the member's zone entry and dwell gift", || {
        get("/v1/members/m-coffee")["gifts"]
            .as_array()
            .is_some_and(|g| !g.is_empty())
    });
    let tracking = &get("/healthz")["components"]["proximity"]["tracking"];
    assert!(tracking["resolved"].as_u64() > Some(0), "{tracking}");
    assert!(
        tracking["unknown_ids"].as_u64() > Some(0),
        "the stranger is heard but not resolved: {tracking}"
    );
    assert_eq!(tracking["open_visits"], 1, "{tracking}");
    // The member stays: still exactly one gift, for the coffee zone.
    std::thread::sleep(Duration::from_secs(2));
    let gifts = get("/v1/members/m-coffee")["gifts"].clone();
    assert_eq!(gifts.as_array().map(Vec::len), Some(1), "{gifts}");
    assert_eq!(gifts[0]["campaign_id"], "coffee-dwell");
    assert_eq!(gifts[0]["zone"], "coffee");
    assert_eq!(gifts[0]["gift"], "Pastry");
    let _ = sim.kill();
    let _ = sim.wait();
}

#[test]
fn proximity_record_writes_the_nodes_sightings_as_a_replayable_trace() {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/traces/demo.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("sensor-rec");
    let mut sim = start_sim(&trace, &link, "99");
    let store = Store::new(&format!(
        "[[proximity.zones]]\nname = \"door\"\n\n[[proximity.sensors]]\nname = \"door-rec\"\nport = \"{}\"\nzone = \"door\"\n",
        link.display()
    ));
    let out = dir.path().join("recorded.jsonl");
    let status = Command::new(loyalty_e2e::agent_binary())
        .args(["proximity", "record", "--config"])
        .arg(&store.config)
        .arg("--out")
        .arg(&out)
        .args(["--seconds", "3"])
        .stderr(Stdio::null())
        .status()
        .expect("running proximity record");
    assert!(status.success());
    let _ = sim.kill();
    let _ = sim.wait();
    let text = std::fs::read_to_string(&out).expect("the recording");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(!lines.is_empty(), "nothing recorded");
    assert!(lines.iter().all(|l| l["sensor"] == "door-rec"), "{text}");
    // The demo trace's walking phone, id 0x0123456789abcdef, is in the recording.
    assert!(
        lines.iter().any(|l| l["token"] == "0123456789abcdef"),
        "{text}"
    );
    // Offsets only grow: the file replays in order.
    let times: Vec<u64> = lines.iter().filter_map(|l| l["t_ms"].as_u64()).collect();
    assert_eq!(times.len(), lines.len());
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}
