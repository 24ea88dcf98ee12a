//! A disk that fills up: the agent refuses new sales with a 503 and a clear message, keeps
//! every sale it acknowledged, and records again once space returns, without a restart.
//!
//! The full disk is a file-size limit (RLIMIT_FSIZE) on the agent process, with SIGXFSZ ignored
//! so that a write past it fails the way a write to a full disk does; `prlimit` (util-linux)
//! lifts it later.

use loyalty_e2e::{limit_file_size, Store};
use serde_json::{json, Value};
use std::process::Command;

const LIMIT_BYTES: u64 = 600 * 1024;

#[test]
fn a_full_disk_refuses_with_503_loses_nothing_and_recovers() {
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    store.import(r#"[{"member_id": "m-cleo", "cards": ["4006381333931"]}]"#);
    let agent = store.start_with(|cmd| limit_file_size(cmd, LIMIT_BYTES));
    let client = reqwest::blocking::Client::new();
    let sale = |i: usize| {
        client
            .post(store.url("/v1/lanes/1/sales"))
            .json(&json!({"receipt_id": format!("R-{i}"), "total_cents": 1000, "card": "4006381333931"}))
            .send()
            .expect("the agent answers even when it cannot write")
    };
    let mut acknowledged = 0;
    let mut refusal = None;
    for i in 0..5000 {
        let r = sale(i);
        match r.status().as_u16() {
            200 => acknowledged += 1,
            503 => {
                refusal = Some((i, r.json::<Value>().expect("error body")));
                break;
            }
            other => panic!("sale {i}: unexpected status {other}"),
        }
    }
    let (refused_at, body) = refusal.expect("the file-size limit was never reached");
    eprintln!("refused after {acknowledged} acknowledged sales");
    assert!(acknowledged > 0);
    assert_eq!(body["error"], "ledger_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing was recorded")),
        "{body}"
    );
    // The agent still answers reads, and every acknowledged sale is there.
    let balance = |c: &reqwest::blocking::Client| {
        c.get(store.url("/v1/members/m-cleo"))
            .send()
            .and_then(|r| r.json::<Value>())
            .ok()
            .and_then(|v| v["balance"].as_i64())
            .expect("balance")
    };
    assert_eq!(balance(&client), acknowledged * 10);

    // Space returns: the same sale, retried, is recorded once.
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", agent.child.id()))
        .arg("--fsize=unlimited:unlimited")
        .status()
        .expect("running prlimit");
    assert!(status.success());
    let r = sale(refused_at);
    assert_eq!(r.status().as_u16(), 200, "{}", store.log());
    let r = sale(refused_at);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(balance(&client), (acknowledged + 1) * 10);
}
