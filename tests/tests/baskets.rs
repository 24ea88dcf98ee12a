//! Baskets with line items over the real binary: a quote, then the sale of the same basket earns
//! what the quote said, line by line (SKU, category and brand campaigns, excluded categories);
//! refunds of given lines take back exactly what those lines earned and never more than the
//! sale; the quote writes nothing. Also tried: lines that do not add up, a bad line, a line
//! refund beyond what was sold, a line refund of a sale recorded without lines, a QR in a quote.

use loyalty_e2e::Store;
use serde_json::{json, Value};

const CARD: &str = "4006381333931";

fn config() -> String {
    r#"[[lanes]]
id = "1"

[points]
per_euro = 1
tiers = { gold = 1.5 }
exclude_categories = ["tobacco", "gift_cards"]

[[points.campaigns]]
id = "coffee-x2"
category = "coffee"
multiplier = 2.0

[[points.campaigns]]
id = "acme-bonus"
brand = "acme"
bonus = 5

[[points.campaigns]]
id = "big-basket"
bonus = 50
min_total_cents = 5000
"#
    .to_owned()
}

fn basket() -> Value {
    json!([
        {"sku": "COF-1", "category": "coffee", "quantity": 2, "unit_cents": 350, "total_cents": 700},
        {"sku": "CRO-1", "category": "bakery", "brand": "acme", "quantity": 3, "unit_cents": 150, "total_cents": 450},
        {"sku": "CIG-20", "category": "tobacco", "brand": "acme", "quantity": 1, "unit_cents": 900, "total_cents": 900},
        {"sku": "WINE-1", "category": "grocery", "quantity": 4, "unit_cents": 1200, "total_cents": 4800}
    ])
}

fn points_of(answer: &Value) -> Vec<i64> {
    answer["lines"]
        .as_array()
        .map(|l| l.iter().filter_map(|x| x["points"].as_i64()).collect())
        .unwrap_or_default()
}

