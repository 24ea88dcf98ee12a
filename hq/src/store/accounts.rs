//! Which account counts for which member, and a member's balance.

use loyalty_protocol::{MemberProfile, CARD_ACCOUNT_PREFIX};
use rusqlite::{Connection, OptionalExtension};

/// The member an account's points count for: the account itself, or the member a `card:<n>`
/// account's card is attached to. `None` for a card no member holds yet.
pub fn member_of(conn: &Connection, account: &str) -> rusqlite::Result<Option<String>> {
    match account.strip_prefix(CARD_ACCOUNT_PREFIX) {
        Some(card) => conn
            .prepare_cached("SELECT member_id FROM cards WHERE card_number = ?1")?
            .query_row([card], |r| r.get(0))
            .optional(),
        None => Ok(Some(account.to_owned())),
    }
}

/// (balance, event count) of a member: its own account plus its cards' accounts.
pub fn member_totals(conn: &Connection, member_id: &str) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(events), 0) FROM accounts
         WHERE account = ?1
            OR account IN (SELECT 'card:' || card_number FROM cards WHERE member_id = ?1)",
    )?
    .query_row([member_id], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The balance that counts for `account`: its member's total, or the unattached card's own.
pub fn balance_for_account(conn: &Connection, account: &str) -> rusqlite::Result<i64> {
    match member_of(conn, account)? {
        Some(member) => Ok(member_totals(conn, &member)?.0),
        None => conn
            .prepare_cached("SELECT balance FROM accounts WHERE account = ?1")?
            .query_row([account], |r| r.get(0))
            .optional()
            .map(|b| b.unwrap_or(0)),
    }
}

/// A member's profile and cards, without the balance.
pub fn member_base(conn: &Connection, member_id: &str) -> rusqlite::Result<Option<MemberProfile>> {
    let row = conn
        .prepare_cached(
            "SELECT tier, segments, qr_public_key, proximity_key, display_name FROM members
             WHERE member_id = ?1",
        )?
        .query_row([member_id], |r| {
            let segments: String = r.get(1)?;
            Ok(MemberProfile {
                tier: r.get(0)?,
                // Written by put_member from a Vec<String>; unreadable only if edited by hand.
                segments: serde_json::from_str(&segments).unwrap_or_default(),
                cards: Vec::new(),
                qr_public_key: r.get(2)?,
                proximity_key: r.get(3)?,
                display_name: r.get(4)?,
            })
        })
        .optional()?;
    let Some(mut base) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT card_number FROM cards WHERE member_id = ?1 ORDER BY card_number",
    )?;
    base.cards = stmt
        .query_map([member_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(base))
}
