//! Rewards a POS can apply, over the real agent and the real HQ: HQ publishes a points
//! catalogue (and refuses a badly written item); the quote lists what applies to the basket;
//! a redemption with the member's fresh app QR spends the points and returns the discount lines
//! the POS applies; the sale references it; a voided basket gives its rewards back, once. Also
//! tried: a reward that does not apply to the basket (nothing spent), an unknown reward, a
//! void of a redemption a sale already used, a sale naming a voided redemption.

use loyalty_e2e::{AppKey, Hq, Store};
use serde_json::{json, Value};
use std::time::Duration;

const CARD: &str = "4006381333931";
const TOKEN: &str = "store-rewards-token";

fn basket() -> Value {
    json!([
        {"sku": "COF-1", "category": "coffee", "quantity": 2, "unit_cents": 350, "total_cents": 700},
        {"sku": "CRO-1", "category": "bakery", "quantity": 3, "unit_cents": 150, "total_cents": 450}
    ])
}

#[test]
fn a_reward_is_discount_lines_the_pos_applies_and_a_void_gives_it_back() {
    let hq = Hq::start();
    hq.add_store("s-rewards", TOKEN);
    let key = AppKey::numbered(11);
    hq.put_member(
        "m-anna",
        &json!({"tier": "gold", "cards": [CARD], "qr_public_key": key.public_b64(),
                "display_name": "Anna"}),
    );
    let (status, body) = hq.admin_put(
        "/v1/admin/campaigns/free-coffee",
        &json!({"kind": "reward", "cost_points": 150, "text": "A free coffee",
                "reward": {"type": "free_item", "sku": "COF-1"}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = hq.admin_put(
        "/v1/admin/campaigns/bakery-ten",
        &json!({"kind": "reward", "cost_points": 40, "text": "10% off bakery",
                "reward": {"type": "percent_off", "percent": 10, "category": "bakery"}}),
    );
    assert_eq!(status, 200, "{body}");
    // Written wrong: refused with every problem, as a store would have logged it.
    let (status, body) = hq.admin_put(
        "/v1/admin/campaigns/broken",
        &json!({"kind": "reward", "cost_points": 0, "text": "x",
                "reward": {"type": "percent_off", "percent": 150}}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_campaign")),
        "{body}"
    );

    let store = Store::with_hq(
        "s-rewards",
        &hq.url(),
        TOKEN,
        "",
        "[[lanes]]\nid = \"1\"\n\n[points]\nper_euro = 1\n",
    );
    let mut agent = store.start();
    store.wait_synced(
        Duration::from_secs(20),
        "the member and the catalogue pulled",
    );
    loyalty_e2e::wait_until(
        Duration::from_secs(20),
        "the catalogue at the store",
        || {
            store
                .post(
                    "/v1/lanes/1/quotes",
                    &json!({"lines": basket(), "card": CARD}),
                )
                .1["catalogue"]
                .as_array()
                .is_some_and(|c| c.len() == 2)
        },
        || store.log(),
    );

    // 200 points to spend.
    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "S-1", "total_cents": 20000, "card": CARD}),
    );
    assert_eq!(
        (status, &sale["points_earned"]),
        (200, &json!(200)),
        "{sale}"
    );

    // The quote says which catalogue items apply to this basket, and what they take off.
    let (_, quote) = store.post(
        "/v1/lanes/1/quotes",
        &json!({"lines": basket(), "card": CARD}),
    );
    let coffee = quote["catalogue"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["reward_id"] == "free-coffee"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(coffee["affordable"], true, "{quote}");
    assert_eq!(
        coffee["discounts"],
        json!([{"line": 1, "sku": "COF-1", "amount_cents": 350, "text": "A free coffee"}])
    );

    // Redeemed with the member's fresh app QR (sent by the POS): points spent, discount lines back.
    let (status, redeemed) = store.post(
        "/v1/lanes/1/redemptions",
        &json!({"redemption_id": "RW-1", "reward_id": "free-coffee", "lines": basket(),
                "qr": key.qr("m-anna")}),
    );
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(
        (
            redeemed["points_spent"].as_i64(),
            redeemed["balance"].as_i64()
        ),
        (Some(150), Some(50))
    );
    assert_eq!(redeemed["discounts"][0]["amount_cents"], 350);
    assert_eq!(redeemed["reward_id"], "free-coffee");

    // A reward that does not fit the basket costs nothing.
    let (status, refused) = store.post(
        "/v1/lanes/1/redemptions",
        &json!({"redemption_id": "RW-X", "reward_id": "bakery-ten",
                "lines": [{"sku": "COF-1", "category": "coffee", "quantity": 1, "unit_cents": 350, "total_cents": 350}],
                "qr": key.qr("m-anna")}),
    );
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("reward_not_applicable")),
        "{refused}"
    );
    assert_eq!(store.balance("m-anna"), Some(50));
    let (status, unknown) = store.post(
        "/v1/lanes/1/redemptions",
        &json!({"redemption_id": "RW-Y", "reward_id": "teleport", "lines": basket(), "qr": key.qr("m-anna")}),
    );
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("unknown_reward"))
    );

    // The sale that follows references the redemption; a void can no longer give it back.
    let (status, paid) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "S-2", "lines": basket(), "card": CARD, "redemption_ids": ["RW-1"]}),
    );
    assert_eq!(status, 200, "{paid}");
    let (status, refused) = store.post(
        "/v1/lanes/1/voids",
        &json!({"void_id": "V-0", "redemption_ids": ["RW-1"]}),
    );
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("void_refused")),
        "{refused}"
    );
    assert!(refused["message"]
        .as_str()
        .unwrap_or("")
        .contains("refund the sale"));

    // Another basket: 10% off bakery is redeemed, then the basket is voided: the points return.
    let balance_before = store.balance("m-anna").unwrap_or(0);
    let (status, second) = store.post(
        "/v1/lanes/1/redemptions",
        &json!({"redemption_id": "RW-2", "reward_id": "bakery-ten", "lines": basket(), "qr": key.qr("m-anna")}),
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["discounts"],
        json!([{"line": 2, "sku": "CRO-1", "amount_cents": 45, "text": "10% off bakery"}])
    );
    let (status, voided) = store.post(
        "/v1/lanes/1/voids",
        &json!({"void_id": "V-1", "redemption_ids": ["RW-2"]}),
    );
    assert_eq!(status, 200, "{voided}");
    assert_eq!(
        voided["returned"],
        json!([{"redemption_id": "RW-2", "points_returned": 40}])
    );
    assert_eq!(voided["balance"].as_i64(), Some(balance_before));
    // A retried void answers the same and gives nothing twice.
    let (_, again) = store.post(
        "/v1/lanes/1/voids",
        &json!({"void_id": "V-1", "redemption_ids": ["RW-2"]}),
    );
    assert_eq!(again, voided);
    assert_eq!(store.balance("m-anna"), Some(balance_before));
    // A voided redemption pays for no sale.
    let (status, refused) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "S-3", "lines": basket(), "redemption_ids": ["RW-2"]}),
    );
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("redemption_unusable")),
        "{refused}"
    );

    // HQ agrees with the store once synced: the void's credit counted once.
    store.wait_synced(
        Duration::from_secs(20),
        "the redemptions and the void pushed",
    );
    assert_eq!(Some(hq.balance("m-anna")), store.balance("m-anna"));

    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
}
