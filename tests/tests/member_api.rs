//! The member API at HQ (`/v1/app/...`) over a real `loyalty-hq`: a store pushes a sale and a
//! gift; the member's own signed requests read profile, gifts and history and follow the live
//! feed; HQ announces the gift's expiry itself. And what a member must not get through: forged,
//! expired and replayed signatures, another member's data, a checkout QR as a login, and
//! enrolment codes that are unknown, spent or expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loyalty_e2e::{sse, AppKey, Hq};
use serde_json::{json, Value};

const STORE: &str = "s1";
const TOKEN: &str = "s1-token-0123";
const LEDGER: &str = "LE-LEDGER-TEST-1";

fn millis(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).expect("after 1970");
    let secs = d.as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, d.subsec_millis() * 1_000_000)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(seq: i64, kind: &str, account: &str, points: i64, payload: Value) -> Value {
    json!({
        "event_id": format!("ev-{seq}-{}", rand::random::<u32>()),
        "store_id": STORE, "seq": seq, "kind": kind, "account": account, "lane": "1",
        "points": points, "payload": payload, "rule_version": "test",
        "recorded_at": millis(SystemTime::now()), "idempotency_key": format!("{kind}:{seq}"),
    })
}

fn gift(seq: i64, member: &str, gift_id: &str, valid_for: Duration) -> Value {
    event(
        seq,
        "gift_issued",
        member,
        0,
        json!({
            "gift_id": gift_id, "campaign_id": "welcome", "campaign_version": 1,
            "member_id": member, "once_per_member": false, "gift": "Free coffee",
            "expires_at": millis(SystemTime::now() + valid_for), "zone": "door",
        }),
    )
}

fn setup() -> (Hq, AppKey, AppKey) {
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    let carla = AppKey::from_seed(7);
    let dave = AppKey::from_seed(8);
    hq.put_member(
        "carla",
        &json!({"tier": "silver", "display_name": "Carla", "qr_public_key": carla.public_b64()}),
    );
    hq.put_member("dave", &json!({"qr_public_key": dave.public_b64()}));
    (hq, carla, dave)
}

fn signed_get(hq: &Hq, key: &AppKey, member: &str, path: &str) -> (u16, Value) {
    hq.app_get(path, &key.app_auth(member, "GET", path))
}

#[test]
fn a_member_reads_profile_gifts_history_and_follows_the_live_feed() {
    let (hq, carla, _) = setup();
    let (s, body) = hq.push(
        STORE,
        TOKEN,
        LEDGER,
        0,
        &[event(
            1,
            "sale",
            "carla",
            42,
            json!({"receipt_id": "R1", "total_cents": 4200, "member_id": "carla"}),
        )],
    );
    assert_eq!(s, 200, "{body}");

    let (s, profile) = signed_get(&hq, &carla, "carla", "/v1/app/members/carla/profile");
    assert_eq!(s, 200, "{profile}");
    assert_eq!(
        profile,
        json!({"member_id": "carla", "display_name": "Carla", "tier": "silver", "balance": 42})
    );

    // The live feed, opened before the gift exists: the gift arrives on it.
    let feed = "/v1/app/members/carla/feed";
    let (s, events) = sse::open(
        &format!("{}{feed}", hq.url()),
        &[("authorization", carla.app_auth("carla", "GET", feed))],
    );
    assert_eq!(s, 200);
    let events = events.expect("feed events");
    let (s, body) = hq.push(
        STORE,
        TOKEN,
        LEDGER,
        1,
        &[gift(2, "carla", "g-1", Duration::from_secs(3))],
    );
    assert_eq!(s, 200, "{body}");
    let first = events
        .recv_timeout(Duration::from_secs(5))
        .expect("the gift on the live feed");
    assert_eq!(first.event.as_deref(), Some("gift.issued"));
    let item: Value = serde_json::from_str(&first.data).expect("JSON data");
    assert_eq!(item["data"]["gift_id"], "g-1");
    assert_eq!(item["data"]["gift"], "Free coffee");
    assert_eq!(item["data"]["store_id"], STORE);
    assert_eq!(first.id, Some(item["id"].to_string()));

    let (s, gifts) = signed_get(&hq, &carla, "carla", "/v1/app/members/carla/gifts");
    assert_eq!(s, 200, "{gifts}");
    assert_eq!(gifts["gifts"][0]["gift_id"], "g-1");
    assert_eq!(gifts["gifts"][0]["state"], "open");
    assert!(gifts["gifts"][0]["valid_until"].is_string(), "{gifts}");

    // HQ announces the expiry itself (within its 5 s sweep), on the feed and in the gift list.
    let expired = events
        .recv_timeout(Duration::from_secs(12))
        .expect("the expiry on the live feed");
    assert_eq!(
        expired.event.as_deref(),
        Some("gift.expired"),
        "{expired:?}"
    );
    let (_, gifts) = signed_get(&hq, &carla, "carla", "/v1/app/members/carla/gifts");
    assert_eq!(gifts["gifts"][0]["state"], "expired", "{gifts}");

    // History, paged newest first: expired, issued, credited.
    let path = "/v1/app/members/carla/history";
    let (s, page) = hq.app_get(
        &format!("{path}?limit=2"),
        &carla.app_auth("carla", "GET", path),
    );
    assert_eq!(s, 200, "{page}");
    let types: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["gift.expired", "gift.issued"], "{page}");
    let before = page["next_before"].as_i64().expect("a next page");
    let (_, rest) = hq.app_get(
        &format!("{path}?limit=2&before={before}"),
        &carla.app_auth("carla", "GET", path),
    );
    assert_eq!(rest["items"][0]["type"], "points.credited", "{rest}");
    assert_eq!(rest["items"][0]["data"]["balance"], 42);
    assert_eq!(rest["next_before"], Value::Null);

    // A feed resumed with Last-Event-ID replays what came after that id.
    let (s, resumed) = sse::open(
        &format!("{}{feed}", hq.url()),
        &[
            ("authorization", carla.app_auth("carla", "GET", feed)),
            ("last-event-id", (before - 1).to_string()),
        ],
    );
    assert_eq!(s, 200);
    let again = resumed
        .expect("events")
        .recv_timeout(Duration::from_secs(5))
        .expect("replayed after Last-Event-ID");
    assert_eq!(again.event.as_deref(), Some("gift.issued"));
}