#[test]
fn a_basket_earns_what_its_quote_said_and_line_refunds_take_back_exactly_that() {
    let store = Store::new(&config());
    store.import(&format!(
        r#"[{{"member_id": "m-gold", "tier": "gold", "cards": ["{CARD}"]}}]"#
    ));
    let mut agent = store.start();

    // The quote: nothing written, the member's balance and the sync queue unchanged.
    let (status, quote) = store.post(
        "/v1/lanes/1/quotes",
        &json!({"lines": basket(), "card": CARD}),
    );
    assert_eq!(status, 200, "{quote}");
    // Gold 1.5: coffee 7.00 x2 x1.5 = 21; croissants 4.50 x1.5 = 6.75 (+5 x3 acme per unit);
    // tobacco nothing (no acme bonus either); wine 48 x1.5 = 72. 99.75 -> 99, shared 21, 6, 0,
    // 72; then 15 on the croissants; 59.50 of eligible goods pass the 50-euro basket bonus.
    assert_eq!(points_of(&quote), vec![21, 6 + 15, 0, 72], "{quote}");
    assert_eq!(quote["basket_bonus"], 50);
    assert_eq!(quote["points"], 21 + 21 + 72 + 50);
    assert_eq!(quote["member_id"], "m-gold");
    assert_eq!(
        quote["rule_version"],
        "default;tier=gold;coffee-x2@1;acme-bonus@1;big-basket@1"
    );
    assert_eq!(store.balance("m-gold"), Some(0));
    assert_eq!(
        store.get("/healthz").1["components"]["ledger"]["outbox"]["depth"],
        0
    );

    // The sale of the same basket earns what the quote said, under the same rules version.
    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "B-1", "lines": basket(), "card": CARD}),
    );
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["points_earned"], quote["points"]);
    assert_eq!(sale["rule_version"], quote["rule_version"]);
    assert_eq!(points_of(&sale), points_of(&quote));
    assert_eq!(sale["balance"], 164);

    // One croissant back: a third of what the croissant line earned (21 -> 7).
    let (status, r1) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-1", "receipt_id": "B-1", "lines": [{"line": 2, "quantity": 1}]}),
    );
    assert_eq!(status, 200, "{r1}");
    assert_eq!(
        (
            r1["points_taken_back"].as_i64(),
            r1["refunded_cents"].as_i64()
        ),
        (Some(7), Some(150))
    );
    // The tobacco: it earned nothing, so nothing comes back.
    let (_, r2) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-2", "receipt_id": "B-1", "lines": [{"line": 3, "quantity": 1}]}),
    );
    assert_eq!(r2["points_taken_back"], 0, "{r2}");
    let tobacco_back = r2["points_taken_back"].as_i64().unwrap_or(-1);
    // A retry of the same refund answers the same and takes nothing more.
    let (_, again) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-1", "receipt_id": "B-1", "lines": [{"line": 2, "quantity": 1}]}),
    );
    assert_eq!(again, r1);
    // More croissants than were sold: refused, nothing recorded.
    let (status, refused) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-3", "receipt_id": "B-1", "lines": [{"line": 2, "quantity": 3}]}),
    );
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"], "refund_refused");
    assert!(
        refused["message"].as_str().unwrap_or("").contains("line 2"),
        "{refused}"
    );
    // Everything else: the rest of every line, and with the last unit the basket's bonus.
    let (status, rest) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-4", "receipt_id": "B-1",
                "lines": [{"line": 1, "quantity": 2}, {"line": 2, "quantity": 2}, {"line": 4, "quantity": 4}]}),
    );
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["points_taken_back"], 21 + 14 + 72 + 50);
    assert_eq!(
        7 + tobacco_back + rest["points_taken_back"].as_i64().unwrap_or(0),
        sale["points_earned"].as_i64().unwrap_or(0),
        "line refunds took back exactly what the sale earned"
    );
    assert_eq!(store.balance("m-gold"), Some(0));
    // Nothing is left to refund, by lines or by amount.
    let (status, _) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-5", "receipt_id": "B-1", "total_cents": 1}),
    );
    assert_eq!(status, 409);

    // A sale recorded as a total alone still works, and refunds by amount only.
    let (status, total_only) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "B-2", "total_cents": 2000, "card": CARD}),
    );
    assert_eq!((status, &total_only["points_earned"]), (200, &json!(30)));
    let (status, refused) = store.post(
        "/v1/lanes/1/refunds",
        &json!({"refund_id": "F-6", "receipt_id": "B-2", "lines": [{"line": 1, "quantity": 1}]}),
    );
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap_or("")
        .contains("total_cents"));

    // Bad baskets: a clear 400 naming the problem, nothing recorded.
    let (status, e) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "B-3", "total_cents": 999, "lines": basket(), "card": CARD}),
    );
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("bad_total")),
        "{e}"
    );
    let mut bad = basket();
    bad[1]["quantity"] = json!(0);
    let (status, e) = store.post("/v1/lanes/1/quotes", &json!({"lines": bad}));
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("bad_lines")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap_or("").starts_with("line 2"),
        "{e}"
    );
    let (status, e) = store.post(
        "/v1/lanes/1/quotes",
        &json!({"lines": basket(), "qr": "LE1.x"}),
    );
    assert_eq!(status, 400, "a quote never takes a QR: {e}");
    let (status, _) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "B-3", "lines": []}),
    );
    assert_eq!(status, 400);
    let (status, e) = store.post("/v1/lanes/9/quotes", &json!({"lines": basket()}));
    assert_eq!((status, e["error"].as_str()), (404, Some("unknown_lane")));
    let (_, b3) = store.get("/v1/members/m-gold");
    assert_eq!(b3["balance"], 30, "only B-2 is on the account: {b3}");

    // Nobody at the lane and no card: the quote earns nothing and says so.
    let (status, anonymous) = store.post("/v1/lanes/1/quotes", &json!({"lines": basket()}));
    assert_eq!(status, 200);
    assert_eq!(
        (anonymous["points"].as_i64(), &anonymous["member_id"]),
        (Some(0), &Value::Null)
    );

    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
}
