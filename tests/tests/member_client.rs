//! The reference member client (`loyalty-agent member ...`) against a real HQ, as an
//! integrator runs it: a new key registered as the member's app key, the checkout QR it shows,
//! what it must advertise, the profile, and `watch` printing a gift the moment HQ has it. A
//! client with another member's key is refused, and says so.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loyalty_e2e::{agent_binary, Hq};
use serde_json::{json, Value};

const STORE: &str = "s1";
const TOKEN: &str = "s1-token-0123";

fn member(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(agent_binary())
        .arg("member")
        .args(args)
        .output()
        .expect("running loyalty-agent member");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn millis(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).expect("after 1970");
    chrono::DateTime::from_timestamp(d.as_secs() as i64, d.subsec_millis() * 1_000_000)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn the_member_client_shows_its_qr_and_prints_a_gift_as_it_arrives() {
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("carla.key");
    let key = key_file.to_str().expect("utf-8 path");

    let (ok, public, err) = member(&["init", "--key-file", key]);
    assert!(ok, "{err}");
    let public = public.trim().to_owned();
    assert_eq!(public.len(), 44, "32 bytes in base64: {public}");
    let (ok, _, err) = member(&["init", "--key-file", key]);
    assert!(
        !ok && err.contains("must not exist"),
        "never overwrites a key: {err}"
    );
    hq.put_member(
        "carla",
        &json!({"display_name": "Carla", "qr_public_key": public}),
    );
    hq.put_member("dave", &json!({}));

    let (ok, qr, err) = member(&["qr", "--key-file", key, "--member", "carla"]);
    assert!(ok, "{err}");
    let parts: Vec<&str> = qr.trim().split('.').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1]),
        (5, "LE1", "carla"),
        "{qr}"
    );

    let (ok, advert, err) = member(&[
        "advertise",
        "--proximity-key",
        "c0ffee00c0ffee00c0ffee00c0ffee00",
    ]);
    assert!(ok, "{err}");
    let advert: Value = serde_json::from_str(&advert).expect("JSON");
    assert_eq!(advert["rotating_id"].as_str().map(str::len), Some(16));

    let url = hq.url();
    let (ok, shown, err) = member(&["show", "--hq", &url, "--member", "carla", "--key-file", key]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["profile"]["display_name"], "Carla");

    // Carla's key claiming to be dave: HQ refuses and the client says why.
    let (ok, _, err) = member(&["show", "--hq", &url, "--member", "dave", "--key-file", key]);
    assert!(!ok);
    assert!(err.contains("401 bad_signature"), "{err}");

    let mut watch = Command::new(agent_binary())
        .args([
            "member",
            "watch",
            "--hq",
            &url,
            "--member",
            "carla",
            "--key-file",
            key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting watch");
    let (tx, lines) = mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // `watch` follows the feed from the moment it is connected, which the test cannot see from
    // outside: the store pushes a gift each second until one is printed (at most 15).
    let mut printed = None;
    for seq in 1..=15 {
        let gift = json!({
            "event_id": format!("ev-gift-{seq}"), "store_id": STORE, "seq": seq,
            "kind": "gift_issued", "account": "carla", "lane": null, "points": 0,
            "rule_version": "welcome@1",
            "payload": {"gift_id": format!("g-{seq}"), "campaign_id": "welcome",
                "campaign_version": 1, "member_id": "carla", "once_per_member": false,
                "gift": "Free coffee",
                "expires_at": millis(SystemTime::now() + Duration::from_secs(3600))},
            "recorded_at": millis(SystemTime::now()),
            "idempotency_key": format!("gift:g-{seq}"),
        });
        let (s, body) = hq.push(STORE, TOKEN, "LE-LEDGER-1", seq - 1, &[gift]);
        assert_eq!(s, 200, "{body}");
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            printed = Some(line);
            break;
        }
    }
    let line = printed.expect("watch printed a gift pushed while it was watching");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        line.starts_with("GIFT  Free coffee from store s1"),
        "{line}"
    );
    assert!(
        line.contains("after the sighting that decided it"),
        "{line}"
    );
}
