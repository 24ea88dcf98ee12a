//! Reads on their own connections, so that a slow reader never holds up the writer (WAL).

use super::outcome::{keys, OpenGift, Redeemed, RefundOutcome, SaleOutcome};
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

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct MemberView {
    pub member_id: String,
    /// What the member is called at the till (HQ's profile or the import); `None`: not given.
    pub display_name: Option<String>,
    pub tier: Option<String>,
    pub balance: i64,
    pub pending_events: i64,
    pub gifts: Vec<OpenGift>,
    pub last_visit: Option<String>,
    #[serde(skip)]
    pub qr_public_key: Option<String>,
}

/// Where sync stands, as the ledger knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncStatus {
    /// Events recorded here that HQ has not acknowledged.
    pub depth: i64,
    /// Age of the oldest of them, seconds (0 when none).
    pub oldest_age_seconds: i64,
    pub acked_seq: i64,
    pub last_seq: i64,
    pub dead_letters: i64,
    pub skew_ms: Option<i64>,
    pub last_push_at: Option<String>,
    pub last_pull_at: Option<String>,
    #[serde(skip)]
    pub cursor: String,
}

/// What the next push sends: the events of `ledger_id` following `after_seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbox {
    pub ledger_id: String,
    pub after_seq: i64,
    pub events: Vec<UnsyncedEvent>,
}

