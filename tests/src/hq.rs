//! A real `loyalty-hq` process on a free port with a database of its own, which a test can
//! start late, kill -9 and start again on the same database and port; and app keys that sign
//! QR tokens the way a member's phone does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};

use crate::{free_port, http};

/// The admin token every test HQ is started with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// HQ's data dir, port and (when running) process. Killed when dropped.
pub struct Hq {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
    /// hq.toml keys beyond the flags (e.g. a `[webhooks]` table), when set.
    config: Option<String>,
}

impl Hq {
    /// Chooses a port and a database, starts nothing: the URL is known before HQ exists.
    pub fn new() -> Hq {
        Hq {
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: None,
            starts: 0,
            config: None,
        }
    }

    /// [`Hq::new`] with these hq.toml keys, then [`Hq::launch`].
    pub fn start_with_config(toml: &str) -> Hq {
        let mut hq = Hq::new();
        hq.config = Some(toml.to_owned());
        hq.launch();
        hq
    }

    /// [`Hq::new`] then [`Hq::launch`].
    pub fn start() -> Hq {
        let mut hq = Hq::new();
        hq.launch();
        hq
    }

    /// Starts `loyalty-hq serve` on this database and port and waits until the admin API
    /// answers.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "HQ is already running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.starts += 1;
            let log_path = self.dir.path().join(format!("hq-{}.log", self.starts));
            let log = std::fs::File::create(&log_path).expect("HQ log file");
            let mut cmd = Command::new(crate::hq_binary());
            cmd.arg("serve");
            if let Some(toml) = &self.config {
                let path = self.dir.path().join("hq.toml");
                std::fs::write(&path, toml).expect("writing hq.toml");
                cmd.arg("--config").arg(path);
            }
            let mut child = cmd
                .arg("--db")
                .arg(self.db_path())
                .args(["--listen", &format!("127.0.0.1:{}", self.port)])
                // Not --admin-token: a token on the command line shows in `ps`.
                .env("LOYALTY_HQ_ADMIN_TOKEN", ADMIN_TOKEN)
                // Plain log lines, so tests can read `key=value` fields.
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawning loyalty-hq");
            loop {
                if self.admin_get("/v1/admin/reconciliation").0 == 200 {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    // The port may still be held a moment after a kill -9: try again.
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("HQ did not answer within 20 s; log:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            if Instant::now() > deadline {
                panic!("HQ kept exiting at start; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The running HQ's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("hq.db")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        let path = self.dir.path().join(format!("hq-{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Sum of `field=N` over HQ's "Ingested batch." log lines of the current run, e.g.
    /// `duplicates`: events sent again that HQ already held.
    pub fn ingested(&self, field: &str) -> u64 {
        let key = format!("{field}=");
        self.log()
            .lines()
            .filter(|l| l.contains("Ingested batch"))
            .filter_map(|l| {
                let at = l.find(&key)? + key.len();
                l[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    pub fn admin_get(&self, path: &str) -> (u16, Value) {
        match http()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    pub fn admin_put(&self, path: &str, body: &Value) -> (u16, Value) {
        match http()
            .put(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        match http()
            .post(format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// Pushes `events` as store `store` would (`POST /v1/stores/{store}/events`), each event a
    /// JSON object; answers HQ's status and body.
    pub fn push(
        &self,
        store: &str,
        token: &str,
        ledger_id: &str,
        after_seq: i64,
        events: &[Value],
    ) -> (u16, Value) {
        let body = json!({
            "protocol": 2, "store_id": store, "ledger_id": ledger_id,
            "after_seq": after_seq, "events": events,
        });
        match http()
            .post(format!("{}/v1/stores/{store}/events", self.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// A `GET` signed with an app key: status and body.
    pub fn app_get(&self, path_and_query: &str, authorization: &str) -> (u16, Value) {
        match http()
            .get(format!("{}{path_and_query}", self.url()))
            .header("authorization", authorization)
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// Registers a store with its bearer token.
    pub fn add_store(&self, store: &str, token: &str) {
        let (s, body) = self.admin_put(
            &format!("/v1/admin/stores/{store}"),
            &json!({ "token": token }),
        );
        assert_eq!(s, 200, "registering store {store}: {body}");
    }

    /// Registers (or updates) a member: `{tier, segments, cards, qr_public_key, proximity_key}`.
    pub fn put_member(&self, member: &str, body: &Value) {
        let (s, answer) = self.admin_put(&format!("/v1/admin/members/{member}"), body);
        assert_eq!(s, 200, "registering member {member}: {answer}");
    }

    /// `GET /v1/admin/members/{member}`: balance, events, flags ...
    pub fn member(&self, member: &str) -> Value {
        let (s, body) = self.admin_get(&format!("/v1/admin/members/{member}"));
        assert_eq!(s, 200, "member {member}: {body}");
        body
    }

    pub fn balance(&self, member: &str) -> i64 {
        self.member(member)["balance"]
            .as_i64()
            .expect("balance in HQ's answer")
    }

    /// `GET /v1/admin/reconciliation`.
    pub fn reconciliation(&self) -> Value {
        let (s, body) = self.admin_get("/v1/admin/reconciliation");
        assert_eq!(s, 200, "reconciliation: {body}");
        body
    }

    /// Straight from HQ's database (read-only): how many sale events HQ holds for each receipt
    /// of `store`. Exactly-once means every count is 1.
    pub fn sales_held(&self, store: &str) -> BTreeMap<String, i64> {
        let conn = self.peek();
        let mut stmt = conn
            .prepare(
                "SELECT json_extract(payload, '$.receipt_id'), COUNT(*) FROM events
                 WHERE store_id = ?1 AND kind = 'sale' GROUP BY 1",
            )
            .expect("query HQ events");
        let rows = stmt
            .query_map([store], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .expect("HQ events");
        rows.map(|r| r.expect("HQ event row")).collect()
    }

    /// Every event HQ holds from `store`, of any kind.
    pub fn events_held(&self, store: &str) -> i64 {
        self.peek()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE store_id = ?1",
                [store],
                |r| r.get(0),
            )
            .expect("count HQ events")
    }

    /// Straight from HQ's database: every fact HQ holds from `store`, keyed by the idempotency
    /// key the store gave it (`sale:<receipt_id>`, `refund:<refund_id>`, `redeem:<redemption_id>`).
    /// Exactly-once means every `count` is 1; `points` is summed over the events of that key.
    pub fn facts_held(&self, store: &str) -> BTreeMap<String, HeldFact> {
        let conn = self.peek();
        let mut stmt = conn
            .prepare(
                "SELECT idempotency_key, kind, COUNT(*), SUM(points), MIN(account) FROM events
                 WHERE store_id = ?1 GROUP BY idempotency_key",
            )
            .expect("query HQ events by key");
        let rows = stmt
            .query_map([store], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    HeldFact {
                        kind: r.get(1)?,
                        count: r.get(2)?,
                        points: r.get(3)?,
                        account: r.get(4)?,
                    },
                ))
            })
            .expect("HQ events by key");
        rows.map(|r| r.expect("HQ event row")).collect()
    }

    /// Straight from HQ's database: the last seq HQ holds from the ledger `store` pushes from
    /// now (`stores.watermark`; a re-base moves it back to where the new ledger continues).
    pub fn watermark(&self, store: &str) -> i64 {
        self.peek()
            .query_row(
                "SELECT watermark FROM stores WHERE store_id = ?1",
                [store],
                |r| r.get(0),
            )
            .expect("HQ's watermark of the store")
    }

    /// Straight from HQ's database: how many flags of each kind HQ raised on `store`'s events.
    pub fn flags_held(&self, store: &str) -> BTreeMap<String, i64> {
        let conn = self.peek();
        let mut stmt = conn
            .prepare("SELECT flag, COUNT(*) FROM flags WHERE store_id = ?1 GROUP BY flag")
            .expect("query HQ flags");
        let rows = stmt
            .query_map([store], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("HQ flags");
        rows.map(|r| r.expect("HQ flag row")).collect()
    }

    /// Events from `store` HQ refused for good (kept in `rejections`, never stored as facts).
    pub fn rejections_held(&self, store: &str) -> i64 {
        self.peek()
            .query_row(
                "SELECT COUNT(*) FROM rejections WHERE store_id = ?1",
                [store],
                |r| r.get(0),
            )
            .expect("count HQ rejections")
    }

    fn peek(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("opening HQ's database read-only");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }
}

impl Default for Hq {
    fn default() -> Self {
        Hq::new()
    }
}

impl Drop for Hq {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What HQ holds under one idempotency key of one store ([`Hq::facts_held`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFact {
    /// `sale`, `refund`, `redemption`, ...
    pub kind: String,
    /// Events stored under the key: 1 when exactly once.
    pub count: i64,
    /// Their points, summed.
    pub points: i64,
    pub account: Option<String>,
}

/// A member's app key: signs `LE1.` QR tokens like the phone app.
pub struct AppKey(SigningKey);

impl AppKey {
    pub fn from_seed(seed: u8) -> AppKey {
        AppKey(SigningKey::from_bytes(&[seed; 32]))
    }

    /// One key per `n`, for tests with many members.
    pub fn numbered(n: u32) -> AppKey {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&n.to_be_bytes());
        AppKey(SigningKey::from_bytes(&seed))
    }

    /// The public half, base64, as HQ registers it (`qr_public_key`).
    pub fn public_b64(&self) -> String {
        STANDARD.encode(self.0.verifying_key().as_bytes())
    }

    /// `Authorization` for one app request: `LE-App <member>.<unix>.<nonce>.<signature>` over
    /// `LE-APP1\n<method>\n<path>\n<member>.<unix>.<nonce>`, signed now.
    pub fn app_auth(&self, member: &str, method: &str, path: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        self.app_auth_at(member, method, path, now)
    }

    /// [`AppKey::app_auth`] made at `unix`.
    pub fn app_auth_at(&self, member: &str, method: &str, path: &str, unix: i64) -> String {
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let text = format!("LE-APP1\n{method}\n{path}\n{member}.{unix}.{nonce}");
        let signature = self.0.sign(text.as_bytes());
        format!(
            "LE-App {member}.{unix}.{nonce}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// A fresh token for `member`: issued now, with a random nonce.
    pub fn qr(&self, member: &str) -> String {
        let issued = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let nonce: [u8; 16] = rand::random();
        let signed = format!("LE1.{member}.{issued}.{}", URL_SAFE_NO_PAD.encode(nonce));
        let signature = self.0.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}
