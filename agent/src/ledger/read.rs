//! Reads on their own connections, so that a slow reader never holds up the writer (WAL).

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const MAX_IDLE: usize = 64;

/// A small pool of read-only connections.
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    pub member_id: String,
    pub tier: Option<String>,
    pub balance: i64,
    pub pending_events: i64,
    pub gifts: Vec<serde_json::Value>,
    pub last_visit: Option<String>,
    #[serde(skip)]
    pub qr_public_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct OutboxStatus {
    pub depth: i64,
    pub oldest_age_seconds: i64,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on a pooled connection (call from a blocking context).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            // As many idle connections as concurrent readers the API sees: opening one costs far
            // more than a query.
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    pub fn member(&self, member_id: &str) -> rusqlite::Result<Option<MemberView>> {
        self.with(|c| {
            let row = c
                .prepare_cached(
                    "SELECT m.member_id, m.tier, m.qr_public_key, b.points, b.last_visit, b.pending_events
                     FROM members m LEFT JOIN balances b ON b.account = m.member_id WHERE m.member_id = ?1",
                )?
                .query_row([member_id], |r| {
                    Ok(MemberView {
                        member_id: r.get(0)?,
                        tier: r.get(1)?,
                        qr_public_key: r.get(2)?,
                        balance: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                        last_visit: r.get(4)?,
                        pending_events: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                        gifts: Vec::new(),
                    })
                })
                .optional()?;
            Ok(row)
        })
    }

    pub fn member_for_card(&self, card: &str) -> rusqlite::Result<Option<String>> {
        self.with(|c| {
            c.prepare_cached("SELECT member_id FROM cards WHERE card_number = ?1")?
                .query_row([card], |r| r.get(0))
                .optional()
        })
    }

    pub fn balance(&self, account: &str) -> rusqlite::Result<i64> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT points FROM balances WHERE account = ?1")?
                    .query_row([account], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0),
            )
        })
    }

    pub fn outbox(&self) -> rusqlite::Result<OutboxStatus> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT COUNT(*), COALESCE(strftime('%s','now') - MIN(enqueued_at), 0) FROM outbox",
            )?
            .query_row([], |r| {
                Ok(OutboxStatus {
                    depth: r.get(0)?,
                    oldest_age_seconds: r.get(1)?,
                })
            })
        })
    }

    pub fn integrity_ok(&self) -> rusqlite::Result<bool> {
        self.with(|c| {
            let s: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            Ok(s == "ok")
        })
    }
}
