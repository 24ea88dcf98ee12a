//! Who is at a lane, as `GET /v1/lanes/{lane}` and the cashier's page both show it.

use super::{ApiError, AppState};
use crate::ledger::card_account;
use serde_json::{json, Value};

/// The member at the lane as `GET /v1/lanes/{lane}` shows it, or null; the lane page too.
pub async fn lane_member(state: &AppState, lane: &str) -> Result<Value, ApiError> {
    let Some(who) = state.lanes.current(lane) else {
        return Ok(Value::Null);
    };
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
    Ok(json!({
        "member_id": who.member_id,
        "card": who.card,
        "known": who.member_id.is_some(),
        "tier": view.as_ref().and_then(|v| v.tier.clone()),
        "balance": balance,
        "gifts": view.map(|v| v.gifts).unwrap_or_default(),
        "can_spend": who.can_spend,
        "spend_refused": who.spend_refused,
    }))
}
