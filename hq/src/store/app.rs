//! What a member's own app reads (profile, gifts) and the app's credentials: keys enrolled from
//! a browser, one-time enrolment codes, and the nonces of app signatures already used.

use serde::{Deserialize, Serialize};

use super::accounts::{member_base, member_totals};
use super::sql::{args, Dialect, Sql, SqlExt};
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

pub fn profile(tx: &mut dyn Sql, member: &str) -> Result<Option<AppProfile>, StoreError> {
    let Some(base) = member_base(tx, member)? else {
        return Ok(None);
    };
    let (balance, _) = member_totals(tx, member)?;
    Ok(Some(AppProfile {
        member_id: member.to_owned(),
        display_name: base.display_name,
        tier: base.tier,
        balance,
    }))
}

/// Every gift of a member, newest first.
pub fn gifts(sql: &mut dyn Sql, member: &str) -> Result<Vec<AppGift>, StoreError> {
    sql.rows(
        "SELECT gift_id, campaign_id, gift, store_id, issued_at, expires_at, state, closed_at
         FROM member_gifts WHERE member_id = ?1 ORDER BY issued_at DESC, gift_id DESC",
        args![member],
    )?
    .iter()
    .map(|r| {
        Ok(AppGift {
            gift_id: r.text(0)?,
            campaign_id: r.text(1)?,
            gift: r.opt_text(2)?,
            store_id: r.text(3)?,
            issued_at: r.text(4)?,
            valid_until: r.text(5)?,
            state: r.text(6)?,
            closed_at: r.opt_text(7)?,
        })
    })
    .collect()
}

/// The public keys (base64) that may sign for `member`: the phone's app key (`qr_public_key`)
/// and every key a browser enrolled. `None` when HQ has no such member.
pub fn keys(sql: &mut dyn Sql, member: &str) -> Result<Option<Vec<String>>, StoreError> {
    let Some(qr) = sql.row(
        "SELECT qr_public_key FROM members WHERE member_id = ?1",
        args![member],
    )?
    else {
        return Ok(None);
    };
    let mut keys: Vec<String> = qr.opt_text(0)?.into_iter().collect();
    // Enrolment order: SQLite's rowid, PostgreSQL's own id column.
    let order = match sql.dialect() {
        Dialect::Sqlite => "rowid",
        Dialect::Postgres => "id",
    };
    for r in sql.rows(
        &format!("SELECT public_key FROM app_keys WHERE member_id = ?1 ORDER BY {order}"),
        args![member],
    )? {
        keys.push(r.text(0)?);
    }
    Ok(Some(keys))
}

/// Records a signature's nonce; false when it was already used (a replay).
pub fn use_nonce(
    sql: &mut dyn Sql,
    member: &str,
    nonce: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    // Nonces past their signature's validity can never be accepted again: forget them as we go.
    sql.exec(
        "DELETE FROM app_nonces WHERE expires_ms < ?1",
        args![now_ms],
    )?;
    let fresh = sql.exec(
        "INSERT INTO app_nonces (member_id, nonce, expires_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        args![member, nonce, expires_ms],
    )?;
    Ok(fresh == 1)
}

pub fn create_enrolment(
    sql: &mut dyn Sql,
    member: &str,
    code_hash: &str,
    expires_ms: i64,
) -> Result<bool, StoreError> {
    let known = sql.exists("SELECT 1 FROM members WHERE member_id = ?1", args![member])?;
    if known {
        sql.exec(
            "INSERT INTO app_enrolments (code_hash, member_id, expires_ms) VALUES (?1, ?2, ?3)",
            args![code_hash, member, expires_ms],
        )?;
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
    tx: &mut dyn Sql,
    code_hash: &str,
    public_key: &str,
    now_ms: i64,
    now: &str,
) -> Result<Result<String, EnrolRefusal>, StoreError> {
    // Locked: two HQ processes spending one code at once give one key between them.
    let q = format!(
        "SELECT member_id, expires_ms, used_ms FROM app_enrolments WHERE code_hash = ?1{}",
        tx.for_update()
    );
    let row = match tx.row(&q, args![code_hash])? {
        Some(r) => Some((r.text(0)?, r.int(1)?, r.opt_int(2)?)),
        None => None,
    };
    let member = match row {
        None => return Ok(Err(EnrolRefusal::Unknown)),
        Some((_, _, Some(_))) => return Ok(Err(EnrolRefusal::Used)),
        Some((_, expires, None)) if expires < now_ms => return Ok(Err(EnrolRefusal::Expired)),
        Some((member, _, None)) => member,
    };
    tx.exec(
        "UPDATE app_enrolments SET used_ms = ?2 WHERE code_hash = ?1",
        args![code_hash, now_ms],
    )?;
    tx.exec(
        "INSERT INTO app_keys (public_key, member_id, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (public_key) DO UPDATE SET member_id = excluded.member_id",
        args![public_key, &member, now],
    )?;
    Ok(Ok(member))
}

#[cfg(test)]
mod tests {
    use super::super::test_db::{test_store, write};
    use super::*;

    fn db() -> super::super::test_db::TestStore {
        let store = test_store();
        write(&store, |sql| {
            sql.exec(
                "INSERT INTO members (member_id, change_seq) VALUES ('carla', 1)",
                &[],
            )
        });
        store
    }

    #[test]
    fn an_enrolment_code_is_refused_once_expired_and_once_used() {
        let store = db();
        write(&store, |sql| {
            assert!(create_enrolment(sql, "carla", "late", 1_000)?);
            assert!(create_enrolment(sql, "carla", "fresh", 10_000)?);
            assert!(!create_enrolment(sql, "nobody", "x", 10_000)?);
            assert_eq!(
                enrol(sql, "late", "key-1", 2_000, "now")?,
                Err(EnrolRefusal::Expired)
            );
            assert_eq!(
                enrol(sql, "fresh", "key-2", 2_000, "now")?,
                Ok("carla".to_owned())
            );
            assert_eq!(
                enrol(sql, "fresh", "key-3", 2_001, "now")?,
                Err(EnrolRefusal::Used)
            );
            Ok(())
        });
        assert_eq!(
            write(&store, |sql| keys(sql, "carla")),
            Some(vec!["key-2".to_owned()])
        );
    }

    #[test]
    fn a_nonce_is_taken_once_and_forgotten_after_it_expired() {
        let store = db();
        let left = write(&store, |sql| {
            assert!(use_nonce(sql, "carla", "n1", 5_000, 1_000)?);
            assert!(!use_nonce(sql, "carla", "n1", 5_000, 1_001)?);
            assert!(use_nonce(sql, "dave", "n1", 5_000, 1_002)?);
            // Past its expiry the row is gone; a signature that old is refused as expired anyway.
            assert!(use_nonce(sql, "carla", "n2", 9_000, 6_000)?);
            sql.one("SELECT COUNT(*) FROM app_nonces", &[])?.int(0)
        });
        assert_eq!(left, 1);
    }
}