/// An event as it is pushed to HQ.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsyncedEvent {
    pub seq: i64,
    pub event_id: String,
    pub idempotency_key: String,
    pub kind: String,
    pub account: Option<String>,
    pub lane: Option<String>,
    pub points: i64,
    pub payload: String,
    pub rule_version: Option<String>,
    pub recorded_at: String,
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
                    "SELECT m.member_id, m.tier, m.qr_public_key, b.points, b.last_visit, b.pending_events, m.display_name
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
                        display_name: r.get(6)?,
                        gifts: Vec::new(),
                    })
                })
                .optional()?;
            let Some(mut view) = row else { return Ok(None) };
            view.gifts = open_gifts(c, member_id)?;
            Ok(Some(view))
        })
    }

    /// HQ's campaigns as pulled: id, version, JSON body, deleted.
    pub fn campaigns(&self) -> rusqlite::Result<Vec<(String, i64, String, bool)>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT campaign_id, version, body, deleted FROM campaigns ORDER BY campaign_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })
    }

    /// Every member's proximity key as stored (text), for the rotating-id resolver.
    pub fn proximity_keys(&self) -> rusqlite::Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT member_id, proximity_key FROM members WHERE proximity_key IS NOT NULL ORDER BY member_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Changes whenever a member is added or updated: when to rebuild the resolver.
    pub fn members_version(&self) -> rusqlite::Result<(i64, Option<String>)> {
        self.with(|c| {
            c.prepare_cached("SELECT COUNT(*), MAX(updated_at) FROM members")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        })
    }

    /// Gifts issued to the member, not handed over, not expired.
    pub fn open_gifts(&self, member_id: &str) -> rusqlite::Result<Vec<OpenGift>> {
        self.with(|c| open_gifts(c, member_id))
    }

    /// What the rules know of a member (tier, segments).
    pub fn profile(
        &self,
        member_id: &str,
    ) -> rusqlite::Result<Option<crate::engine::MemberProfile>> {
        self.with(|c| super::commands::profile(c, member_id))
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

    pub fn sync_status(&self) -> rusqlite::Result<SyncStatus> {
        self.with(|c| {
            let (acked_seq, skew_ms, last_push_at, last_pull_at, cursor): (
                i64,
                Option<i64>,
                Option<String>,
                Option<String>,
                String,
            ) = c
                .prepare_cached(
                    "SELECT acked_seq, skew_ms, last_push_at, last_pull_at, cursor FROM sync_state WHERE id = 1",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            let last_seq: i64 = c
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
                .query_row([], |r| r.get(0))?;
            let oldest: Option<String> = c
                .prepare_cached("SELECT recorded_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1")?
                .query_row([acked_seq], |r| r.get(0))
                .optional()?;
            let oldest_age_seconds = oldest
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0))
                .unwrap_or(0);
            let dead_letters: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM dead_letters")?
                .query_row([], |r| r.get(0))?;
            Ok(SyncStatus {
                // Seqs are contiguous (each is MAX(seq) + 1, nothing is ever deleted from the
                // log, and a rolled-back insert takes its number back with it), so the unsynced
                // count is a subtraction, not a scan.
                depth: (last_seq - acked_seq).max(0),
                oldest_age_seconds,
                acked_seq,
                last_seq,
                dead_letters,
                skew_ms,
                last_push_at,
                last_pull_at,
                cursor,
            })
        })
    }

    /// Up to `limit` events after the acknowledged watermark, in seq order, with the ledger's id
    /// and that watermark, read in one snapshot: what the next push sends.
    pub fn unsynced(&self, limit: usize) -> rusqlite::Result<Outbox> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let (ledger_id, after_seq): (String, i64) = tx
                .prepare_cached(
                    "SELECT (SELECT ledger_id FROM ledger_meta WHERE id = 1), acked_seq
                     FROM sync_state WHERE id = 1",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let mut stmt = tx.prepare_cached(
                "SELECT seq, event_id, idempotency_key, kind, account, lane, points, payload, rule_version, recorded_at
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![after_seq, limit as i64], |r| {
                Ok(UnsyncedEvent {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    idempotency_key: r.get(2)?,
                    kind: r.get(3)?,
                    account: r.get(4)?,
                    lane: r.get(5)?,
                    points: r.get(6)?,
                    payload: r.get(7)?,
                    rule_version: r.get(8)?,
                    recorded_at: r.get(9)?,
                })
            })?;
            let events = rows.collect::<rusqlite::Result<_>>()?;
            Ok(Outbox {
                ledger_id,
                after_seq,
                events,
            })
        })
    }

    /// The answer first recorded for a sale's receipt, if it was recorded.
    pub fn sale_answer(&self, receipt_id: &str) -> rusqlite::Result<Option<SaleOutcome>> {
        self.with(|c| super::commands::first_answer(c, &keys::sale(receipt_id)))
    }

    pub fn refund_answer(&self, refund_id: &str) -> rusqlite::Result<Option<RefundOutcome>> {
        self.with(|c| super::commands::first_answer(c, &keys::refund(refund_id)))
    }

    /// Points and gifts share one redemption id space.
    pub fn redemption_answer(&self, redemption_id: &str) -> rusqlite::Result<Option<Redeemed>> {
        self.with(|c| super::commands::first_answer(c, &keys::redemption(redemption_id)))
    }

    /// Runs `f` on these readers off the async threads: the readers block on SQLite.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Readers) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, super::LedgerError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || f(&readers))
            .await
            .map_err(|e| super::LedgerError::Unavailable(format!("a ledger read stopped: {e}")))?
            .map_err(|e| super::LedgerError::Unavailable(format!("reading the ledger: {e}")))
    }

    /// HQ's clock minus this box's, as last measured (0 before any contact).
    pub fn skew_ms(&self) -> rusqlite::Result<i64> {
        self.with(|c| {
            c.prepare_cached("SELECT skew_ms FROM sync_state WHERE id = 1")?
                .query_row([], |r| r.get::<_, Option<i64>>(0))
                .map(|s| s.unwrap_or(0))
        })
    }

    /// This ledger's id and the re-base it last went through.
    pub fn identity(&self) -> rusqlite::Result<(String, Option<(String, String)>)> {
        self.with(|c| {
            Ok((
                super::identity::ledger_id(c)?,
                super::identity::rebased_from(c)?,
            ))
        })
    }

    pub fn integrity_ok(&self) -> rusqlite::Result<bool> {
        self.with(|c| {
            let s: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            Ok(s == "ok")
        })
    }
}

pub(super) fn open_gifts(c: &Connection, member_id: &str) -> rusqlite::Result<Vec<OpenGift>> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut stmt = c.prepare_cached(
        "SELECT gift_id, gift, campaign_id, campaign_version, zone, issued_at, expires_at, reward FROM gifts
         WHERE member_id = ?1 AND redeemed_at IS NULL AND expires_at > ?2 ORDER BY issued_at",
    )?;
    let rows = stmt.query_map(rusqlite::params![member_id, now], |r| {
        Ok(OpenGift {
            gift_id: r.get(0)?,
            gift: r.get(1)?,
            campaign_id: r.get(2)?,
            campaign_version: r.get(3)?,
            zone: r.get(4)?,
            issued_at: r.get(5)?,
            expires_at: r.get(6)?,
            // Written by the ledger from a checked reward; unreadable only if edited by hand.
            reward: r
                .get::<_, Option<String>>(7)?
                .and_then(|t| serde_json::from_str(&t).ok()),
        })
    })?;
    rows.collect()
}
