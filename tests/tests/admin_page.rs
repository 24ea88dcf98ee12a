//! HQ's admin page (`GET /admin`) in headless Chromium: the operator types the admin token
//! (kept in the tab's sessionStorage, never in the address), then reads the stores list, a
//! member's history and the reconciliation report filtered by flag; a wrong token is said.

use loyalty_e2e::{cdp, Hq, ADMIN_TOKEN};
use serde_json::{json, Value};

const STORE: &str = "store-p";
const TOKEN: &str = "store-p-token-0001";

fn sale(seq: i64, account: &str, points: i64) -> Value {
    json!({
        "event_id": format!("0190a000-0000-7000-8000-{seq:012}"),
        "store_id": STORE, "seq": seq, "kind": "sale", "account": account, "lane": "1",
        "points": points, "rule_version": "points-v1",
        "recorded_at": format!("2025-03-01T10:00:{seq:02}.000Z"),
        "idempotency_key": format!("{STORE}-{seq}"),
        "payload": {"receipt_id": format!("r{seq}"), "total_cents": points * 100},
    })
}

/// Types `value` into the input `id` as a person would leave it.
fn fill(browser: &mut cdp::Browser, id: &str, value: &str) {
    browser.eval(&format!(
        "document.getElementById('{id}').value = {}",
        json!(value)
    ));
}

#[test]
fn the_admin_page_shows_stores_a_members_history_and_filtered_flags() {
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    hq.put_member("m-ana", &json!({"cards": ["CARD-0042"]}));
    let events = [
        sale(1, "m-ana", 10),
        sale(2, "card:CARD-0042", 20),
        sale(3, "ghost", 5),
    ];
    let (s, body) = hq.push(STORE, TOKEN, "ledger-p", 0, &events);
    assert_eq!(s, 200, "{body}");

    let mut browser = cdp::Browser::launch(1280, 900);
    browser.navigate(&format!("{}/admin", hq.url()));
    browser.wait_for(
        "the page to ask for the token",
        "document.getElementById('problem').innerText.includes('admin token')",
    );

    // A wrong token: HQ's sentence, and the page forgets it.
    fill(&mut browser, "token", "not-the-admin-token");
    browser.eval("document.getElementById('sign-in').click()");
    browser.wait_for(
        "the refusal",
        "document.getElementById('problem').innerText.includes('not valid')",
    );
    assert_eq!(browser.eval("sessionStorage.length"), 0);

    fill(&mut browser, "token", ADMIN_TOKEN);
    browser.eval("document.getElementById('sign-in').click()");
    browser.wait_for(
        "the stores list",
        "document.querySelector('#stores tr[data-store=\"store-p\"]')",
    );
    let row = browser.eval(
        "[...document.querySelectorAll('#stores tr[data-store=\"store-p\"] td')].map(td => td.innerText)",
    );
    assert_eq!(row[5], "ledger-p", "{row}");
    assert_eq!(row[6], "3", "{row}");
    assert_eq!(row[4], "3", "events today: {row}");
    assert!(
        !browser
            .eval("location.href")
            .as_str()
            .unwrap_or_default()
            .contains(ADMIN_TOKEN),
        "the token stays out of the address"
    );
    assert_eq!(
        browser.eval(&format!(
            "sessionStorage.getItem('loyalty-hq-admin-token') === {}",
            json!(ADMIN_TOKEN)
        )),
        true
    );
    assert_eq!(browser.eval("document.getElementById('token').value"), "");

    // A member's history: their own and their card's events, newest first.
    fill(&mut browser, "member-id", "m-ana");
    browser.eval("document.getElementById('member-go').click()");
    browser.wait_for(
        "the member's history",
        "document.querySelectorAll('#history tr').length === 2",
    );
    let seqs = browser
        .eval("[...document.querySelectorAll('#history tr')].map(tr => tr.children[2].innerText)");
    assert_eq!(seqs, json!(["2", "1"]));
    assert!(browser.inner_text("member-summary").contains("30 points"));

    // The reconciliation report, filtered to one kind of flag.
    browser.wait_for(
        "the unfiltered report",
        "document.querySelectorAll('#flags tr').length >= 1",
    );
    fill(&mut browser, "rec-flag", "unknown_member");
    browser.eval("document.getElementById('rec-go').click()");
    browser.wait_for(
        "the filtered report",
        "document.getElementById('bindings-count').innerText === '0'",
    );
    let flags = browser.eval(
        "[...document.querySelectorAll('#flags tr')].map(tr => tr.children[1].innerText + ' ' + tr.children[3].innerText)",
    );
    assert_eq!(flags, json!(["unknown_member ghost"]));
    assert!(browser.inner_text("problem").is_empty());

    browser.eval("document.getElementById('sign-out').click()");
    assert_eq!(browser.eval("sessionStorage.length"), 0);
}
