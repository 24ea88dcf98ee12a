//! Members walking past and into the store, through the real binary: a sighting trace replayed
//! as the door's two sensors (`source = "replay"`), ids generated for now with
//! `loyalty-agent proximity phone`, a `[[gifts]]` welcome campaign. The passer-by gets nothing;
//! the member lingering at the door edge gets exactly one welcome gift, shown on the member
//! endpoint and counted in `/healthz`; the cashier hands it over once.

use loyalty_e2e::{door_proximity_toml, type_on, Store};
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::time::{Duration, Instant};

const LINGERER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const PASSER_KEY: &str = "00112233445566778899aabbccddeeff";
const CARD: &str = "4006381333931";

/// A fixed, irregular noise sequence (dB): spikes, fades and a mean of about 0.
const NOISE: [i32; 16] = [0, 3, -4, 1, -2, 5, -3, 2, -1, -5, 4, 0, -12, 2, -3, 3];

/// The trace, JSON lines: reports every 500 ms per sensor.
/// - The passer-by (t 0-8 s) walks along the pavement: loud at the outside sensor, faint
///   through the wall at the inside one; sent as a bare `token`.
/// - The lingerer (t 1-13 s) stands in the doorway, about 1.8 m from the inside sensor (the
///   door's enter threshold is 2 m) and farther from the outside one, with noise, fades and a
///   1.5 s silence; sent as the whole advertisement (`adv`), so the decoder runs.
fn trace(passer_token: &str, lingerer_adv: &str) -> (String, usize) {
    let mut lines = Vec::new();
    for step in 0u64..=26 {
        let t_ms = step * 500;
        let n = |salt: u64| NOISE[((step + salt) % 16) as usize];
        if t_ms <= 8_000 {
            let along = (t_ms as i32 - 4_000).abs() / 1_000; // metres from the door, roughly
            lines.push(json!({"t_ms": t_ms, "sensor": "door-outside", "rssi": -60 - along * 2 + n(0) / 2, "token": passer_token}));
            lines.push(json!({"t_ms": t_ms, "sensor": "door-inside", "rssi": -84 - along + n(5) / 2, "token": passer_token}));
        }
        if (1_000..=13_000).contains(&t_ms) && !(6_000..7_500).contains(&t_ms) {
            lines.push(json!({"t_ms": t_ms, "sensor": "door-inside", "rssi": -64 + n(3), "adv": lingerer_adv}));
            lines.push(json!({"t_ms": t_ms, "sensor": "door-outside", "rssi": -71 + n(9), "adv": lingerer_adv}));
        }
    }
    let count = lines.len();
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    (text.join("\n") + "\n", count)
}

fn get(client: &reqwest::blocking::Client, store: &Store, path: &str) -> Value {
    client
        .get(store.url(path))
        .send()
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null)
}

