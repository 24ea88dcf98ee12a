//! Webhook endpoints and the durable delivery queue: what is due, each attempt's outcome, dead
//! letters and redelivery.
//!
//! Each member's events arrive in order: of a member's pending messages to an endpoint only the
//! oldest (the head) has a due time; the others wait at [`WAITING`] and the next is promoted
//! when the head is delivered or goes dead. So "what is due" is a range of one index, however
//! long the queue behind a receiver that is down.

use serde::{Deserialize, Serialize};

use super::sql::{args, Dialect, Sql, SqlExt, Wake};
use super::StoreError;

/// `PUT /v1/admin/webhooks/{endpoint_id}`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    pub event_types: Vec<String>,
}

/// An endpoint with its queue's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub endpoint_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// One queued message and its delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// The `webhook-id` header: the same on every attempt and redelivery.
    pub webhook_id: String,
    pub member_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub log: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at_ms: i64,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A message due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    pub message_id: i64,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub attempts: i64,
    pub dead_after_ms: i64,
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub message_id: i64,
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// `None` when delivered; otherwise when to try again, or dead if past its deadline.
    pub retry_at_ms: Option<i64>,
}

/// The due time of a message waiting behind its member's head.
pub const WAITING: i64 = i64::MAX;

/// On PostgreSQL a message handed to a sender is claimed this long (its due time moved on), so
/// another HQ process does not send it too; if its sender dies mid-attempt, another takes it
/// after this. Longer than an attempt may take (`[webhooks] timeout_secs`, 10 s by default).
pub const CLAIM_MS: i64 = 120_000;

pub fn webhook_id(message_id: i64) -> String {
    format!("msg_{message_id}")
}

pub fn put(sql: &mut dyn Sql, e: &Endpoint, now: &str) -> Result<(), StoreError> {
    let types = serde_json::to_string(&e.event_types).unwrap_or_else(|_| "[]".into());
    sql.exec(
        "INSERT INTO webhook_endpoints (endpoint_id, url, secret, event_types, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (endpoint_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
           event_types = excluded.event_types",
        args![&e.endpoint_id, &e.url, &e.secret, types, now],
    )?;
    Ok(())
}

/// Removes an endpoint; its undelivered messages go with it.
pub fn delete(tx: &mut dyn Sql, endpoint: &str) -> Result<bool, StoreError> {
    let gone = tx.exec(
        "DELETE FROM webhook_endpoints WHERE endpoint_id = ?1",
        args![endpoint],
    )?;
    tx.exec(
        "DELETE FROM webhook_queue WHERE endpoint_id = ?1 AND state = 'pending'",
        args![endpoint],
    )?;
    Ok(gone > 0)
}

pub fn list(sql: &mut dyn Sql) -> Result<Vec<EndpointView>, StoreError> {
    let rows = sql.rows(
        "SELECT endpoint_id, url, event_types FROM webhook_endpoints ORDER BY endpoint_id",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (endpoint_id, url, types) = (r.text(0)?, r.text(1)?, r.text(2)?);
        let mut count = |state: &str| -> Result<i64, StoreError> {
            sql.one(
                "SELECT COUNT(*) FROM webhook_queue WHERE endpoint_id = ?1 AND state = ?2",
                args![&endpoint_id, state],
            )?
            .int(0)
        };
        out.push(EndpointView {
            pending: count("pending")?,
            delivered: count("delivered")?,
            dead: count("dead")?,
            event_types: serde_json::from_str(&types).unwrap_or_default(),
            endpoint_id,
            url,
        });
    }
    Ok(out)
}

