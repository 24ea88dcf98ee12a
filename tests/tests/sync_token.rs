//! A store with the wrong token: HQ answers 401, the agent shows HQ offline with an error that
//! names the token, keeps its sales queued, and nothing is written at HQ. A store presenting
//! another store's token gets 403, and nothing is written either.

use loyalty_e2e::{wait_until, Hq, Store};
use serde_json::json;
use std::time::{Duration, Instant};

const LANE: &str = "[[lanes]]\nid = \"1\"\n";

#[test]
fn a_wrong_or_borrowed_store_token_is_refused_and_writes_nothing() {
    let _ = (loyalty_e2e::agent_binary(), loyalty_e2e::hq_binary());
    let started = Instant::now();
    let hq = Hq::start();
    hq.add_store("store-t", "store-t-token-0001");
    hq.add_store("store-u", "store-u-token-0001");
    hq.put_member("m-zed", &json!({"cards": ["ZC-0001"]}));

    // A typo in the token, and store U's token used by store T.
    let wrong = Store::with_hq("store-t", &hq.url(), "store-t-token-0002", "", LANE);
    let borrowed = Store::with_hq("store-t", &hq.url(), "store-u-token-0001", "", LANE);
    let (_a, _b) = (wrong.start(), borrowed.start());

    for (store, receipt) in [(&wrong, "T-1"), (&borrowed, "T-2")] {
        let (status, sale) = store.post(
            "/v1/lanes/1/sales",
            &json!({"receipt_id": receipt, "total_cents": 1_000, "card": "ZC-0001"}),
        );
        assert_eq!(status, 200, "the till works without HQ: {sale}");
    }
    for (store, needle) in [(&wrong, "401"), (&borrowed, "403")] {
        wait_until(
            Duration::from_secs(15),
            "the agent to report HQ's refusal",
            || {
                store.hq_health()["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(needle))
            },
            || format!("healthz: {}\nlog:\n{}", store.hq_health(), store.log()),
        );
        let health = store.hq_health();
        assert_eq!(health["state"], "offline", "{health}");
        assert_eq!(health["backlog"], 1, "the sale stays queued: {health}");
        let error = health["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("token"),
            "the error names the token: {health}"
        );
        // The member never arrived: the pull was refused too.
        assert_eq!(store.get("/v1/members/m-zed").0, 404);
    }
    let wrong_error = wrong.hq_health()["last_error"].clone();
    assert!(
        wrong_error.as_str().is_some_and(|e| e.contains("hq.token")),
        "the 401 says which setting to fix: {wrong_error}"
    );

    // Nothing written at HQ.
    assert_eq!(hq.events_held("store-t"), 0);
    assert_eq!(hq.events_held("store-u"), 0);
    let member = hq.member("m-zed");
    assert_eq!(member["balance"], 0, "{member}");
    assert_eq!(member["events"], 0, "{member}");
    let report = hq.reconciliation();
    assert_eq!(report["flags"], json!([]), "{report}");
    assert_eq!(report["rejections"], json!([]), "{report}");
    eprintln!("sync_token: done in {:?}", started.elapsed());
}
