//! A voided basket gives back what was redeemed for it: the points come back to the member, a
//! gift handed over is open again. Only redemptions no recorded sale used: a completed sale is
//! refunded, not voided.

use super::commands::{self, Applied, NewEvent, VoidRequest};
use super::outcome::{keys, Answer, Refusal, Returned, VoidOutcome};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

pub(super) fn void(tx: &Connection, r: &VoidRequest) -> Applied {
    let key = keys::void(&r.void_id);
    if let Some(first) = commands::first_answer(tx, &key)? {
        return Ok(Ok(Answer::Voided(first)));
    }
    let refuse = |why: String| Ok(Err(Refusal::VoidRefused(why).into()));
    let mut member: Option<String> = None;
    let mut returned = Vec::with_capacity(r.redemption_ids.len());
    for id in &r.redemption_ids {
        type Row = (String, i64, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = tx
            .prepare_cached(
                "SELECT member_id, points, gift_id, receipt_id, voided_by FROM redemptions
                 WHERE redemption_id = ?1",
            )?
            .query_row([id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .optional()?;
        let Some((owner, points, gift_id, receipt, voided_by)) = row else {
            return refuse(format!("no redemption {id} was recorded in this store"));
        };
        if let Some(receipt) = receipt {
            return refuse(format!(
                "redemption {id} paid for sale {receipt}, which was recorded: refund the sale instead"
            ));
        }
        if let Some(v) = voided_by {
            return refuse(format!(
                "redemption {id} was already given back by void {v}"
            ));
        }
        if member.as_ref().is_some_and(|m| *m != owner) {
            return refuse(
                "the redemptions belong to different members: void them one member at a time"
                    .into(),
            );
        }
        if returned.iter().any(|x: &Returned| x.redemption_id == *id) {
            return refuse(format!("redemption {id} is named twice"));
        }
        member = Some(owner);
        returned.push(Returned {
            redemption_id: id.clone(),
            points_returned: points,
            gift_id,
        });
    }
    let Some(member) = member else {
        return refuse("name at least one redemption to give back".into());
    };
    let points: i64 = returned.iter().map(|x| x.points_returned).sum();
    let balance = if points > 0 {
        let b = commands::add_points(tx, &member, points, None)?;
        tx.prepare_cached(
            "UPDATE balances SET pending_spent = MAX(0, pending_spent - ?2) WHERE account = ?1",
        )?
        .execute(params![member, points])?;
        b
    } else {
        commands::balance(tx, &member)?
    };
    for x in &returned {
        tx.prepare_cached("UPDATE redemptions SET voided_by = ?2 WHERE redemption_id = ?1")?
            .execute(params![x.redemption_id, r.void_id])?;
        if let Some(gift) = &x.gift_id {
            tx.prepare_cached(
                "UPDATE gifts SET redeemed_at = NULL, redemption_id = NULL WHERE gift_id = ?1",
            )?
            .execute([gift])?;
        }
    }
    let response = VoidOutcome {
        void_id: r.void_id.clone(),
        member_id: member.clone(),
        returned,
        balance,
    };
    let gift_ids: Vec<&str> = response
        .returned
        .iter()
        .filter_map(|x| x.gift_id.as_deref())
        .collect();
    commands::append(
        tx,
        NewEvent {
            key: &key,
            kind: "redemption_voided",
            account: Some(&member),
            lane: Some(&r.lane),
            points,
            payload: json!({"void_id": r.void_id, "redemption_ids": r.redemption_ids, "gift_ids": gift_ids}),
            response: commands::stored(&response)?,
            rule_version: None,
            at: &commands::ts(r.at),
        },
    )?;
    Ok(Ok(Answer::Voided(response)))
}
