//! Durability under kill -9: 500 sales from 8 concurrent POS clients, the agent killed in the
//! middle and restarted. Every sale that got a 200 is credited exactly once, and retrying every
//! receipt afterwards doubles nothing.

use loyalty_e2e::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CARD: &str = "4006381333931";
const SALES: usize = 500;
const CLIENTS: usize = 8;
const POINTS_EACH: i64 = 10;

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_sale_and_doubles_none() {
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    store.import(&format!(
        r#"[{{"member_id": "m-bob", "cards": ["{CARD}"]}}]"#
    ));
    let mut agent = store.start();

    let acked: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let url = store.url("/v1/lanes/1/sales");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (acked, next, url) = (acked.clone(), next.clone(), url.clone());
        clients.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= SALES {
                    break;
                }
                let receipt = format!("R-{i:04}");
                let body = json!({"receipt_id": receipt, "total_cents": 1000, "card": CARD});
                if let Ok(r) = client.post(&url).json(&body).send() {
                    if r.status().is_success() {
                        if let Ok(v) = r.json::<Value>() {
                            acked.lock().map(|mut a| a.insert(receipt, v)).ok();
                        }
                    }
                }
            }
        }));
    }
    // Kill in the middle of the stream.
    while acked.lock().map(|a| a.len()).unwrap_or(0) < SALES / 3 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    agent.kill9();
    for c in clients {
        c.join().expect("client thread");
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= SALES / 3 && acked.len() < SALES,
        "kill landed mid-stream: {} acked",
        acked.len()
    );

    let _agent = store.start();
    let client = reqwest::blocking::Client::new();
    let balance = |c: &reqwest::blocking::Client| -> i64 {
        c.get(store.url("/v1/members/m-bob"))
            .send()
            .and_then(|r| r.json::<Value>())
            .ok()
            .and_then(|v| v["balance"].as_i64())
            .expect("balance")
    };
    // Everything acknowledged survived the kill.
    let after_restart = balance(&client);
    assert!(
        after_restart >= acked.len() as i64 * POINTS_EACH,
        "balance {after_restart} < {} acknowledged sales",
        acked.len()
    );
    // Retry every receipt: acknowledged ones give their first answer; the rest are credited now.
    for i in 0..SALES {
        let receipt = format!("R-{i:04}");
        let answer: Value = client
            .post(store.url("/v1/lanes/1/sales"))
            .json(&json!({"receipt_id": receipt, "total_cents": 1000, "card": CARD}))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .expect("retry answered");
        if let Some(first) = acked.get(&receipt) {
            assert_eq!(
                &answer, first,
                "receipt {receipt} answered differently after the crash"
            );
        }
        assert_eq!(answer["points_earned"], POINTS_EACH);
    }
    assert_eq!(
        balance(&client),
        SALES as i64 * POINTS_EACH,
        "each sale credited exactly once"
    );
}
