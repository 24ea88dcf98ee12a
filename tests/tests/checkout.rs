//! A cashier's checkout over the real binary: a card scanned on a serial scanner (a real
//! pseudo-terminal), a sale from the POS, the balance; the same receipt again credits nothing.

use loyalty_e2e::{type_on, Store};
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::time::{Duration, Instant};

const MEMBERS: &str = r#"[{"member_id": "m-anna", "tier": "gold", "cards": ["4006381333931"]}]"#;

fn lane_member(client: &reqwest::blocking::Client, store: &Store) -> Value {
    client
        .get(store.url("/v1/lanes/1"))
        .send()
        .and_then(|r| r.json::<Value>())
        .unwrap_or(Value::Null)
}

#[test]
fn scanned_card_earns_points_once_per_receipt() {
    let (mut master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = slave.name().expect("pty name");
    let store = Store::new(&format!(
        "[[lanes]]\nid = \"1\"\nscanner = {{ port = \"{slave_path}\" }}\n\n[points]\nper_euro = 1\ntiers = {{ gold = 1.5 }}\n"
    ));
    store.import(MEMBERS);
    let mut agent = store.start();
    let client = reqwest::blocking::Client::new();

    // Before any scan the lane has no member.
    assert_eq!(lane_member(&client, &store)["member"], Value::Null);

    // The scanner sends an EAN-13 with its AIM id, in two pieces, CR LF terminated; garbage
    // and a bad check digit first, which must not identify anyone.
    type_on(&mut master, b"\xff\xfe\r\n4006381333932\r\n");
    type_on(&mut master, b"]E040063");
    std::thread::sleep(Duration::from_millis(30));
    type_on(&mut master, b"81333931\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let lane = loop {
        let lane = lane_member(&client, &store);
        if !lane["member"].is_null() || Instant::now() > deadline {
            break lane;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        lane["member"]["member_id"],
        "m-anna",
        "log:\n{}",
        store.log()
    );
    assert_eq!(lane["member"]["tier"], "gold");
    assert_eq!(lane["member"]["can_spend"], false);

    let sale = json!({"receipt_id": "R-1001", "total_cents": 2000});
    let first: Value = client
        .post(store.url("/v1/lanes/1/sales"))
        .json(&sale)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("sale answered");
    assert_eq!(first["member_id"], "m-anna");
    assert_eq!(first["points_earned"], 30);
    assert_eq!(first["balance"], 30);

    // The POS retries the same receipt (a lost answer): the first answer, nothing more credited.
    let again: Value = client
        .post(store.url("/v1/lanes/1/sales"))
        .json(&sale)
        .send()
        .and_then(|r| r.json())
        .expect("retry answered");
    assert_eq!(again, first);
    let member: Value = client
        .get(store.url("/v1/members/m-anna"))
        .send()
        .and_then(|r| r.json())
        .expect("member answered");
    assert_eq!(member["balance"], 30);

    // The sale ended the lane's session: the next customer is not credited to Anna.
    let next: Value = client
        .post(store.url("/v1/lanes/1/sales"))
        .json(&json!({"receipt_id": "R-1002", "total_cents": 500}))
        .send()
        .and_then(|r| r.json())
        .expect("next sale answered");
    assert_eq!(next["member_id"], Value::Null);
    assert_eq!(next["points_earned"], 0);

    // Bad input: 4xx with an error body, never a 500.
    for (path, body, status, code) in [
        (
            "/v1/lanes/9/sales",
            json!({"receipt_id": "x", "total_cents": 1}),
            404,
            "unknown_lane",
        ),
        (
            "/v1/lanes/1/sales",
            json!({"receipt_id": "x", "total_cents": -5}),
            400,
            "bad_total",
        ),
        (
            "/v1/lanes/1/sales",
            json!({"receipt": "x"}),
            400,
            "bad_json",
        ),
        (
            "/v1/lanes/1/sales",
            json!({"receipt_id": "x", "total_cents": 1, "card": "4006381333932"}),
            400,
            "bad_card",
        ),
        (
            "/v1/lanes/1/refunds",
            json!({"refund_id": "f", "receipt_id": "nope", "total_cents": 1}),
            404,
            "unknown_receipt",
        ),
        (
            "/v1/lanes/1/redemptions",
            json!({"redemption_id": "d", "points": 5}),
            409,
            "no_member",
        ),
    ] {
        let r = client
            .post(store.url(path))
            .json(&body)
            .send()
            .expect("answered");
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let e: Value = r.json().expect("error body");
        assert_eq!(e["error"], code, "{path} {body}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A refund of half the sale takes back half the points.
    let refund: Value = client
        .post(store.url("/v1/lanes/1/refunds"))
        .json(&json!({"refund_id": "F-1", "receipt_id": "R-1001", "total_cents": 1000}))
        .send()
        .and_then(|r| r.json())
        .expect("refund answered");
    assert_eq!(refund["points_taken_back"], 15);
    assert_eq!(refund["balance"], 15);

    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
    drop(slave);
}
