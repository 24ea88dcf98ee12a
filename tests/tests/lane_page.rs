//! The cashier's lane page in real headless Chromium (Debian's `chromium`; `scripts/setup.sh`
//! installs it), driven over the Chrome DevTools protocol: the real agent binary, a card typed on
//! the lane scanner's pseudo-terminal, a gift issued by a replayed walk-in at the door, a sale
//! from the POS, the gift redeemed by keyboard; then an unknown card, an expired app QR, a
//! refused scan, and the cashier clearing the lane from the keyboard.
//!
//! Screenshots are checked by their pixels (each lane state and the HQ badge has its own colour
//! in the page's CSS) and kept under `target/tmp/lane-page/` for humans.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use loyalty_e2e::{cdp, free_port, type_on, Store};
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CARD: &str = "4006381333931";
/// A valid EAN-8 linked to nobody.
const UNKNOWN_CARD: &str = "96385074";
const PROXIMITY_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;

/// The page's CSS colours (agent/src/api/lane_page.html), RGB.
const IDLE: [u8; 3] = [75, 85, 99];
const MEMBER: [u8; 3] = [21, 128, 61];
const UNKNOWN: [u8; 3] = [180, 83, 9];
const TOKEN_EXPIRED: [u8; 3] = [185, 28, 28];
const REJECTED: [u8; 3] = [157, 23, 77];
const HQ_OFFLINE: [u8; 3] = [127, 29, 29];
const FOCUS: [u8; 3] = [37, 99, 235];

/// A decoded screenshot, RGB(A) rows.
struct Shot {
    name: String,
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Shot {
    fn decode(name: &str, png_bytes: &[u8]) -> Shot {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("PNG size")];
        let info = reader.next_frame(&mut pixels).expect("PNG frame");
        pixels.truncate(info.buffer_size());
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected screenshot colour type {other:?}"),
        };
        Shot {
            name: name.to_owned(),
            width: info.width,
            height: info.height,
            channels,
            pixels,
        }
    }

    fn at(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "{}: ({x}, {y}) is outside the screenshot",
            self.name
        );
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    fn assert_colour(&self, what: &str, x: u32, y: u32, expected: [u8; 3]) {
        let got = self.at(x, y);
        let close = got.iter().zip(expected).all(|(g, e)| g.abs_diff(e) <= 8);
        assert!(
            close,
            "{}: {what} at ({x}, {y}) is rgb{got:?}, expected rgb{expected:?}",
            self.name
        );
    }
}

/// Where the state band's and the HQ badge's colours are sampled: the band's top-left padding,
/// the badge's left padding (no text in either).
fn sample_points(browser: &mut cdp::Browser) -> ((u32, u32), (u32, u32)) {
    let r = browser.eval(
        "(() => { const b = document.getElementById('hq').getBoundingClientRect(); \
         return [Math.round(b.left), Math.round(b.top), Math.round(b.height)]; })()",
    );
    let n = |i: usize| r[i].as_u64().expect("badge rect") as u32;
    ((8, 8), (n(0) + 10, n(1) + n(2) / 2))
}

fn screenshot(browser: &mut cdp::Browser, dir: &std::path::Path, name: &str) -> Shot {
    let png = browser.screenshot(&dir.join(format!("{name}.png")));
    Shot::decode(name, &png)
}

