//! The member's wallet page (`/wallet` at HQ) in real headless Chromium on a phone-sized
//! screen: an admin issues carla a one-time enrolment link; the page makes its own Ed25519 key
//! (WebCrypto), enrols it and shows her balance; then she walks into a store (a replayed door
//! trace through the real agent, which pushes the gift to the real HQ) and the gift appears on
//! the open page, live, with its validity. The link does not work a second time, a browser
//! without an enrolled key is told so, and the page loads nothing from outside HQ.
//! Screenshots land in `target/tmp/wallet-page/`.

use loyalty_e2e::{cdp, Hq, Store};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

const PROXIMITY_KEY: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const STORE_ID: &str = "store-w";
const TOKEN: &str = "store-w-token";

/// A walk-in through the door, starting `start_ms` into the replay: faint outside, close inside.
fn walk_in_trace(path: &std::path::Path, start_ms: u64) {
    let phone = loyalty_e2e::phone(PROXIMITY_KEY);
    let token = phone["rotating_id"].as_str().expect("rotating id");
    let trace = format!(
        "# carla walks in through the door\n{}",
        loyalty_e2e::walk_in_lines(token, start_ms, 12)
    );
    std::fs::write(path, trace).expect("writing the trace");
}

#[test]
fn the_wallet_page_shows_a_gift_live_seconds_after_the_member_walks_in() {
    let started = Instant::now();
    let shots: PathBuf = [env!("CARGO_TARGET_TMPDIR"), "wallet-page"]
        .iter()
        .collect();
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let hq = Hq::start();
    hq.add_store(STORE_ID, TOKEN);
    hq.put_member(
        "carla",
        &json!({"display_name": "Carla", "tier": "silver", "proximity_key": PROXIMITY_KEY}),
    );
    let (s, link) = hq.admin_post("/v1/admin/members/carla/enrolments", &json!({}));
    assert_eq!(s, 200, "{link}");
    let wallet_path = link["wallet_path"]
        .as_str()
        .expect("wallet_path")
        .to_owned();

    // A phone: 390 x 844 CSS pixels, twice as dense.
    let mut browser = cdp::Browser::launch(390, 844);
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    browser.navigate(&format!("{}{wallet_path}", hq.url()));
    browser.wait_for(
        "the enrolled wallet's live feed",
        "document.getElementById('status').className === 'live'",
    );
    browser.wait_for(
        "the balance",
        "document.getElementById('balance').innerText === '0'",
    );
    assert_eq!(browser.inner_text("who"), "Hello, Carla");
    assert!(
        !browser
            .eval("location.href")
            .as_str()
            .unwrap_or("")
            .contains("enrol="),
        "the one-time code leaves the address bar"
    );
    assert!(browser.inner_text("gifts").contains("No open gifts"));
    browser.screenshot(&shots.join("1-enrolled.png"));
    eprintln!("[{:5.1} s] wallet live", started.elapsed().as_secs_f64());

    // Carla walks into the store: the agent starts now, the walk-in 1.5 s into its replay.
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    walk_in_trace(trace.path(), 1_500);
    let store = Store::with_hq(
        STORE_ID,
        &hq.url(),
        TOKEN,
        "",
        &format!(
            r#"{door}
[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
"#,
            door = loyalty_e2e::walk_in_door_toml(trace.path())
        ),
    );
    store.import(&json!([{"member_id": "carla", "proximity_key": PROXIMITY_KEY}]).to_string());
    let _agent = store.start();
    let walk_in = Instant::now();
    browser.wait_for(
        "the gift on the open page",
        "document.querySelector('#gifts .gift .name') && \
         document.querySelector('#gifts .gift .name').innerText === 'Free coffee'",
    );
    eprintln!(
        "[{:5.1} s] gift on the page {:.1} s after the agent started",
        started.elapsed().as_secs_f64(),
        walk_in.elapsed().as_secs_f64()
    );
    let gifts = browser.inner_text("gifts");
    assert!(gifts.contains("Valid until"), "{gifts}");
    assert!(gifts.contains(&format!("From store {STORE_ID}")), "{gifts}");
    browser.wait_for(
        "the gift in the recent activity",
        "document.getElementById('history').innerText.includes('Gift: Free coffee')",
    );
    browser.screenshot(&shots.join("2-gift.png"));

    // Legible on a phone: nothing wider than the screen, the gift's name at least 18 px.
    let layout: Value = browser.eval(
        "(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth, \
          name: parseFloat(getComputedStyle(document.querySelector('#gifts .gift .name')).fontSize), \
          balance: parseFloat(getComputedStyle(document.getElementById('balance')).fontSize) }))()",
    );
    assert!(
        layout["scroll"].as_f64() <= layout["width"].as_f64(),
        "{layout}"
    );
    assert!(layout["name"].as_f64() >= Some(18.0), "{layout}");
    assert!(layout["balance"].as_f64() >= Some(32.0), "{layout}");
    // No external asset: every resource the page loaded came from HQ.
    let foreign = browser.eval(
        "performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
    );
    assert_eq!(foreign, json!([]), "resources from elsewhere");

    // The same link again, in another browser profile: spent.
    let mut other = cdp::Browser::launch(390, 844);
    other.navigate(&format!("{}{wallet_path}", hq.url()));
    other.wait_for("the refusal", "!document.getElementById('problem').hidden");
    let problem = other.inner_text("problem");
    assert!(problem.contains("already used"), "{problem}");
    // And without any link: not set up.
    let mut bare = cdp::Browser::launch(390, 844);
    bare.navigate(&format!("{}/wallet", hq.url()));
    bare.wait_for("the hint", "!document.getElementById('problem').hidden");
    assert!(bare.inner_text("problem").contains("not set up"));
}