/// An endpoint's messages in `state` (any when `None`), newest first, each with its log.
pub fn messages(
    sql: &mut dyn Sql,
    endpoint: &str,
    state: Option<&str>,
    limit: usize,
) -> Result<Option<Vec<Message>>, StoreError> {
    if !sql.exists(
        "SELECT 1 FROM webhook_endpoints WHERE endpoint_id = ?1",
        args![endpoint],
    )? {
        return Ok(None);
    }
    let rows = sql.rows(
        "SELECT q.id, q.member_id, f.type, q.state, q.attempts, q.last_error
         FROM webhook_queue q JOIN member_feed f ON f.id = q.feed_id
         WHERE q.endpoint_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR q.state = ?2)
         ORDER BY q.id DESC LIMIT ?3",
        args![endpoint, state, limit as i64],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = r.int(0)?;
        let log = sql
            .rows(
                "SELECT at_ms, status, error, duration_ms FROM webhook_attempts
                 WHERE message_id = ?1 ORDER BY id",
                args![id],
            )?
            .iter()
            .map(|a| {
                Ok(Attempt {
                    at_ms: a.int(0)?,
                    status: a.opt_int(1)?.and_then(|s| u16::try_from(s).ok()),
                    error: a.opt_text(2)?,
                    duration_ms: a.int(3)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        out.push(Message {
            webhook_id: webhook_id(id),
            member_id: r.text(1)?,
            kind: r.text(2)?,
            state: r.text(3)?,
            attempts: r.int(4)?,
            last_error: r.opt_text(5)?,
            log,
        });
    }
    Ok(Some(out))
}

/// Puts a message back in the queue (delivered or dead alike), due now, with a fresh deadline;
/// false when the endpoint has no such message. It goes out beside its member's queue, not
/// behind it: the admin asked for it now.
pub fn redeliver(
    sql: &mut dyn Sql,
    endpoint: &str,
    message_id: i64,
    now_ms: i64,
    dead_after_ms: i64,
) -> Result<bool, StoreError> {
    let n = sql.exec(
        "UPDATE webhook_queue SET state = 'pending', next_attempt_ms = ?3,
           dead_after_ms = ?4, done_ms = NULL
         WHERE endpoint_id = ?1 AND id = ?2",
        args![
            endpoint,
            message_id,
            now_ms,
            now_ms.saturating_add(dead_after_ms)
        ],
    )?;
    if n > 0 {
        sql.announce(Wake::Webhooks);
    }
    Ok(n > 0)
}

/// The head messages due by `now_ms`, soonest first. On PostgreSQL they are claimed for
/// [`CLAIM_MS`], skipping those another HQ process is claiming, so each goes to one sender.
pub fn due(sql: &mut dyn Sql, now_ms: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
    let claim = sql.dialect() == Dialect::Postgres;
    let lock = if claim {
        " FOR UPDATE OF q SKIP LOCKED"
    } else {
        ""
    };
    let due = sql
        .rows(
            &format!(
                "SELECT q.id, q.endpoint_id, e.url, e.secret, f.body, q.attempts, q.dead_after_ms
                 FROM webhook_queue q
                 JOIN webhook_endpoints e ON e.endpoint_id = q.endpoint_id
                 JOIN member_feed f ON f.id = q.feed_id
                 WHERE q.state = 'pending' AND q.next_attempt_ms <= ?1
                 ORDER BY q.next_attempt_ms, q.id LIMIT ?2{lock}"
            ),
            args![now_ms, limit as i64],
        )?
        .iter()
        .map(|r| {
            Ok(Due {
                message_id: r.int(0)?,
                endpoint_id: r.text(1)?,
                url: r.text(2)?,
                secret: r.text(3)?,
                body: r.text(4)?,
                attempts: r.int(5)?,
                dead_after_ms: r.int(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if claim {
        for d in &due {
            sql.exec(
                "UPDATE webhook_queue SET next_attempt_ms = ?2 WHERE id = ?1",
                args![d.message_id, now_ms.saturating_add(CLAIM_MS)],
            )?;
        }
    }
    Ok(due)
}

/// The head messages, soonest due first: `(message id, due at ms)`. The sender skips the ones
/// in flight to know when to look again.
pub fn heads(sql: &mut dyn Sql, limit: usize) -> Result<Vec<(i64, i64)>, StoreError> {
    sql.rows(
        "SELECT id, next_attempt_ms FROM webhook_queue
         WHERE state = 'pending' AND next_attempt_ms < ?1
         ORDER BY next_attempt_ms LIMIT ?2",
        args![WAITING, limit as i64],
    )?
    .iter()
    .map(|r| Ok((r.int(0)?, r.int(1)?)))
    .collect()
}

/// The member's next message to the endpoint becomes due, once `message_id` left the queue.
fn promote_next(tx: &mut dyn Sql, message_id: i64, now_ms: i64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE webhook_queue SET next_attempt_ms = ?2
         WHERE id = (SELECT p.id FROM webhook_queue p, webhook_queue m
                     WHERE m.id = ?1 AND p.endpoint_id = m.endpoint_id
                       AND p.member_id = m.member_id AND p.state = 'pending'
                     ORDER BY p.id LIMIT 1)
           AND next_attempt_ms = ?3",
        args![message_id, now_ms, WAITING],
    )?;
    Ok(())
}

/// Records attempts and moves each message on: delivered, retried later, or dead once its
/// deadline passed. Returns the messages that went dead.
pub fn record(tx: &mut dyn Sql, outcomes: &[Outcome]) -> Result<Vec<i64>, StoreError> {
    // The members' queues are held first: an ingestion that queues a member's next message
    // behind one delivered here (another HQ process's) either sees it delivered, or is seen by
    // the promotion below. Without it the new message could wait forever.
    let mut members = std::collections::BTreeSet::new();
    for o in outcomes {
        if let Some(r) = tx.row(
            "SELECT member_id FROM webhook_queue WHERE id = ?1",
            args![o.message_id],
        )? {
            members.insert(r.text(0)?);
        }
    }
    tx.lock_members(&members.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut dead = Vec::new();
    for o in outcomes {
        tx.exec(
            "INSERT INTO webhook_attempts (message_id, at_ms, status, error, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![o.message_id, o.at_ms, o.status, &o.error, o.duration_ms],
        )?;
        match o.retry_at_ms {
            None => {
                tx.exec(
                    "UPDATE webhook_queue SET state = 'delivered', attempts = attempts + 1,
                       done_ms = ?2, last_error = NULL WHERE id = ?1 AND state = 'pending'",
                    args![o.message_id, o.at_ms],
                )?;
                promote_next(tx, o.message_id, o.at_ms)?;
            }
            Some(at) => {
                let n = tx.exec(
                    "UPDATE webhook_queue SET state = 'dead', attempts = attempts + 1,
                       done_ms = ?2, last_error = ?3
                     WHERE id = ?1 AND state = 'pending' AND dead_after_ms <= ?4",
                    args![o.message_id, o.at_ms, &o.error, at],
                )?;
                if n > 0 {
                    dead.push(o.message_id);
                    promote_next(tx, o.message_id, o.at_ms)?;
                } else {
                    tx.exec(
                        "UPDATE webhook_queue SET attempts = attempts + 1, next_attempt_ms = ?2,
                           last_error = ?3 WHERE id = ?1 AND state = 'pending'",
                        args![o.message_id, at, &o.error],
                    )?;
                }
            }
        }
    }
    if !outcomes.is_empty() {
        // A promoted message is due now, maybe for another HQ process's sender.
        tx.announce(Wake::Webhooks);
    }
    Ok(dead)
}
