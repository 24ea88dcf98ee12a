//! Who is at a lane, as `GET /v1/lanes/{lane}` and the cashier's page both show it.

use super::{ApiError, AppState};
use crate::ledger::card_account;
use serde_json::{json, Value};

/// The member at the lane as `GET /v1/lanes/{lane}` shows it, or null; the lane page too.
pub async fn lane_member(state: &AppState, lane: &str) -> Result<Value, ApiError> {
    let Some(current) = state.lanes.current_with_remaining(lane) else {
        return Ok(Value::Null);
    };
    let who = current.who;
    let account = match (&who.member_id, &who.card) {
        (Some(m), _) => m.clone(),
        (None, Some(card)) => card_account(card),
        (None, None) => String::new(),
    };
    let member_id = who.member_id.clone();
    let (balance, view) = state
        .ledger
        .readers()
        .run(move |readers| {
            let balance = readers.balance(&account)?;
            let view = match &member_id {
                Some(m) => readers.member(m)?,
                None => None,
            };
            Ok((balance, view))
        })
        .await?;
    // The points catalogue with what this member can afford (spending still needs a fresh QR).
    let rewards: Vec<serde_json::Value> = state
        .ledger
        .rules()
        .catalogue
        .iter()
        .map(|c| {
            json!({"reward_id": c.id, "text": c.text, "cost_points": c.cost_points,
                   "affordable": who.member_id.is_some() && balance >= c.cost_points})
        })
        .collect();
    Ok(json!({
        "rewards": rewards,
        "member_id": who.member_id,
        "display_name": view.as_ref().and_then(|v| v.display_name.clone()),
        "card": who.card,
        "known": who.member_id.is_some(),
        "tier": view.as_ref().and_then(|v| v.tier.clone()),
        "balance": balance,
        "gifts": view.map(|v| v.gifts).unwrap_or_default(),
        "can_spend": who.can_spend,
        "spend_refused": who.spend_refused,
        // Whole seconds, rounded up: the page counts down from it.
        "session_ends_in_secs": current.remaining.as_millis().div_ceil(1000),
    }))
}

/// What else the cashier must see at once: the last refused scan, and the lane's scanner when
/// it is not connected (`null` when the lane has none configured).
pub fn lane_alerts(state: &AppState, lane: &str) -> Value {
    let scanner = state.scanners.get(lane).map(|h| {
        json!({
            "connected": h.is_connected(),
            "state": h.state(),
        })
    });
    json!({
        "rejected_scan": state.lanes.rejection(lane),
        "scanner": scanner,
    })
}
