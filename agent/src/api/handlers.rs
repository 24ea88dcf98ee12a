//! One function per route.

use super::lane_page::Recorded;
use super::lane_view;
use super::replay;
use super::{ApiError, AppState};
use crate::checkout::{LaneIdentity, Spend};
use crate::ledger::{
    keys, GiftRedeemRequest, Readers, RedeemRequest, Redeemed, RefundRequest, SaleOutcome,
    SaleRequest,
};
use crate::scan::{classify, qr, CardNumber, ScannedCode};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use loyalty_http_edge::Path;
use serde::Deserialize;
use serde_json::{json, Value};
use std::str::FromStr;
use std::time::Instant;
use tracing::info;

type ApiResult = Result<Json<Value>, ApiError>;

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload.map(|Json(v)| v).map_err(|e| {
        let (status, code, message) = loyalty_http_edge::errors::json_rejection(&e);
        ApiError::new(status, code, message)
    })
}

fn check_id(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "bad_id",
            format!("`{field}` must be 1 to 128 printable characters"),
        ));
    }
    Ok(())
}

/// Runs a read on a pooled ledger connection off the async threads.
async fn read_ledger<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Readers) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(state.ledger.readers().run(read).await?)
}

fn known_lane(state: &AppState, lane: &str) -> Result<(), ApiError> {
    if state.lanes.exists(lane) {
        Ok(())
    } else {
        Err(super::error::unknown_lane(lane))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleBody {
    receipt_id: String,
    total_cents: i64,
    card: Option<String>,
    qr: Option<String>,
}

/// A code the POS read itself, sent with the request.
async fn identify_from_pos(
    state: &AppState,
    card: Option<&str>,
    token: Option<&str>,
) -> Result<Option<LaneIdentity>, ApiError> {
    let code = match (card, token) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "bad_request",
                "send `card` or `qr`, not both",
            ))
        }
        (Some(card), None) => {
            let card = CardNumber::from_str(card).map_err(|e| {
                ApiError::invalid(
                    "bad_card",
                    format!("`{card}` is not a valid card number: {e}"),
                )
            })?;
            // The writer links the card to its member in the sale's own transaction; a lookup
            // here would only cost a read on the hot path.
            return Ok(Some(LaneIdentity::card(card.as_str().to_owned(), None)));
        }
        (None, Some(token)) => match classify(None, token) {
            Ok(code @ ScannedCode::AppQr(_)) => code,
            _ => {
                return Err(ApiError::invalid(
                    "bad_qr",
                    format!(
                        "not a member app QR code: {}",
                        qr::parse(token)
                            .err()
                            .map_or_else(|| "not an app QR".to_string(), |e| e.to_string())
                    ),
                ))
            }
        },
        (None, None) => return Ok(None),
    };
    state
        .identifier
        .identify(&code)
        .await
        .map(Some)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))
}

pub async fn sale(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<SaleBody>, JsonRejection>,
) -> Result<Json<SaleOutcome>, ApiError> {
    let started = Instant::now();
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("receipt_id", &b.receipt_id)?;
    if !(0..=10_000_000_000).contains(&b.total_cents) {
        return Err(ApiError::invalid(
            "bad_total",
            "`total_cents` must be between 0 and 10000000000",
        ));
    }
    let _turn = state.in_flight.turn(keys::sale(&b.receipt_id)).await;
    // A retry gets its first answer before anything is checked. Identifying an app QR spends
    // its nonce and may refuse, so a sale with one looks its receipt up first; any other sale
    // learns it is a retry from the writer, in the same trip that records a new one.
    if b.qr.is_some() {
        if let Some(first) = replay::sale(&state, &b.receipt_id).await? {
            return Ok(Json(first));
        }
    }
    let from_pos = match identify_from_pos(&state, b.card.as_deref(), b.qr.as_deref()).await {
        Ok(who) => who,
        Err(refused) => {
            // A retry whose card no longer reads still gets what was recorded.
            if let Some(first) = replay::sale(&state, &b.receipt_id).await? {
                return Ok(Json(first));
            }
            return Err(refused);
        }
    };
    let who = from_pos.or_else(|| state.lanes.current(&lane));
    let recorded = state
        .ledger
        .record_sale(SaleRequest {
            lane: lane.clone(),
            receipt_id: b.receipt_id.clone(),
            total_cents: b.total_cents,
            identity: who.map(|w| w.identity),
            at: chrono::Utc::now(),
        })
        .await?;
    let answer = recorded.answer;
    if recorded.retry {
        // A retry must not end the session of the customer now at the lane.
        return Ok(Json(answer));
    }
    // The sale is done: the next customer at this lane starts without a member.
    state.lanes.clear(&lane);
    let points = answer.points_earned;
    if points > 0 {
        state.metrics.credited(points);
    }
    state
        .metrics
        .observe_sale_latency(started.elapsed().as_secs_f64());
    info!(lane = %lane, receipt = %b.receipt_id, member = answer.member_id.as_deref(), points, "Sale recorded.");
    state.live.recorded(&lane, Recorded::Sale(&answer));
    // Written straight from the answer's type, not through a `Value` tree first.
    Ok(Json(answer))
}