#[test]
fn bad_signatures_another_members_data_and_a_checkout_qr_are_refused() {
    let (hq, carla, dave) = setup();
    let path = "/v1/app/members/carla/profile";
    let code = |(s, body): (u16, Value)| (s, body["error"].as_str().unwrap_or("").to_owned());

    // No signature.
    assert_eq!(
        code(hq.app_get(path, "Bearer x")),
        (401, "unauthorized".into())
    );
    // Forged: carla's name, dave's key.
    let forged = dave.app_auth("carla", "GET", path);
    assert_eq!(
        code(hq.app_get(path, &forged)),
        (401, "bad_signature".into())
    );
    // Signed for another path: does not open this one.
    let other = carla.app_auth("carla", "GET", "/v1/app/members/carla/gifts");
    assert_eq!(
        code(hq.app_get(path, &other)),
        (401, "bad_signature".into())
    );
    // Expired: made 5 minutes ago (HQ takes 60 s either way).
    let now = chrono::Utc::now().timestamp();
    let old = carla.app_auth_at("carla", "GET", path, now - 300);
    assert_eq!(
        code(hq.app_get(path, &old)),
        (401, "signature_expired".into())
    );
    let future = carla.app_auth_at("carla", "GET", path, now + 300);
    assert_eq!(
        code(hq.app_get(path, &future)),
        (401, "signature_expired".into())
    );
    // Replayed: the same header twice.
    let once = carla.app_auth("carla", "GET", path);
    assert_eq!(hq.app_get(path, &once).0, 200);
    assert_eq!(
        code(hq.app_get(path, &once)),
        (401, "signature_replayed".into())
    );
    // Another member's id: dave signs properly, for carla's profile.
    let nosy = dave.app_auth("dave", "GET", path);
    assert_eq!(code(hq.app_get(path, &nosy)), (403, "forbidden".into()));
    let feed = "/v1/app/members/carla/feed";
    let (s, _) = sse::open(
        &format!("{}{feed}", hq.url()),
        &[("authorization", dave.app_auth("dave", "GET", feed))],
    );
    assert_eq!(s, 403, "dave cannot follow carla's feed");
    // A checkout QR (signed by carla's own key over `LE1.carla.<issued>.<nonce>`) as a login:
    // its signature is over other text, so it does not verify.
    let qr = carla.qr("carla");
    let parts: Vec<&str> = qr.split('.').collect();
    let as_login = format!("LE-App carla.{}.{}.{}", parts[2], parts[3], parts[4]);
    assert_eq!(
        code(hq.app_get(path, &as_login)),
        (401, "bad_signature".into())
    );
    // An unknown member signs nothing.
    let ghost = "/v1/app/members/ghost/profile";
    let (s, _) = hq.app_get(ghost, &carla.app_auth("ghost", "GET", ghost));
    assert_eq!(s, 401);
    // Garbage in the header.
    assert_eq!(
        code(hq.app_get(path, "LE-App a.b.c")),
        (401, "bad_signature".into())
    );
}

#[test]
fn an_enrolment_code_works_once_for_one_browser_key() {
    let (hq, _, _) = setup();
    let (s, issued) = hq.admin_post("/v1/admin/members/carla/enrolments", &json!({}));
    assert_eq!(s, 200, "{issued}");
    let code = issued["code"].as_str().expect("code").to_owned();
    assert_eq!(issued["wallet_path"], format!("/wallet#enrol={code}"));
    let (s, _) = hq.admin_post("/v1/admin/members/nobody/enrolments", &json!({}));
    assert_eq!(s, 404);

    let browser = AppKey::from_seed(42);
    let enrol = |code: &str, key: &AppKey| -> (u16, Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/app/enrol", hq.url()))
            .json(&json!({"code": code, "public_key": key.public_b64()}))
            .send()
            .expect("answered");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    // Before enrolment the browser's key signs nothing for carla.
    let path = "/v1/app/members/carla/profile";
    assert_eq!(
        hq.app_get(path, &browser.app_auth("carla", "GET", path)).0,
        401
    );
    let (s, body) = enrol(&code, &browser);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["member_id"], "carla");
    let (s, profile) = hq.app_get(path, &browser.app_auth("carla", "GET", path));
    assert_eq!(s, 200, "{profile}");
    assert_eq!(profile["member_id"], "carla");

    // Spent: a second browser with the same link is refused, and gets no key.
    let thief = AppKey::from_seed(43);
    let (s, body) = enrol(&code, &thief);
    assert_eq!((s, body["error"].clone()), (403, json!("enrolment_used")));
    assert_eq!(
        hq.app_get(path, &thief.app_auth("carla", "GET", path)).0,
        401
    );
    let (s, body) = enrol("no-such-code", &thief);
    assert_eq!(
        (s, body["error"].clone()),
        (403, json!("enrolment_unknown"))
    );
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/app/enrol", hq.url()))
        .json(&json!({"code": code, "public_key": "not a key"}))
        .send()
        .expect("answered");
    assert_eq!(r.status().as_u16(), 422);
}
