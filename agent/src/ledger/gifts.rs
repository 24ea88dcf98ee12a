//! Presence facts in, gifts out; and gifts handed over at a lane.
//!
//! Every limit (once per visit, per day, per member, the store's daily budget) is checked
//! inside the write transaction that records the gift, so two triggers racing for the last gift
//! of a budget cannot both win. The visit itself is stored (`presence`), so a restart mid-visit
//! continues the visit instead of opening a new one.

use super::commands::{self, Applied, NewEvent};
use super::outcome::{keys, Answer, GiftHandedOver, GiftsIssued, IssuedGift, Redeemed, Refusal};
use crate::engine::gifts::{self, GiftHistory, GiftLimit, Presence, PresenceFact};
use crate::engine::Rules;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;
use tracing::{debug, warn};

#[derive(Debug, Clone)]
pub struct PresenceRequest {
    pub member_id: String,
    pub fact: PresenceFact,
    /// HQ-corrected wall-clock time of the fact.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GiftRedeemRequest {
    pub lane: String,
    pub redemption_id: String,
    pub member_id: String,
    pub gift_id: String,
    /// The basket a reward gift's discount lines are computed on; empty: just hand it over.
    pub basket: Vec<crate::engine::BasketLine>,
    pub at: DateTime<Utc>,
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn history(
    tx: &Connection,
    member: &str,
    campaign: &str,
    day: &str,
) -> rusqlite::Result<GiftHistory> {
    let (ever, last, today): (u32, Option<String>, u32) = tx
        .prepare_cached(
            "SELECT COUNT(*), MAX(issued_at), COALESCE(SUM(local_day = ?3), 0)
             FROM gifts WHERE member_id = ?1 AND campaign_id = ?2",
        )?
        .query_row(params![member, campaign, day], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let store_today: u32 = tx
        .prepare_cached("SELECT COUNT(*) FROM gifts WHERE campaign_id = ?1 AND local_day = ?2")?
        .query_row(params![campaign, day], |r| r.get(0))?;
    Ok(GiftHistory {
        last_issued: parse_time(last),
        issued_to_member_today: today,
        issued_to_member_ever: ever,
        issued_by_store_today: store_today,
    })
}

pub(super) fn presence(tx: &Connection, rules: &Rules, r: &PresenceRequest) -> Applied {
    let at_text = commands::ts(r.at);
    let stored: Option<(String, String, Option<String>)> = tx
        .prepare_cached(
            "SELECT visit_started, last_seen, seen_before_visit FROM presence WHERE member_id = ?1",
        )?
        .query_row([&r.member_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let open = stored
        .as_ref()
        .and_then(|(v, s, _)| Some((parse_time(Some(v.clone()))?, parse_time(Some(s.clone()))?)));
    let visit_started = gifts::visit_start(open, r.at);
    let continuing = open.is_some_and(|(start, _)| start == visit_started);
    // Seen before this visit: the previous visit's last sighting when this fact opens a new
    // visit, else what was recorded when the open visit began.
    let seen_before = if continuing {
        stored.as_ref().and_then(|(_, _, b)| parse_time(b.clone()))
    } else {
        open.map(|(_, seen)| seen)
    };
    // A purchase is a visit too, if it came before this one.
    let last_bought: Option<String> = tx
        .prepare_cached("SELECT last_visit FROM balances WHERE account = ?1")?
        .query_row([&r.member_id], |row| row.get(0))
        .optional()?
        .flatten();
    let bought_before = parse_time(last_bought).filter(|t| *t < visit_started);
    let before = Presence {
        visit_started: Some(visit_started),
        seen_before_visit: seen_before.max(bought_before),
    };
    tx.prepare_cached(
        "INSERT INTO presence (member_id, visit_started, last_seen, seen_before_visit) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(member_id) DO UPDATE SET visit_started = ?2, last_seen = MAX(last_seen, ?3), seen_before_visit = ?4",
    )?
    .execute(params![
        r.member_id,
        commands::ts(visit_started),
        at_text,
        seen_before.map(commands::ts)
    ])?;

    let Some(profile) = commands::profile(tx, &r.member_id)? else {
        return Ok(Ok(Answer::Gifts(GiftsIssued {
            member_id: r.member_id.clone(),
            gifts: Vec::new(),
        })));
    };
    let day = gifts::local_day(r.at, rules.time_zone).to_string();
    let zone = match &r.fact {
        PresenceFact::Dwelled { zone, .. } | PresenceFact::Entered { zone } => Some(zone.as_str()),
        PresenceFact::WalkedIn => None,
    };
    let mut issued = Vec::new();
    for campaign in &rules.gifts {
        let history = history(tx, &r.member_id, &campaign.id, &day)?;
        let grant = match gifts::decide(campaign, &r.fact, &profile, &history, &before, r.at) {
            Ok(g) => g,
            Err(gifts::NoGift::NotTriggered) => continue,
            Err(reason) => {
                debug!(member = %r.member_id, campaign = %campaign.id, reason = %reason, "No gift.");
                continue;
            }
        };
        if let Err(why) = loyalty_protocol::bounds::add_to_balance(
            commands::balance(tx, &r.member_id)?,
            campaign.points,
        ) {
            warn!(member = %r.member_id, campaign = %campaign.id, reason = %why, "Gift not issued: its points would leave the bounds.");
            continue;
        }
        let gift_id = uuid::Uuid::now_v7().to_string();
        let expires_at = commands::ts(grant.expires_at);
        let gift = IssuedGift {
            gift_id: gift_id.clone(),
            campaign_id: campaign.id.clone(),
            campaign_version: campaign.version,
            gift: campaign.gift.clone(),
            zone: zone.map(str::to_owned),
            issued_at: at_text.clone(),
            expires_at: expires_at.clone(),
            points: campaign.points,
            reward: campaign.reward.clone(),
        };
        if campaign.points > 0 {
            commands::add_points(tx, &r.member_id, campaign.points, None)?;
        }
        let seq = commands::append(
            tx,
            NewEvent {
                key: &keys::gift(&gift_id),
                kind: "gift_issued",
                account: Some(&r.member_id),
                lane: None,
                points: campaign.points,
                payload: json!({
                    "gift_id": gift_id,
                    "campaign_id": campaign.id,
                    "campaign_version": campaign.version,
                    "member_id": r.member_id,
                    "once_per_member": campaign.limit == GiftLimit::OncePerMember,
                    "expires_at": expires_at,
                    "zone": zone,
                    "gift": campaign.gift,
                    "reward": campaign.reward,
                }),
                response: commands::stored(&gift)?,
                rule_version: Some(&format!("{}@{}", campaign.id, campaign.version)),
                at: &at_text,
            },
        )?;
        tx.prepare_cached(
            "INSERT INTO gifts (gift_id, seq, member_id, campaign_id, campaign_version, gift, zone, issued_at, local_day, expires_at, reward)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            gift_id,
            seq,
            r.member_id,
            campaign.id,
            campaign.version,
            campaign.gift,
            zone,
            at_text,
            day,
            expires_at,
            campaign
                .reward
                .as_ref()
                .map(|r| serde_json::to_string(r).unwrap_or_default())
        ])?;
        issued.push(gift);
    }
    Ok(Ok(Answer::Gifts(GiftsIssued {
        member_id: r.member_id.clone(),
        gifts: issued,
    })))
}

pub(super) fn redeem_gift(tx: &Connection, r: &GiftRedeemRequest) -> Applied {
    let key = keys::redemption(&r.redemption_id);
    if let Some(first) = commands::first_answer(tx, &key)? {
        return Ok(Ok(Answer::Redeemed(first)));
    }
    type GiftRow = (String, String, String, Option<String>, Option<String>);
    let gift: Option<GiftRow> = tx
        .prepare_cached(
            "SELECT member_id, gift, expires_at, redeemed_at, reward FROM gifts WHERE gift_id = ?1",
        )?
        .query_row([&r.gift_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?;
    let Some((owner, what, expires_at, redeemed_at, reward)) = gift else {
        return Ok(Err(Refusal::UnknownGift(r.gift_id.clone()).into()));
    };
    if owner != r.member_id {
        return Ok(Err(Refusal::NotThisMembersGift.into()));
    }
    if let Some(when) = redeemed_at {
        return Ok(Err(Refusal::GiftAlreadyRedeemed(when).into()));
    }
    if parse_time(Some(expires_at.clone())).is_none_or(|e| e <= r.at) {
        return Ok(Err(Refusal::GiftExpired(expires_at).into()));
    }
    let reward: Option<crate::engine::reward::Reward> =
        reward.and_then(|text| serde_json::from_str(&text).ok());
    let discounts = match (&reward, r.basket.is_empty()) {
        (Some(reward), false) => match crate::engine::reward::apply(reward, &what, &r.basket) {
            Ok(d) => d,
            Err(e) => return Ok(Err(Refusal::RewardNotApplicable(e.to_string()).into())),
        },
        _ => Vec::new(),
    };
    let at = commands::ts(r.at);
    tx.prepare_cached("UPDATE gifts SET redeemed_at = ?2, redemption_id = ?3 WHERE gift_id = ?1")?
        .execute(params![r.gift_id, at, r.redemption_id])?;
    let response = Redeemed::Gift(GiftHandedOver {
        redemption_id: r.redemption_id.clone(),
        member_id: r.member_id.clone(),
        gift_id: r.gift_id.clone(),
        gift: what,
        redeemed: true,
        discounts,
    });
    commands::record_redemption(tx, &r.redemption_id, &r.member_id, 0, Some(&r.gift_id))?;
    commands::append(
        tx,
        NewEvent {
            key: &key,
            kind: "gift_redeemed",
            account: Some(&r.member_id),
            lane: Some(&r.lane),
            points: 0,
            payload: json!({"gift_id": r.gift_id, "redemption_id": r.redemption_id}),
            response: commands::stored(&response)?,
            rule_version: None,
            at: &at,
        },
    )?;
    Ok(Ok(Answer::Redeemed(response)))
}

/// A gift redeemed at another store (HQ's changes feed): no longer open here.
pub(super) fn redeemed_elsewhere(
    tx: &Connection,
    gift_id: &str,
    store: &str,
    at: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE gifts SET redeemed_at = ?2, redemption_id = ?3 WHERE gift_id = ?1 AND redeemed_at IS NULL",
    )?
    .execute(params![gift_id, at, format!("at store {store}")])?;
    Ok(())
}
