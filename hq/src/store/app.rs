//! What a member's own app reads (profile, gifts) and the app's credentials: keys enrolled from
//! a browser, one-time enrolment codes, and the nonces of app signatures already used.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::accounts::{member_base, member_totals};
use super::StoreError;

/// `GET /v1/app/members/{id}/profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppProfile {
    pub member_id: String,
    pub display_name: Option<String>,
    pub tier: Option<String>,
    pub balance: i64,
}

/// One of a member's gifts as HQ knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppGift {
    pub gift_id: String,
    pub campaign_id: String,
    pub gift: Option<String>,
    pub store_id: String,
    pub issued_at: String,
    /// The gift can be handed over until then.
    pub valid_until: String,
    /// `open`, `redeemed` or `expired`.
    pub state: String,
    /// When it was redeemed or expired.
    pub closed_at: Option<String>,
}

pub fn profile(conn: &mut Connection, member: &str) -> Result<Option<AppProfile>, StoreError> {
    let tx = conn.transaction()?;
    let Some(base) = member_base(&tx, member)? else {
        return Ok(None);
    };
    let (balance, _) = member_totals(&tx, member)?;
    Ok(Some(AppProfile {
        member_id: member.to_owned(),
        display_name: base.display_name,
        tier: base.tier,
        balance,
    }))
}

/// Every gift of a member, newest first.
pub fn gifts(conn: &Connection, member: &str) -> Result<Vec<AppGift>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT gift_id, campaign_id, gift, store_id, issued_at, expires_at, state, closed_at
             FROM member_gifts WHERE member_id = ?1 ORDER BY issued_at DESC, gift_id DESC",
        )?
        .query_map([member], |r| {
            Ok(AppGift {
                gift_id: r.get(0)?,
                campaign_id: r.get(1)?,
                gift: r.get(2)?,
                store_id: r.get(3)?,
                issued_at: r.get(4)?,
                valid_until: r.get(5)?,
                state: r.get(6)?,
                closed_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The public keys (base64) that may sign for `member`: the phone's app key (`qr_public_key`)
/// and every key a browser enrolled. `None` when HQ has no such member.
pub fn keys(conn: &Connection, member: &str) -> Result<Option<Vec<String>>, StoreError> {
    let qr: Option<Option<String>> = conn
        .prepare_cached("SELECT qr_public_key FROM members WHERE member_id = ?1")?
        .query_row([member], |r| r.get(0))
        .optional()?;
    let Some(qr) = qr else {
        return Ok(None);
    };
    let mut keys: Vec<String> = qr.into_iter().collect();
    let mut stmt =
        conn.prepare_cached("SELECT public_key FROM app_keys WHERE member_id = ?1 ORDER BY rowid")?;
    for k in stmt.query_map([member], |r| r.get::<_, String>(0))? {
        keys.push(k?);
    }
    Ok(Some(keys))
}

/// Records a signature's nonce; false when it was already used (a replay).
pub fn use_nonce(
    conn: &Connection,
    member: &str,
    nonce: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    // Nonces past their signature's validity can never be accepted again: forget them as we go.
    conn.prepare_cached("DELETE FROM app_nonces WHERE expires_ms < ?1")?
        .execute([now_ms])?;
    let fresh = conn
        .prepare_cached(
            "INSERT INTO app_nonces (member_id, nonce, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![member, nonce, expires_ms])?;
    Ok(fresh == 1)
}

pub fn create_enrolment(
    conn: &Connection,
    member: &str,
    code_hash: &str,
    expires_ms: i64,
) -> Result<bool, StoreError> {
    let known = conn
        .prepare_cached("SELECT 1 FROM members WHERE member_id = ?1")?
        .query_row([member], |_| Ok(()))
        .optional()?
        .is_some();
    if known {
        conn.prepare_cached(
            "INSERT INTO app_enrolments (code_hash, member_id, expires_ms) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![code_hash, member, expires_ms])?;
    }
    Ok(known)
}

/// Why an enrolment code was not exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolRefusal {
    Unknown,
    Used,
    Expired,
}

/// Exchanges a one-time code for a key of the member's; the code is spent in the same
/// transaction, so two browsers racing with one code get one key between them.
pub fn enrol(
    tx: &Transaction<'_>,
    code_hash: &str,
    public_key: &str,
    now_ms: i64,
    now: &str,
) -> Result<Result<String, EnrolRefusal>, StoreError> {
    let row: Option<(String, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT member_id, expires_ms, used_ms FROM app_enrolments WHERE code_hash = ?1",
        )?
        .query_row([code_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let member = match row {
        None => return Ok(Err(EnrolRefusal::Unknown)),
        Some((_, _, Some(_))) => return Ok(Err(EnrolRefusal::Used)),
        Some((_, expires, None)) if expires < now_ms => return Ok(Err(EnrolRefusal::Expired)),
        Some((member, _, None)) => member,
    };
    tx.prepare_cached("UPDATE app_enrolments SET used_ms = ?2 WHERE code_hash = ?1")?
        .execute(params![code_hash, now_ms])?;
    tx.prepare_cached(
        "INSERT INTO app_keys (public_key, member_id, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (public_key) DO UPDATE SET member_id = excluded.member_id",
    )?
    .execute(params![public_key, member, now])?;
    Ok(Ok(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO members (member_id, change_seq) VALUES ('carla', 1)",
            [],
        )
        .unwrap();
        conn
    }

    #[test]
    fn an_enrolment_code_is_refused_once_expired_and_once_used() {
        let mut conn = db();
        assert!(create_enrolment(&conn, "carla", "late", 1_000).unwrap());
        assert!(create_enrolment(&conn, "carla", "fresh", 10_000).unwrap());
        assert!(!create_enrolment(&conn, "nobody", "x", 10_000).unwrap());
        let tx = conn.transaction().unwrap();
        assert_eq!(
            enrol(&tx, "late", "key-1", 2_000, "now").unwrap(),
            Err(EnrolRefusal::Expired)
        );
        assert_eq!(
            enrol(&tx, "fresh", "key-2", 2_000, "now").unwrap(),
            Ok("carla".to_owned())
        );
        assert_eq!(
            enrol(&tx, "fresh", "key-3", 2_001, "now").unwrap(),
            Err(EnrolRefusal::Used)
        );
        tx.commit().unwrap();
        assert_eq!(
            keys(&conn, "carla").unwrap(),
            Some(vec!["key-2".to_owned()])
        );
    }

    #[test]
    fn a_nonce_is_taken_once_and_forgotten_after_it_expired() {
        let conn = db();
        assert!(use_nonce(&conn, "carla", "n1", 5_000, 1_000).unwrap());
        assert!(!use_nonce(&conn, "carla", "n1", 5_000, 1_001).unwrap());
        assert!(use_nonce(&conn, "dave", "n1", 5_000, 1_002).unwrap());
        // Past its expiry the row is gone; a signature that old is refused as expired anyway.
        assert!(use_nonce(&conn, "carla", "n2", 9_000, 6_000).unwrap());
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM app_nonces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
    }
}
