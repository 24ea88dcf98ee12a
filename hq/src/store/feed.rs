//! What a member is told, written in the transaction that stores the fact: a numbered row in
//! `member_feed` (the app's live feed and history), the gift's state in `member_gifts`, and one
//! `webhook_queue` row per endpoint subscribed to the type. Nothing here waits on the network:
//! delivery reads the queue later (`crate::webhooks`).

use loyalty_protocol::{Event, EventKind};
use serde_json::{json, Value};

use super::accounts::member_totals;
use super::sql::{args, Row, Sql, SqlExt, Wake};
use super::{FeedPosted, StoreError};

pub const GIFT_ISSUED: &str = "gift.issued";
pub const POINTS_CREDITED: &str = "points.credited";
pub const POINTS_DEBITED: &str = "points.debited";
pub const GIFT_REDEEMED: &str = "gift.redeemed";
pub const GIFT_EXPIRED: &str = "gift.expired";
/// Every type a feed or an endpoint can carry.
pub const TYPES: &[&str] = &[
    GIFT_ISSUED,
    POINTS_CREDITED,
    POINTS_DEBITED,
    GIFT_REDEEMED,
    GIFT_EXPIRED,
];

/// Milliseconds since the Unix epoch, the queue's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The feed rows for one stored event (`member` is whom its account counts for).
pub fn on_event(
    tx: &mut dyn Sql,
    e: &Event,
    member: Option<&str>,
    now: &str,
    dead_after_ms: i64,
    posted: &mut Vec<FeedPosted>,
) -> Result<(), StoreError> {
    match e.kind {
        EventKind::GiftIssued => {
            let Some(member) = e.payload_str("member_id") else {
                return Ok(());
            };
            let gift_id = e.payload_str("gift_id").unwrap_or_default();
            let expires_at = e.payload_str("expires_at").unwrap_or_default();
            tx.exec(
                "INSERT INTO member_gifts (gift_id, member_id, store_id, campaign_id, gift, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                args![
                    gift_id,
                    member,
                    &e.store_id,
                    e.payload_str("campaign_id").unwrap_or_default(),
                    e.payload_str("gift"),
                    &e.recorded_at,
                    expires_at
                ],
            )?;
            let data = json!({
                "member_id": member,
                "gift_id": gift_id,
                "campaign_id": e.payload_str("campaign_id"),
                "gift": e.payload_str("gift"),
                "store_id": e.store_id,
                "zone": e.payload_str("zone"),
                "points": e.points,
                "issued_at": e.recorded_at,
                "expires_at": expires_at,
                "event_id": e.event_id,
            });
            post(tx, member, GIFT_ISSUED, data, now, dead_after_ms, posted)?;
        }
        EventKind::GiftRedeemed => {
            let gift_id = e.payload_str("gift_id").unwrap_or_default();
            let owner = match tx.row(
                "SELECT member_id, gift FROM member_gifts WHERE gift_id = ?1",
                args![gift_id],
            )? {
                Some(r) => Some((r.text(0)?, r.opt_text(1)?)),
                None => None,
            };
            tx.exec(
                "UPDATE member_gifts SET state = 'redeemed', closed_at = ?2
                 WHERE gift_id = ?1 AND state != 'redeemed'",
                args![gift_id, &e.recorded_at],
            )?;
            let (owner, gift) = match owner {
                Some((m, g)) => (Some(m), g),
                None => (member.map(str::to_owned), None),
            };
            if let Some(owner) = owner {
                let data = json!({
                    "member_id": owner,
                    "gift_id": gift_id,
                    "gift": gift,
                    "store_id": e.store_id,
                    "redeemed_at": e.recorded_at,
                    "event_id": e.event_id,
                });
                post(tx, &owner, GIFT_REDEEMED, data, now, dead_after_ms, posted)?;
            }
        }
        EventKind::Sale | EventKind::Refund | EventKind::Redemption if e.points != 0 => {
            let Some(member) = member else {
                return Ok(());
            };
            let (balance, _) = member_totals(tx, member)?;
            let kind = if e.points > 0 {
                POINTS_CREDITED
            } else {
                POINTS_DEBITED
            };
            let data = json!({
                "member_id": member,
                "points": e.points,
                "balance": balance,
                "reason": e.kind.as_str(),
                "receipt_id": e.payload_str("receipt_id"),
                "store_id": e.store_id,
                "recorded_at": e.recorded_at,
                "event_id": e.event_id,
            });
            post(tx, member, kind, data, now, dead_after_ms, posted)?;
        }
        _ => {}
    }
    Ok(())
}

