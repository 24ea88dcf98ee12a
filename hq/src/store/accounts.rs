//! Which account counts for which member, and a member's balance.

use loyalty_protocol::{MemberProfile, CARD_ACCOUNT_PREFIX};

use super::sql::{args, Sql, SqlExt};
use super::StoreError;

/// The member an account's points count for: the account itself, or the member a `card:<n>`
/// account's card is attached to. `None` for a card no member holds yet.
pub fn member_of(sql: &mut dyn Sql, account: &str) -> Result<Option<String>, StoreError> {
    match account.strip_prefix(CARD_ACCOUNT_PREFIX) {
        Some(card) => sql
            .row(
                "SELECT member_id FROM cards WHERE card_number = ?1",
                args![card],
            )?
            .map(|r| r.text(0))
            .transpose(),
        None => Ok(Some(account.to_owned())),
    }
}

/// (balance, event count) of a member: its own account plus its cards' accounts.
pub fn member_totals(sql: &mut dyn Sql, member_id: &str) -> Result<(i64, i64), StoreError> {
    let r = sql.one(
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT), CAST(COALESCE(SUM(events), 0) AS BIGINT)
         FROM accounts
         WHERE account = ?1
            OR account IN (SELECT 'card:' || card_number FROM cards WHERE member_id = ?1)",
        args![member_id],
    )?;
    Ok((r.int(0)?, r.int(1)?))
}

/// The balance that counts for `account`: its member's total, or the unattached card's own.
pub fn balance_for_account(sql: &mut dyn Sql, account: &str) -> Result<i64, StoreError> {
    match member_of(sql, account)? {
        Some(member) => Ok(member_totals(sql, &member)?.0),
        None => Ok(sql
            .row(
                "SELECT balance FROM accounts WHERE account = ?1",
                args![account],
            )?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0)),
    }
}

/// A member's profile and cards, without the balance.
pub fn member_base(
    sql: &mut dyn Sql,
    member_id: &str,
) -> Result<Option<MemberProfile>, StoreError> {
    let Some(r) = sql.row(
        "SELECT tier, segments, qr_public_key, proximity_key, display_name FROM members
         WHERE member_id = ?1",
        args![member_id],
    )?
    else {
        return Ok(None);
    };
    let cards = sql
        .rows(
            "SELECT card_number FROM cards WHERE member_id = ?1 ORDER BY card_number",
            args![member_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(MemberProfile {
        tier: r.opt_text(0)?,
        // Written by put_member from a Vec<String>; unreadable only if edited by hand.
        segments: serde_json::from_str(&r.text(1)?).unwrap_or_default(),
        cards,
        qr_public_key: r.opt_text(2)?,
        proximity_key: r.opt_text(3)?,
        display_name: r.opt_text(4)?,
    }))
}
