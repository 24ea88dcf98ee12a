//! A lane never credits the wrong person, over the real binary with a real pseudo-terminal
//! scanner: Alice scans her card and walks away; whatever ends her session (the POS opening a
//! new basket, the cashier's Clear, a refused scan on the lane, the session timeout), the next
//! customer's sale without a card credits nobody. Also tried: a clear with a malformed body, on
//! an unknown lane, a greeting by display name, and the scanner unplugged.

use loyalty_e2e::{type_on, wait_until, Store};
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

const ALICE_CARD: &str = "4006381333931";
const MEMBERS: &str = r#"[{"member_id": "m-alice", "display_name": "Alice Jansen", "cards": ["4006381333931"]},
                          {"member_id": "m-bob", "cards": ["96385074"]}]"#;
const WAIT: Duration = Duration::from_secs(10);

fn lane(store: &Store) -> Value {
    store.get("/v1/lanes/1").1
}

/// Types Alice's card on the lane's scanner and waits until the lane shows her.
fn alice_scans(store: &Store, scanner: &mut TTYPort) {
    type_on(scanner, format!("{ALICE_CARD}\r\n").as_bytes());
    wait_until(
        WAIT,
        "Alice identified at lane 1",
        || lane(store)["member"]["member_id"] == "m-alice",
        || format!("lane: {}\nlog:\n{}", lane(store), store.log()),
    );
}

/// A sale without a card: it must credit nobody, whoever scanned before.
fn anonymous_sale(store: &Store, receipt: &str) -> Value {
    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": receipt, "total_cents": 12000}),
    );
    assert_eq!(status, 200, "{sale}");
    sale
}

fn assert_credits_nobody(sale: &Value, why: &str) {
    assert_eq!(sale["member_id"], Value::Null, "{why}: {sale}");
    assert_eq!(sale["points_earned"], 0, "{why}: {sale}");
}

#[test]
fn the_next_customers_sale_never_credits_the_one_who_left() {
    let (mut scanner, slave) = TTYPort::pair().expect("pty pair");
    // The agent must not inherit the master, or unplugging it here would not reach the agent.
    for fd in [scanner.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: both ports are open and outlive this loop.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("close-on-exec");
    }
    let slave_path = slave.name().expect("pty name");
    let store = Store::new(&format!(
        "[checkout]\nsession_timeout_secs = 5\n\n[[lanes]]\nid = \"1\"\nscanner = {{ port = \"{slave_path}\" }}\n\n[[lanes]]\nid = \"2\"\n\n[points]\nper_euro = 1\n"
    ));
    store.import(MEMBERS);
    let mut agent = store.start();

    // Identified: greeted by name, with the time left before the lane clears on its own.
    alice_scans(&store, &mut scanner);
    let shown = lane(&store);
    assert_eq!(shown["member"]["display_name"], "Alice Jansen");
    let left = shown["member"]["session_ends_in_secs"]
        .as_u64()
        .expect("a countdown");
    assert!((1..=5).contains(&left), "{shown}");
    assert_eq!(shown["rejected_scan"], Value::Null);
    assert_eq!(shown["scanner"]["connected"], true);

    // 1. The POS opens a new basket for the next customer: Alice's session ends.
    let (status, cleared) = store.post("/v1/lanes/1/clear", &json!({"reason": "new_basket"}));
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["reason"], "new_basket");
    assert_eq!(cleared["ended"]["member_id"], "m-alice");
    assert_eq!(lane(&store)["member"], Value::Null);
    assert_credits_nobody(&anonymous_sale(&store, "R-1"), "after a new basket");

    // 2. The cashier's Clear (an empty body, as the lane page's button may send).
    std::thread::sleep(Duration::from_millis(1700)); // the scanner's debounce of one card
    alice_scans(&store, &mut scanner);
    let cleared = reqwest::blocking::Client::new()
        .post(store.url("/v1/lanes/1/clear"))
        .send()
        .and_then(|r| r.json::<Value>())
        .expect("clear answered");
    assert_eq!(cleared["reason"], "cashier");
    assert_eq!(cleared["ended"]["member_id"], "m-alice");
    assert_credits_nobody(&anonymous_sale(&store, "R-2"), "after the cashier's Clear");
    // Clearing an empty lane is fine and says nobody was there.
    let (status, again) = store.post("/v1/lanes/1/clear", &json!({}));
    assert_eq!((status, &again["ended"]), (200, &Value::Null), "{again}");

    // 3. A refused scan (a bad check digit) on the lane: whoever scanned it is not Alice.
    std::thread::sleep(Duration::from_millis(1700));
    alice_scans(&store, &mut scanner);
    type_on(&mut scanner, b"4006381333932\r\n");
    wait_until(
        WAIT,
        "the refused scan shown on lane 1",
        || lane(&store)["rejected_scan"]["code"] == "bad_check_digit",
        || format!("lane: {}", lane(&store)),
    );
    let shown = lane(&store);
    assert_eq!(shown["member"], Value::Null, "{shown}");
    let message = shown["rejected_scan"]["message"].as_str().unwrap_or("");
    assert!(message.contains("check digit"), "{message}");
    assert!(
        !message.contains("4006381333932"),
        "the scanned text is never echoed"
    );
    assert_credits_nobody(&anonymous_sale(&store, "R-3"), "after a refused scan");
    // A sale ends the refusal notice too: the next customer starts clean.
    assert_eq!(lane(&store)["rejected_scan"], Value::Null);

    // 4. Nobody buys anything: the session times out (5 s here, tunable per store).
    std::thread::sleep(Duration::from_millis(1700));
    alice_scans(&store, &mut scanner);
    wait_until(
        Duration::from_secs(8),
        "the session timing out",
        || lane(&store)["member"].is_null(),
        || format!("lane: {}", lane(&store)),
    );
    assert_credits_nobody(&anonymous_sale(&store, "R-4"), "after the timeout");
    assert_eq!(
        store.balance("m-alice"),
        Some(0),
        "Alice was credited for sales she never made"
    );

    // A POS that sends a wrong body or the wrong lane gets a clear error, and nothing ends.
    std::thread::sleep(Duration::from_millis(1700));
    alice_scans(&store, &mut scanner);
    let (status, error) = store.post("/v1/lanes/1/clear", &json!({"reason": "lunch"}));
    assert_eq!((status, error["error"].as_str()), (400, Some("bad_json")));
    assert_eq!(lane(&store)["member"]["member_id"], "m-alice");
    let (status, error) = store.post("/v1/lanes/9/clear", &json!({}));
    assert_eq!(
        (status, error["error"].as_str()),
        (404, Some("unknown_lane"))
    );
    // Lane 2 is its own lane: clearing it leaves Alice at lane 1.
    let (status, other) = store.post("/v1/lanes/2/clear", &json!({"reason": "void"}));
    assert_eq!((status, &other["ended"]), (200, &Value::Null));
    assert_eq!(lane(&store)["member"]["member_id"], "m-alice");

    // 5. The scanner is unplugged: the lane shows it at once, not only the log.
    drop(scanner);
    drop(slave);
    wait_until(
        WAIT,
        "the unplugged scanner shown on lane 1",
        || lane(&store)["scanner"]["connected"] == false,
        || format!("lane: {}", lane(&store)),
    );
    assert_eq!(agent.terminate(), Some(0), "log:\n{}", store.log());
}