/// Marks every open gift whose validity ended by `now` expired, each with its feed row, in one
/// transaction.
pub fn expire(
    tx: &mut dyn Sql,
    now: &str,
    dead_after_ms: i64,
) -> Result<Vec<FeedPosted>, StoreError> {
    // Locked and skipped when locked: two HQ processes expiring at once each take other gifts,
    // and a gift is announced once.
    let skip = match tx.dialect() {
        super::sql::Dialect::Sqlite => "",
        super::sql::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let q = format!(
        "SELECT gift_id, member_id, store_id, gift, expires_at FROM member_gifts
         WHERE state = 'open' AND expires_at <= ?1 ORDER BY expires_at LIMIT 1000{skip}"
    );
    let due = tx.rows(&q, args![now])?;
    let mut posted = Vec::new();
    for r in due {
        let (gift_id, member, store, gift, expires_at) = (
            r.text(0)?,
            r.text(1)?,
            r.text(2)?,
            r.opt_text(3)?,
            r.text(4)?,
        );
        tx.exec(
            "UPDATE member_gifts SET state = 'expired', closed_at = ?2 WHERE gift_id = ?1",
            args![&gift_id, &expires_at],
        )?;
        let data = json!({
            "member_id": member,
            "gift_id": gift_id,
            "gift": gift,
            "store_id": store,
            "expires_at": expires_at,
        });
        post(
            tx,
            &member,
            GIFT_EXPIRED,
            data,
            now,
            dead_after_ms,
            &mut posted,
        )?;
    }
    announce(tx, &posted);
    Ok(posted)
}

/// Wakes, with the commit, the live feeds of the members posted to and the webhook sender if
/// anything was queued.
pub fn announce(tx: &mut dyn Sql, posted: &[FeedPosted]) {
    for p in posted {
        tx.announce(Wake::Feed {
            member_id: p.member_id.clone(),
            feed_id: p.feed_id,
        });
    }
    if posted.iter().any(|p| p.queued) {
        tx.announce(Wake::Webhooks);
    }
}

/// One feed row, and a queue row for every endpoint that takes its type.
fn post(
    tx: &mut dyn Sql,
    member: &str,
    kind: &'static str,
    data: Value,
    now: &str,
    dead_after_ms: i64,
    posted: &mut Vec<FeedPosted>,
) -> Result<(), StoreError> {
    let body = json!({ "type": kind, "timestamp": now, "data": data }).to_string();
    // A member's feed rows commit in id order, so a live feed reading after its position
    // skips none: their writers take turns on the member until they commit.
    tx.lock_members(&[member])?;
    let feed_id = tx
        .one(
            "INSERT INTO member_feed (member_id, type, body, created_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
            args![member, kind, body, now],
        )?
        .int(0)?;
    let now_ms = now_ms();
    let endpoints = tx.rows(
        "SELECT endpoint_id, event_types FROM webhook_endpoints",
        &[],
    )?;
    let mut queued = false;
    for r in endpoints {
        let (endpoint, types) = (r.text(0)?, r.text(1)?);
        let types: Vec<String> = serde_json::from_str(&types).unwrap_or_default();
        if types.iter().any(|t| t == kind) {
            // Behind a message of the same member still pending, this one waits its turn.
            let behind = tx.exists(
                "SELECT 1 FROM webhook_queue
                 WHERE endpoint_id = ?1 AND member_id = ?2 AND state = 'pending' LIMIT 1",
                args![&endpoint, member],
            )?;
            let due = if behind {
                super::webhooks::WAITING
            } else {
                now_ms
            };
            tx.exec(
                "INSERT INTO webhook_queue (endpoint_id, feed_id, member_id, next_attempt_ms, dead_after_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                args![
                    &endpoint,
                    feed_id,
                    member,
                    due,
                    now_ms.saturating_add(dead_after_ms)
                ],
            )?;
            queued = true;
        }
    }
    posted.push(FeedPosted {
        member_id: member.to_owned(),
        feed_id,
        queued,
    });
    Ok(())
}

/// One row of a member's feed, as the app and the webhooks see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedItem {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// `{"type","timestamp","data"}`, the webhook body.
    pub body: String,
}

fn item(r: &Row) -> Result<FeedItem, StoreError> {
    Ok(FeedItem {
        id: r.int(0)?,
        kind: r.text(1)?,
        body: r.text(2)?,
    })
}

/// A member's feed after `after`, oldest first.
pub fn after(
    sql: &mut dyn Sql,
    member: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<FeedItem>, StoreError> {
    sql.rows(
        "SELECT id, type, body FROM member_feed WHERE member_id = ?1 AND id > ?2
         ORDER BY id LIMIT ?3",
        args![member, after, limit as i64],
    )?
    .iter()
    .map(item)
    .collect()
}

/// A member's feed before `before` (or the newest), newest first: the history's pages.
pub fn before(
    sql: &mut dyn Sql,
    member: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<FeedItem>, StoreError> {
    sql.rows(
        "SELECT id, type, body FROM member_feed WHERE member_id = ?1 AND id < ?2
         ORDER BY id DESC LIMIT ?3",
        args![member, before.unwrap_or(i64::MAX), limit as i64],
    )?
    .iter()
    .map(item)
    .collect()
}

/// The newest feed id of a member (0 when none).
pub fn latest(sql: &mut dyn Sql, member: &str) -> Result<i64, StoreError> {
    sql.one(
        "SELECT COALESCE(MAX(id), 0) FROM member_feed WHERE member_id = ?1",
        args![member],
    )?
    .int(0)
}