pub async fn lane(State(state): State<AppState>, Path(lane): Path<String>) -> ApiResult {
    known_lane(&state, &lane)?;
    let member = lane_view::lane_member(&state, &lane).await?;
    Ok(Json(json!({"lane": lane, "member": member})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    redemption_id: String,
    points: Option<i64>,
    gift_id: Option<String>,
    qr: Option<String>,
}

pub async fn redeem(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<RedeemBody>, JsonRejection>,
) -> ApiResult {
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("redemption_id", &b.redemption_id)?;
    let _turn = state
        .in_flight
        .turn(keys::redemption(&b.redemption_id))
        .await;
    if let Some(first) = replay::redemption(&state, &b.redemption_id).await? {
        return Ok(Json(json!(first)));
    }
    let points = match (b.points, &b.gift_id) {
        (Some(p), None) => p,
        (None, Some(gift_id)) => {
            check_id("gift_id", gift_id)?;
            return redeem_gift(&state, &lane, b.redemption_id, gift_id.clone(), b.qr).await;
        }
        _ => {
            return Err(ApiError::invalid(
                "bad_request",
                "send `points` or `gift_id`, one of them",
            ))
        }
    };
    if points <= 0 {
        return Err(ApiError::invalid(
            "bad_points",
            "`points` must be more than 0",
        ));
    }
    // A QR the POS sends is its own authorisation (its nonce is spent by identifying it); the
    // lane's scanned QR authorises one spend, taken here and given back if the ledger refuses.
    let (who, ticket) = match identify_from_pos(&state, None, b.qr.as_deref()).await? {
        Some(w) => (Some(w), None),
        None => match state.lanes.take_spend(&lane) {
            Spend::Allowed(w, ticket) => (Some(w), Some(ticket)),
            Spend::Refused(w) => (w, None),
        },
    };
    let Some(who) = who else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_member",
            "no member is identified at this lane: scan the member's app QR first",
        ));
    };
    let (true, Some(member_id)) = (who.can_spend, who.member_id.clone()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "spend_needs_fresh_qr",
            who.spend_refused
                .unwrap_or("spending needs the member's app QR code"),
        ));
    };
    let redeemed = state
        .ledger
        .redeem(RedeemRequest {
            lane: lane.clone(),
            redemption_id: b.redemption_id,
            member_id,
            points,
            at: chrono::Utc::now(),
            offline: state.sync.as_ref().is_some_and(|s| s.is_offline()),
        })
        .await;
    let answer = match redeemed {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(ticket) = ticket {
                state.lanes.give_back(ticket);
            }
            return Err(e.into());
        }
    };
    state.live.recorded(&lane, Recorded::Redemption(&answer));
    Ok(Json(json!(answer)))
}

/// A gift is handed to the member identified at the lane, by card or app QR: it was issued to
/// that member for being here, and the cashier sees who it is for. Points need the fresh QR.
async fn redeem_gift(
    state: &AppState,
    lane: &str,
    redemption_id: String,
    gift_id: String,
    qr: Option<String>,
) -> ApiResult {
    let who = match identify_from_pos(state, None, qr.as_deref()).await? {
        Some(w) => Some(w),
        None => state.lanes.current(lane),
    };
    let Some(member_id) = who.and_then(|w| w.member_id) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_member",
            "no member is identified at this lane: scan the member's card or app QR first",
        ));
    };
    let answer = state
        .ledger
        .redeem_gift(GiftRedeemRequest {
            lane: lane.to_owned(),
            redemption_id,
            member_id,
            gift_id,
            at: chrono::Utc::now(),
        })
        .await?;
    if let Redeemed::Gift(g) = &answer {
        info!(lane = %lane, gift = %g.gift_id, "Gift handed over.");
    }
    state.live.recorded(lane, Recorded::Redemption(&answer));
    Ok(Json(json!(answer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    refund_id: String,
    receipt_id: String,
    total_cents: i64,
}

pub async fn refund(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<RefundBody>, JsonRejection>,
) -> ApiResult {
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("refund_id", &b.refund_id)?;
    check_id("receipt_id", &b.receipt_id)?;
    if b.total_cents <= 0 {
        return Err(ApiError::invalid(
            "bad_total",
            "`total_cents` must be more than 0",
        ));
    }
    let _turn = state.in_flight.turn(keys::refund(&b.refund_id)).await;
    if let Some(first) = replay::refund(&state, &b.refund_id).await? {
        return Ok(Json(json!(first)));
    }
    let answer = state
        .ledger
        .refund(RefundRequest {
            lane: lane.clone(),
            refund_id: b.refund_id,
            receipt_id: b.receipt_id,
            total_cents: b.total_cents,
            at: chrono::Utc::now(),
        })
        .await?;
    state.live.recorded(&lane, Recorded::Refund(&answer));
    Ok(Json(json!(answer)))
}

pub async fn member(State(state): State<AppState>, Path(member_id): Path<String>) -> ApiResult {
    let id = member_id.clone();
    let view = read_ledger(&state, move |r| r.member(&id)).await?;
    match view {
        Some(v) => Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_member",
            format!("member `{member_id}` is not known to this store"),
        )),
    }
}

pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let readers = state.ledger.readers().clone();
    let status = tokio::task::spawn_blocking(move || {
        Ok::<_, rusqlite::Error>((readers.sync_status()?, readers.identity()?))
    })
    .await;
    let (ledger, queue) = match status {
        // The file passed SQLite's integrity check when the agent started (it refuses to start
        // otherwise); damage found since shows as an error here.
        Ok(Ok((s, (ledger_id, rebased)))) => (
            json!({"state": "ok", "integrity": "ok", "ledger_id": ledger_id,
                   "rebased_from": rebased.map(|(from, at)| json!({"ledger_id": from, "at": at})),
                   "outbox": {"depth": s.depth, "oldest_age_seconds": s.oldest_age_seconds}}),
            Some(s),
        ),
        Ok(Err(e)) => (json!({"state": "error", "error": e.to_string()}), None),
        Err(e) => (json!({"state": "error", "error": e.to_string()}), None),
    };
    let hq = match &state.sync {
        None => json!({"state": "disabled"}),
        Some(sync) => {
            let mut v = serde_json::to_value(sync.view()).unwrap_or(Value::Null);
            if let Some(q) = &queue {
                v["backlog"] = json!(q.depth);
                v["oldest_unsynced_age_seconds"] = json!(q.oldest_age_seconds);
                v["dead_letters"] = json!(q.dead_letters);
                v["skew_ms"] = json!(q.skew_ms);
                v["last_push_at"] = json!(q.last_push_at);
                v["last_pull_at"] = json!(q.last_pull_at);
            }
            v
        }
    };
    let scanners: serde_json::Map<String, Value> = state
        .scanners
        .iter()
        .map(|(lane, h)| {
            (
                lane.clone(),
                serde_json::to_value(h.state()).unwrap_or(Value::Null),
            )
        })
        .collect();
    let now = std::time::Instant::now();
    let sensors_good = state
        .sensors
        .values()
        .all(|h| h.is_connected() && !h.is_down(now));
    let tracking = state
        .tracking
        .as_ref()
        .map(|t| serde_json::to_value(t.snapshot()).unwrap_or(Value::Null));
    let adapters_good = state.adapters.values().all(|h| h.is_scanning());
    let adapters: serde_json::Map<String, Value> = state
        .adapters
        .iter()
        .map(|(name, h)| (name.clone(), h.snapshot()))
        .collect();
    let sensors_good = sensors_good && adapters_good;
    let proximity = if state.sensors.is_empty() && tracking.is_none() {
        json!({"state": "not_configured"})
    } else {
        let nodes: serde_json::Map<String, Value> = state
            .sensors
            .iter()
            .map(|(name, h)| (name.clone(), h.snapshot()))
            .collect();
        json!({"state": if sensors_good { "ok" } else { "degraded" }, "sensors": nodes, "bluetooth": adapters, "tracking": tracking})
    };
    let all_good = ledger["state"] == "ok"
        && hq["state"] != "blocked"
        && state.scanners.values().all(|h| h.is_connected())
        && sensors_good;
    Json(json!({
        "status": if all_good { "ok" } else { "degraded" },
        "store": state.store_id,
        "components": {
            "ledger": ledger,
            "scanners": scanners,
            "hq": hq,
            "proximity": proximity,
        }
    }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let readers = state.ledger.readers().clone();
    let now = std::time::Instant::now();
    for (name, h) in state.sensors.iter() {
        state
            .metrics
            .set_sensor_up(name, h.is_connected() && !h.is_down(now));
    }
    if let Ok(Ok(status)) = tokio::task::spawn_blocking(move || readers.sync_status()).await {
        state
            .metrics
            .set_outbox(status.depth, status.oldest_age_seconds);
        state.metrics.set_dead_letters(status.dead_letters);
    }
    if let Some(sync) = &state.sync {
        state.metrics.set_hq_online(!sync.is_offline());
        state.metrics.set_sync_blocked(sync.blocked().is_some());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
