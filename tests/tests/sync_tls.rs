//! A store syncing with an HQ that serves HTTPS itself (hq.toml `[tls]`) with a certificate of
//! the chain's own CA, which the store trusts through `hq.ca_file`: members come down, sales go
//! up. A store that does not trust that CA syncs nothing and says why.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loyalty_e2e::{hq_binary, wait_until, Store};
use loyalty_sim::test_ca::TestCa;
use serde_json::{json, Value};

const ADMIN: &str = "tls-e2e-admin-token-0123";
const TOKEN: &str = "s1-tls-token-secret";
const CARD: &str = "4006381333931";

/// `loyalty-hq` serving HTTPS on a free port, and an admin client trusting its CA.
struct HttpsHq {
    child: Child,
    url: String,
    ca: TestCa,
    client: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Drop for HttpsHq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HttpsHq {
    fn start() -> HttpsHq {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::write(dir.path(), &["localhost", "127.0.0.1"]).expect("test CA");
        let port = loyalty_e2e::free_port();
        let config = dir.path().join("hq.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndb = \"hq.db\"\n\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n"
            ),
        )
        .expect("hq.toml");
        let child = Command::new(hq_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("LOYALTY_HQ_ADMIN_TOKEN", ADMIN)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("hq.log")).expect("log"))
            .spawn()
            .expect("spawning loyalty-hq");
        let pem = std::fs::read(&ca.ca).expect("ca.pem");
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let hq = HttpsHq {
            child,
            url: format!("https://localhost:{port}"),
            ca,
            client,
            dir,
        };
        wait_until(
            Duration::from_secs(20),
            "HQ answering over HTTPS",
            || {
                hq.client
                    .get(format!("{}/healthz", hq.url))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
            || std::fs::read_to_string(hq.dir.path().join("hq.log")).unwrap_or_default(),
        );
        hq.put("/v1/admin/stores/s1", json!({ "token": TOKEN }));
        hq
    }

    fn put(&self, path: &str, body: Value) {
        let r = self
            .client
            .put(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .expect("admin PUT");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    fn member(&self, member: &str) -> Value {
        self.client
            .get(format!("{}/v1/admin/members/{member}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }
}

#[test]
fn a_store_trusting_the_chains_ca_syncs_with_hq_over_https() {
    let hq = HttpsHq::start();
    hq.put(
        "/v1/admin/members/carla",
        json!({"tier": "gold", "cards": [CARD]}),
    );
    let store = Store::with_hq(
        "s1",
        &hq.url,
        TOKEN,
        &format!("ca_file = {:?}", hq.ca.ca.display().to_string()),
        "[[lanes]]\nid = \"1\"\n",
    );
    let _agent = store.start();
    wait_until(
        Duration::from_secs(20),
        "carla to come down from HQ over HTTPS",
        || store.balance("carla") == Some(0),
        || format!("healthz: {}\n{}", store.hq_health(), store.log()),
    );

    let (status, sale) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": "R-1", "total_cents": 1250, "card": CARD}),
    );
    assert_eq!(status, 200, "{sale}");
    wait_until(
        Duration::from_secs(10),
        "the sale to reach HQ over HTTPS",
        || hq.member("carla")["events"] == 1,
        || format!("HQ: {}\nagent log:\n{}", hq.member("carla"), store.log()),
    );

    // A member saved while the store's pull waits at HQ arrives at once, over HTTPS too.
    hq.put("/v1/admin/members/dora", json!({"tier": "silver"}));
    wait_until(
        Duration::from_secs(5),
        "dora to come down from HQ",
        || store.balance("dora") == Some(0),
        || store.log(),
    );
    assert_eq!(store.hq_health()["state"], "online");
}

#[test]
fn a_store_that_does_not_trust_the_chains_ca_syncs_nothing_and_says_why() {
    let hq = HttpsHq::start();
    let store = Store::with_hq("s1", &hq.url, TOKEN, "", "[[lanes]]\nid = \"1\"\n");
    let _agent = store.start();
    wait_until(
        Duration::from_secs(20),
        "the agent to report the certificate",
        || {
            store.hq_health()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate") || e.contains("UnknownIssuer"))
        },
        || format!("healthz: {}\n{}", store.hq_health(), store.log()),
    );
    assert_eq!(store.hq_health()["state"], "offline");
}
