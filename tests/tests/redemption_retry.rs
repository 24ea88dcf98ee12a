//! Retries get their first answer (issue 11): a POS that lost the answer to a redemption sends
//! it again with the same id and the same, no longer fresh, QR and is told what happened, not
//! "refused"; a retried sale or refund changes nothing. And one fresh QR scan at a lane pays for
//! one spend of points: a second needs a fresh QR, unless the ledger refused the first.

use loyalty_e2e::{type_on, AppKey, Store};
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::time::Duration;

const MEMBER: &str = "m-rita";

struct Till {
    store: Store,
    scanner: TTYPort,
    key: AppKey,
    _agent: loyalty_e2e::Agent,
}

impl Till {
    /// A store with a scanner on lane 1 and one member with an app key; 500 points earned.
    fn open() -> Till {
        let (scanner, slave) = TTYPort::pair().expect("pty pair");
        let slave_path = slave.name().expect("pty name");
        let store = Store::new(&format!(
            "[[lanes]]\nid = \"1\"\nscanner = {{ port = \"{slave_path}\" }}\n\n[points]\nper_euro = 1\n"
        ));
        let key = AppKey::from_seed(11);
        store
            .import(&json!([{"member_id": MEMBER, "qr_public_key": key.public_b64()}]).to_string());
        let agent = store.start();
        let mut till = Till {
            store,
            scanner,
            key,
            _agent: agent,
        };
        till.scan_fresh_qr();
        let (status, sale) = till.post(
            "/v1/lanes/1/sales",
            json!({"receipt_id": "S-0", "total_cents": 50_000}),
        );
        assert_eq!(
            (status, sale["points_earned"].as_i64()),
            (200, Some(500)),
            "{sale}"
        );
        till
    }

    /// The member shows a fresh app QR to the lane's scanner; returns once the lane can spend.
    fn scan_fresh_qr(&mut self) {
        let qr = self.key.qr(MEMBER);
        type_on(&mut self.scanner, format!("{qr}\r\n").as_bytes());
        loyalty_e2e::wait_until(
            Duration::from_secs(10),
            "the scanned QR to allow spending",
            || self.lane()["can_spend"] == true,
            || format!("lane: {}\nlog:\n{}", self.lane(), self.store.log()),
        );
    }

    fn lane(&self) -> Value {
        self.store.get("/v1/lanes/1").1["member"].clone()
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.store.post(path, &body)
    }

    fn redeem(&self, id: &str, points: i64) -> (u16, Value) {
        self.post(
            "/v1/lanes/1/redemptions",
            json!({"redemption_id": id, "points": points}),
        )
    }
}

#[test]
fn a_retried_redemption_gets_its_first_answer() {
    let mut till = Till::open();

    // The POS sends the QR it read itself; the answer is lost; it retries with the same body.
    let qr = till.key.qr(MEMBER);
    let body = json!({"redemption_id": "D-1", "points": 100, "qr": qr});
    let (status, first) = till.post("/v1/lanes/1/redemptions", body.clone());
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["balance"], 400, "{first}");
    let (status, again) = till.post("/v1/lanes/1/redemptions", body);
    assert_eq!(status, 200, "the retry is answered, not refused: {again}");
    assert_eq!(again, first, "the retry gets the first answer");

    // The same with the lane's scanned QR.
    till.scan_fresh_qr();
    let (status, first) = till.redeem("D-2", 50);
    assert_eq!((status, &first["balance"]), (200, &json!(350)), "{first}");
    let (status, again) = till.redeem("D-2", 50);
    assert_eq!((status, &again), (200, &first), "{again}");

    assert_eq!(till.store.balance(MEMBER), Some(350), "spent once each");
}

#[test]
fn one_fresh_qr_scan_pays_for_one_spend() {
    let mut till = Till::open();
    till.scan_fresh_qr();
    let (status, first) = till.redeem("D-1", 100);
    assert_eq!(status, 200, "{first}");

    let (status, second) = till.redeem("D-2", 100);
    assert_eq!(status, 409, "a second spend on the same scan: {second}");
    assert_eq!(second["error"], "spend_needs_fresh_qr", "{second}");
    assert_eq!(
        till.lane()["can_spend"],
        false,
        "the lane shows the scan is used"
    );
    assert_eq!(till.store.balance(MEMBER), Some(400));

    // A spend the ledger refuses spends nothing, so the scan still pays for one.
    till.scan_fresh_qr();
    let (status, refused) = till.redeem("D-3", 100_000);
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("insufficient_balance")),
        "{refused}"
    );
    let (status, ok) = till.redeem("D-4", 100);
    assert_eq!(status, 200, "after a refusal the same scan may spend: {ok}");
    assert_eq!(till.store.balance(MEMBER), Some(300));
}

#[test]
fn a_retried_sale_or_refund_changes_nothing_at_the_lane() {
    let mut till = Till::open();
    // The next customer is at the lane when the POS retries the last sale.
    till.scan_fresh_qr();
    let (status, again) = till.post(
        "/v1/lanes/1/sales",
        json!({"receipt_id": "S-0", "total_cents": 50_000}),
    );
    assert_eq!(
        (status, again["points_earned"].as_i64()),
        (200, Some(500)),
        "{again}"
    );
    assert_eq!(
        till.lane()["member_id"],
        MEMBER,
        "the retry did not end the current session"
    );
    assert_eq!(till.lane()["can_spend"], true);

    let refund = json!({"refund_id": "F-1", "receipt_id": "S-0", "total_cents": 10_000});
    let (status, first) = till.post("/v1/lanes/1/refunds", refund.clone());
    assert_eq!(status, 200, "{first}");
    let (status, again) = till.post("/v1/lanes/1/refunds", refund);
    assert_eq!((status, &again), (200, &first));
    assert_eq!(
        till.store.balance(MEMBER),
        Some(400),
        "500 earned, 100 taken back once"
    );
}