/// An app QR token (agent/src/scan/qr.rs format) signed by `key`.
fn mint_qr(key: &ed25519_dalek::SigningKey, member: &str, issued_at: u64) -> String {
    let nonce: [u8; 16] = rand::random();
    let signed = format!("LE1.{member}.{issued_at}.{}", URL_SAFE_NO_PAD.encode(nonce));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A walk-in through the door for the member's phone, with the rotating id the agent computes
/// for now (`loyalty-agent proximity phone`): far from the street side, close to the inside.
fn walk_in_trace(path: &std::path::Path) {
    let phone = loyalty_e2e::phone(PROXIMITY_KEY);
    let token = phone["rotating_id"].as_str().expect("rotating id");
    let trace = format!(
        "# a member walks in through the door\n{}",
        loyalty_e2e::walk_in_lines(token, 1000, 12)
    );
    std::fs::write(path, trace).expect("writing the trace");
}

#[test]
fn lane_page_follows_a_checkout_live_in_chromium() {
    let started = Instant::now();
    let shots: PathBuf = [env!("CARGO_TARGET_TMPDIR"), "lane-page"].iter().collect();
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let (mut scanner, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = slave.name().expect("pty name");
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    walk_in_trace(trace.path());
    let qr_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    // HQ configured but unreachable: the badge shows offline and the queue growing.
    let store = Store::new(&format!(
        r#"[hq]
url = "http://127.0.0.1:{hq_port}"
token = "store-e2e-token"

[[lanes]]
id = "1"
scanner = {{ port = "{slave_path}" }}

[[lanes]]
id = "2"

[points]
per_euro = 1
tiers = {{ gold = 1.5 }}

{door}
[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
"#,
        hq_port = free_port(),
        door = loyalty_e2e::walk_in_door_toml(trace.path()),
    ));
    store.import(
        &json!([{
            "member_id": "m-anna",
            "display_name": "Anna de Vries",
            "tier": "gold",
            "cards": [CARD],
            "qr_public_key": STANDARD.encode(qr_key.verifying_key().to_bytes()),
            "proximity_key": PROXIMITY_KEY,
        }])
        .to_string(),
    );
    let mut agent = store.start();
    eprintln!("[{:5.1} s] agent up", started.elapsed().as_secs_f64());
    let client = reqwest::blocking::Client::new();

    // An unknown lane is a 404 page, not a blank one.
    let missing = client.get(store.url("/lane/9")).send().expect("lane 9");
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing
        .text()
        .unwrap_or_default()
        .contains("not configured"));

    let mut browser = cdp::Browser::launch(WIDTH, HEIGHT);
    browser.navigate(&store.url("/lane/1"));
    browser.wait_for(
        "the first server-sent snapshot",
        "document.body.dataset.conn === 'live'",
    );
    eprintln!(
        "[{:5.1} s] page live in chromium",
        started.elapsed().as_secs_f64()
    );
    let (band, badge) = sample_points(&mut browser);

    // 1. No member.
    assert_eq!(browser.eval("document.body.dataset.state"), "idle");
    assert_eq!(
        browser.inner_text("state-label").to_lowercase(),
        "no member"
    );
    assert!(browser.inner_text("hq").starts_with("Offline"));
    let idle = screenshot(&mut browser, &shots, "1-idle");
    idle.assert_colour("idle state band", band.0, band.1, IDLE);
    idle.assert_colour("offline HQ badge", badge.0, badge.1, HQ_OFFLINE);
    // A marker that a reload would lose: every later change must arrive live.
    browser.eval("window.__noReload = true");

    // 2. A card scan on the lane's scanner: the member, tier and balance, and the gift the
    // walk-in earned.
    type_on(&mut scanner, format!("{CARD}\r\n").as_bytes());
    let first_scan = Instant::now();
    browser.wait_for(
        "the member after the scan",
        "document.body.dataset.state === 'member' && \
         document.getElementById('title').innerText === 'Hello, Anna de Vries'",
    );
    browser.wait_for(
        "the walk-in gift",
        "document.querySelectorAll('#gift-list button.redeem').length === 1",
    );
    assert_eq!(browser.inner_text("balance"), "0 points");
    let subtitle = browser.inner_text("subtitle");
    assert!(subtitle.starts_with("Gold tier"), "{subtitle}");
    assert!(
        subtitle.ends_with("m-anna"),
        "the id stays visible: {subtitle}"
    );
    // By card: the cashier reads that points cannot be spent before trying.
    assert!(
        browser
            .inner_text("why")
            .starts_with("Earns points, cannot spend: a card earns points"),
        "{}",
        browser.inner_text("why")
    );
    // The session's end is visible, counting down from the configured 120 s.
    let countdown = browser.inner_text("countdown");
    assert!(
        countdown.starts_with("Clears on its own in 1:5")
            || countdown.starts_with("Clears on its own in 2:00"),
        "{countdown}"
    );
    assert!(browser.inner_text("gifts").contains("Free coffee"));
    let member = screenshot(&mut browser, &shots, "2-member");
    member.assert_colour("member state band", band.0, band.1, MEMBER);
    let queued_before: u64 = queued(&browser.inner_text("hq"));

    // 3. A sale from the POS: its points appear without a reload; the sale ends the session.
    let sale: Value = client
        .post(store.url("/v1/lanes/1/sales"))
        .json(&json!({"receipt_id": "R-2001", "total_cents": 2000}))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("sale answered");
    assert_eq!(sale["points_earned"], 30);
    browser.wait_for(
        "the sale's points",
        "document.getElementById('last-sale').innerText.startsWith('+30 points · m-anna')",
    );
    browser.wait_for("the idle lane", "document.body.dataset.state === 'idle'");
    assert_eq!(browser.eval("window.__noReload === true"), true);
    assert!(
        queued(&browser.inner_text("hq")) > queued_before,
        "the sale joins the HQ queue"
    );
    let after_sale = screenshot(&mut browser, &shots, "3-after-sale");
    after_sale.assert_colour("idle state band", band.0, band.1, IDLE);

    // 4. The member scans again (after the scanner's debounce) and gets the gift, redeemed from
    // the keyboard alone: Tab to the button, Enter.
    let debounce = Duration::from_millis(1700);
    std::thread::sleep(debounce.saturating_sub(first_scan.elapsed()));
    type_on(&mut scanner, format!("{CARD}\r\n").as_bytes());
    browser.wait_for(
        "the member with the new balance",
        "document.getElementById('balance').innerText === '30 points' && \
         document.querySelectorAll('#gift-list button.redeem').length === 1",
    );
    // The previous customer's sale is not shown under the next member's name.
    assert_eq!(
        browser.eval("document.getElementById('last-sale-box').hidden"),
        true
    );
    let mut tabs = 0;
    while browser.eval("document.activeElement.classList.contains('redeem')") != true {
        tabs += 1;
        assert!(tabs <= 10, "Tab never reached the Redeem button");
        browser.press("Tab");
    }
    let button = browser.eval(
        "(() => { const b = document.activeElement.getBoundingClientRect(); \
         return [Math.round(b.left), Math.round(b.top), Math.round(b.height)]; })()",
    );
    let focused = screenshot(&mut browser, &shots, "4-gift-focused");
    let bx = button[0].as_u64().expect("button rect") as u32;
    let by = button[1].as_u64().expect("button rect") as u32
        + button[2].as_u64().unwrap_or(0) as u32 / 2;
    // The focus ring: 5 px outline, 4 px outside the button.
    focused.assert_colour("visible focus ring", bx - 6, by, FOCUS);
    focused.assert_colour("member state band", band.0, band.1, MEMBER);
    browser.press("Enter");
    browser.wait_for(
        "the redemption's answer",
        "document.getElementById('message').innerText.startsWith('Handed over: Free coffee')",
    );
    browser.wait_for("the gift gone", "document.getElementById('gifts').hidden");
    screenshot(&mut browser, &shots, "5-gift-redeemed");
    let anna: Value = client
        .get(store.url("/v1/members/m-anna"))
        .send()
        .and_then(|r| r.json())
        .expect("member answered");
    assert_eq!(
        anna["gifts"],
        json!([]),
        "the gift is redeemed in the ledger"
    );

    // 5. A card nobody linked: it earns under its number; the page says so.
    type_on(&mut scanner, format!("{UNKNOWN_CARD}\r\n").as_bytes());
    browser.wait_for(
        "the unknown card",
        "document.body.dataset.state === 'unknown_card'",
    );
    assert!(browser.inner_text("why").contains("not linked to a member"));
    assert_eq!(browser.inner_text("title"), format!("Card {UNKNOWN_CARD}"));
    let unknown = screenshot(&mut browser, &shots, "6-unknown-card");
    unknown.assert_colour("unknown card state band", band.0, band.1, UNKNOWN);

    // 6. An app QR from an hour ago (a screenshot): the member earns but cannot spend, and the
    // page says why.
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        - 3600;
    type_on(
        &mut scanner,
        format!("{}\r\n", mint_qr(&qr_key, "m-anna", issued)).as_bytes(),
    );
    browser.wait_for(
        "the expired QR",
        "document.body.dataset.state === 'token_expired'",
    );
    assert!(browser.inner_text("why").contains("expired"));
    assert!(browser
        .inner_text("why")
        .starts_with("Earns points, cannot spend"));
    assert_eq!(browser.inner_text("title"), "Hello, Anna de Vries");
    let expired = screenshot(&mut browser, &shots, "7-token-expired");
    expired.assert_colour("token expired state band", band.0, band.1, TOKEN_EXPIRED);

    // 7. A refused scan (a bad check digit): the member before is no longer at the lane, and
    // the page says why at once.
    type_on(&mut scanner, b"4006381333932\r\n");
    browser.wait_for(
        "the refused scan",
        "document.body.dataset.state === 'rejected'",
    );
    assert!(browser.inner_text("why").contains("check digit"));
    assert_eq!(browser.inner_text("title"), "Lane 1");
    assert_eq!(
        browser.eval("document.getElementById('balance-box').hidden"),
        true
    );
    let rejected = screenshot(&mut browser, &shots, "8-scan-refused");
    rejected.assert_colour("refused scan state band", band.0, band.1, REJECTED);

    // 8. The cashier clears the lane from the keyboard (C): the lane is empty at once.
    type_on(&mut scanner, format!("{CARD}\r\n").as_bytes());
    browser.wait_for(
        "the member again",
        "document.body.dataset.state === 'member'",
    );
    browser.press("c");
    browser.wait_for(
        "the cleared lane",
        "document.body.dataset.state === 'idle' && \
         document.getElementById('message').innerText.startsWith('Lane cleared')",
    );
    let lane: Value = client
        .get(store.url("/v1/lanes/1"))
        .send()
        .and_then(|r| r.json())
        .expect("lane answered");
    assert_eq!(lane["member"], Value::Null, "the agent cleared it too");

    // Every state looks different from every other, where the cashier looks first.
    let colours = [
        idle.at(band.0, band.1),
        member.at(band.0, band.1),
        unknown.at(band.0, band.1),
        expired.at(band.0, band.1),
        rejected.at(band.0, band.1),
    ];
    for (i, a) in colours.iter().enumerate() {
        for b in &colours[i + 1..] {
            assert_ne!(a, b, "two lane states share a colour");
        }
    }
    assert_eq!(browser.eval("window.__noReload === true"), true);

    // An open page does not hold up a clean stop.
    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
    drop(slave);
    eprintln!(
        "lane page test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// The queue size in the HQ badge ("Offline · 3 queued").
fn queued(badge: &str) -> u64 {
    badge
        .split(" · ")
        .nth(1)
        .and_then(|q| q.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no queue size in the HQ badge {badge:?}"))
}