/// Polls `path` until `done` holds or 20 s pass; returns the last answer.
fn poll(
    client: &reqwest::blocking::Client,
    store: &Store,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get(client, store, path);
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn passer_by_gets_nothing_and_door_edge_lingerer_one_redeemable_welcome_gift() {
    let lingerer = loyalty_e2e::phone(LINGERER_KEY);
    let passer = loyalty_e2e::phone(PASSER_KEY);
    let (text, sightings) = trace(
        passer["rotating_id"].as_str().expect("rotating_id"),
        lingerer["advertisement"].as_str().expect("advertisement"),
    );

    let (mut master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = slave.name().expect("pty name");
    let dir = tempfile::tempdir().expect("tempdir");
    let trace_path = dir.path().join("door.jsonl");
    std::fs::write(&trace_path, text).expect("writing the trace");
    let store = Store::new(&format!(
        r#"[[lanes]]
id = "1"
scanner = {{ port = "{slave_path}" }}

{door}
[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
daily_budget = 200
"#,
        door = door_proximity_toml(&trace_path)
    ));
    store.import(
        &json!([
            {"member_id": "m-lena", "tier": "silver", "cards": [CARD], "proximity_key": LINGERER_KEY},
            {"member_id": "m-paul", "proximity_key": PASSER_KEY},
        ])
        .to_string(),
    );
    let mut agent = store.start();
    let client = reqwest::blocking::Client::new();

    // The whole trace goes through (13 s of replay), every sighting resolved to its member.
    let health = poll(&client, &store, "/healthz", |h| {
        h["components"]["proximity"]["tracking"]["sightings"] == json!(sightings)
    });
    let tracking = &health["components"]["proximity"]["tracking"];
    assert_eq!(
        tracking["sightings"],
        json!(sightings),
        "{health}\nlog:\n{}",
        store.log()
    );
    assert_eq!(tracking["resolved"], json!(sightings), "{tracking}");
    assert_eq!(tracking["members_with_keys"], 2, "{tracking}");
    // The fact recorder runs behind the tracker: wait for the gift it reports.
    let health = poll(&client, &store, "/healthz", |h| {
        h["components"]["proximity"]["tracking"]["gifts_issued"] == 1
    });
    let tracking = &health["components"]["proximity"]["tracking"];
    assert_eq!(
        tracking["gifts_issued"],
        1,
        "{tracking}\nlog:\n{}",
        store.log()
    );

    let paul = get(&client, &store, "/v1/members/m-paul");
    assert_eq!(paul["gifts"], json!([]), "the passer-by: {paul}");
    let lena = get(&client, &store, "/v1/members/m-lena");
    let gifts = lena["gifts"].as_array().expect("gifts");
    assert_eq!(gifts.len(), 1, "exactly one welcome gift: {lena}");
    let gift = &gifts[0];
    assert_eq!(gift["campaign_id"], "welcome");
    assert_eq!(gift["gift"], "Free coffee");
    let issued = chrono::DateTime::parse_from_rfc3339(gift["issued_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(gift["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - issued, chrono::Duration::minutes(120), "{gift}");
    let gift_id = gift["gift_id"].as_str().expect("gift_id").to_string();

    // At the till: nobody identified yet, so no gift is handed over.
    let r = client
        .post(store.url("/v1/lanes/1/redemptions"))
        .json(&json!({"redemption_id": "G-0", "gift_id": gift_id}))
        .send()
        .expect("answered");
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.json::<Value>().unwrap()["error"], "no_member");

    // Lena's card is scanned at lane 1.
    type_on(&mut master, format!("{CARD}\r\n").as_bytes());
    let lane = poll(&client, &store, "/v1/lanes/1", |l| {
        l["member"]["member_id"] == "m-lena"
    });
    assert_eq!(
        lane["member"]["member_id"],
        "m-lena",
        "log:\n{}",
        store.log()
    );

    let redeem = |id: &str| {
        client
            .post(store.url("/v1/lanes/1/redemptions"))
            .json(&json!({"redemption_id": id, "gift_id": gift_id}))
            .send()
            .expect("answered")
    };
    let first = redeem("G-1");
    assert_eq!(first.status().as_u16(), 200);
    let first: Value = first.json().expect("JSON");
    assert_eq!(first["redeemed"], true, "{first}");
    assert_eq!(first["gift_id"], json!(gift_id));
    assert_eq!(first["member_id"], "m-lena");
    assert_eq!(first["gift"], "Free coffee");

    // The same gift under another redemption: refused.
    let second = redeem("G-2");
    assert_eq!(second.status().as_u16(), 409);
    let second: Value = second.json().expect("JSON");
    assert_eq!(second["error"], "gift_already_redeemed", "{second}");

    // The POS retries the first redemption (a lost answer): the first answer.
    let again = redeem("G-1");
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().expect("JSON"), first);

    // Handed over: no longer among Lena's open gifts.
    let lena = get(&client, &store, "/v1/members/m-lena");
    assert_eq!(lena["gifts"], json!([]), "{lena}");

    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
    drop(slave);
}
