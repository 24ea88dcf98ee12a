//! A real HQ on a loopback port with a temporary database, and event builders. The database is
//! SQLite, or a fresh PostgreSQL database with `LOYALTY_HQ_TEST_BACKEND=postgres`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use loyalty_hq::allowance::AllowancePolicy;
use loyalty_hq::config::{Database, RawConfig};
use loyalty_hq::store::{Options, Store};
use loyalty_protocol::{
    Event, EventBatch, EventKind, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use loyalty_sim::hq::LocalHq;
use serde_json::{json, Value};

pub const ADMIN: &str = "admin-token-for-tests-0123";

pub struct Hq {
    pub url: String,
    pub db: PathBuf,
    pub http: reqwest::Client,
    local: LocalHq,
    _dir: tempfile::TempDir,
}

impl Hq {
    pub async fn start() -> Hq {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut RawConfig)) -> Hq {
        let dir = tempfile::tempdir().unwrap();
        let db = loyalty_sim::pg::test_database(dir.path()).unwrap();
        let local = LocalHq::start(
            "127.0.0.1:0".parse().unwrap(),
            &db,
            ADMIN,
            |raw: &mut RawConfig| {
                raw.allowance = Some(AllowancePolicy { cap: 1_000 });
                tweak(raw);
            },
        )
        .await
        .unwrap();
        Hq {
            url: local.url.clone(),
            db,
            http: reqwest::Client::new(),
            local,
            _dir: dir,
        }
    }

    /// The in-process HQ, for admin calls the helpers here do not wrap.
    pub fn local(&self) -> &LocalHq {
        &self.local
    }

    /// Stops HQ after the requests in flight, and waits for it.
    pub async fn stop(self) {
        self.local.stop().await.unwrap();
    }

    /// A second handle on the same database, to look at what was written.
    pub fn peek(&self) -> Arc<dyn Store> {
        loyalty_hq::store::open(&Database::parse(&self.db), Options::default()).unwrap()
    }

    /// The rows `sql` reads from HQ's database, each as its columns joined by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        match Database::parse(&self.db) {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let width = stmt.column_count();
                stmt.query_map([], |r| {
                    let mut cols = Vec::with_capacity(width);
                    for i in 0..width {
                        cols.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => String::new(),
                            rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                            other => String::from_utf8_lossy(other.as_bytes()?).into_owned(),
                        });
                    }
                    Ok(cols.join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            Database::Postgres(url) => loyalty_sim::pg::shared()
                .unwrap()
                .psql(&url, sql)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Everything HQ's database holds, as bytes a backup would: the SQLite file and its WAL,
    /// or PostgreSQL's `pg_dump`.
    pub fn database_bytes(&self) -> Vec<u8> {
        match Database::parse(&self.db) {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
                let mut bytes = std::fs::read(&path).unwrap();
                if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
                    bytes.extend(wal);
                }
                bytes
            }
            Database::Postgres(url) => loyalty_sim::pg::shared()
                .unwrap()
                .dump(&url)
                .unwrap()
                .into_bytes(),
        }
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> (u16, Value) {
        self.local.admin_put(path, body).await.unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        self.local.admin_get(path).await.unwrap()
    }

    pub async fn add_store(&self, store: &str) -> String {
        let token = format!("{store}-token-secret");
        let (s, _) = self
            .admin_put(
                &format!("/v1/admin/stores/{store}"),
                json!({"token": token}),
            )
            .await;
        assert_eq!(s, 200);
        token
    }

    pub async fn add_member(&self, member: &str, cards: &[&str]) {
        let (s, body) = self
            .admin_put(
                &format!("/v1/admin/members/{member}"),
                json!({"tier": "gold", "segments": ["family"], "cards": cards}),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }

    pub async fn member(&self, member: &str) -> Value {
        let (s, body) = self.admin_get(&format!("/v1/admin/members/{member}")).await;
        assert_eq!(s, 200, "{body}");
        body
    }

    pub async fn balance(&self, member: &str) -> i64 {
        self.member(member).await["balance"].as_i64().unwrap()
    }

    pub async fn reconciliation(&self) -> Value {
        let (s, body) = self.admin_get("/v1/admin/reconciliation").await;
        assert_eq!(s, 200, "{body}");
        body
    }

    /// Pushes raw JSON to `path_store` with `token`; answers the status and body.
    pub async fn push_raw(
        &self,
        path_store: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/stores/{path_store}/events", self.url))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Pushes a well-formed batch and expects 200.
    pub async fn push(&self, store: &str, token: &str, events: &[Event]) -> PushResponse {
        let batch = EventBatch {
            protocol: PROTOCOL_VERSION,
            store_id: store.into(),
            ledger_id: ledger_of(store),
            after_seq: events.first().map_or(0, |e| e.seq - 1),
            events: events.to_vec(),
        };
        let (s, body) = self
            .push_raw(store, Some(token), serde_json::to_value(batch).unwrap())
            .await;
        assert_eq!(s, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn changes(&self, store: &str, token: &str, query: &str) -> (u16, Value) {
        self.pull(store, token, query).await
    }

    /// [`Hq::changes`] as a future that owns what it needs, to spawn a pull that waits.
    pub fn pull(
        &self,
        store: &str,
        token: &str,
        query: &str,
    ) -> impl std::future::Future<Output = (u16, Value)> + Send + 'static {
        let request = self
            .http
            .get(format!("{}/v1/stores/{store}/changes?{query}", self.url))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .bearer_auth(token);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
    }
}

/// The ledger id a test store pushes from.
pub fn ledger_of(store: &str) -> String {
    format!("ledger-of-{store}")
}

pub fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn at(second: u32) -> String {
    format!("2025-03-01T10:{:02}:{:02}.000Z", second / 60, second % 60)
}

fn event(
    store: &str,
    seq: i64,
    kind: EventKind,
    account: &str,
    points: i64,
    payload: Value,
) -> Event {
    Event {
        event_id: event_id(),
        store_id: store.into(),
        seq,
        kind,
        account: Some(account.into()),
        lane: Some("1".into()),
        points,
        payload,
        rule_version: Some("points-v1".into()),
        recorded_at: at(seq as u32 % 3600),
        idempotency_key: format!("{store}-{seq}"),
    }
}

pub fn sale(store: &str, seq: i64, account: &str, points: i64, receipt: &str) -> Event {
    event(
        store,
        seq,
        EventKind::Sale,
        account,
        points,
        json!({"receipt_id": receipt, "total_cents": points * 100, "card": null, "member_id": account}),
    )
}

pub fn refund(store: &str, seq: i64, account: &str, points: i64, receipt: &str) -> Event {
    event(
        store,
        seq,
        EventKind::Refund,
        account,
        -points,
        json!({"refund_id": format!("rf-{seq}"), "receipt_id": receipt, "total_cents": points * 100,
               "points_due": points, "uncollected": 0}),
    )
}

pub fn redemption(store: &str, seq: i64, account: &str, points: i64) -> Event {
    event(
        store,
        seq,
        EventKind::Redemption,
        account,
        -points,
        json!({"redemption_id": format!("rd-{store}-{seq}"), "points": points}),
    )
}

pub fn gift(store: &str, seq: i64, member: &str, campaign: &str, recorded_at: &str) -> Event {
    let mut e = event(
        store,
        seq,
        EventKind::GiftIssued,
        member,
        0,
        json!({"gift_id": format!("g-{store}-{seq}"), "campaign_id": campaign, "campaign_version": 1,
               "member_id": member, "once_per_member": true, "expires_at": "2025-04-01T00:00:00.000Z"}),
    );
    e.recorded_at = recorded_at.into();
    e
}
