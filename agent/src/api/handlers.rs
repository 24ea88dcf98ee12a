//! One function per route.

use super::basket;
use super::lane_page::Recorded;
use super::lane_view;
use super::replay;
use super::{ApiError, AppState};
use crate::checkout::{LaneIdentity, SessionEnd, Spend};
use crate::ledger::{
    keys, GiftRedeemRequest, Readers, RedeemRequest, Redeemed, RefundOf, RefundRequest, RewardUse,
    SaleOutcome, SaleRequest, VoidRequest,
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

/// A sale: who bought is the member identified at the lane (a scan within the session
/// timeout), or the `card` or app `qr` the POS read itself (one of them, not both).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleBody {
    /// The POS's receipt id (1 to 128 printable characters): the same id again returns the
    /// first answer and credits nothing.
    #[schema(example = "R-2026-000123")]
    receipt_id: String,
    /// The receipt's total in cents, 0 to 10000000000; may be left out when `lines` are sent
    /// (it is their sum), and must equal their sum when both are.
    #[schema(example = 2350)]
    total_cents: Option<i64>,
    /// The basket's lines; see README "Baskets, quotes and line refunds".
    lines: Option<Vec<basket::LineBody>>,
    /// A loyalty card number the POS read.
    card: Option<String>,
    /// A member app QR token the POS read (`LE1.<member>.<issued>.<nonce>.<signature>`).
    qr: Option<String>,
    /// Rewards and gifts the POS applied to this basket (their discount lines).
    #[serde(default)]
    redemption_ids: Vec<String>,
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

#[utoipa::path(post, path = "/v1/lanes/{lane}/sales", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body = SaleBody,
    responses((status = 200, description = "Recorded (or recorded before under this receipt id)", body = crate::ledger::SaleOutcome), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn sale(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<SaleBody>, JsonRejection>,
) -> Result<Json<SaleOutcome>, ApiError> {
    let started = Instant::now();
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("receipt_id", &b.receipt_id)?;
    let (total_cents, lines) = basket::basket(b.total_cents, b.lines)?;
    for id in &b.redemption_ids {
        check_id("redemption_ids", id)?;
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
            total_cents,
            lines,
            redemption_ids: b.redemption_ids,
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
    state.lanes.end(&lane, SessionEnd::Sale);
    let points = answer.points_earned;
    if points > 0 {
        state.metrics.credited(points);
    }
    state
        .metrics
        .observe_sale_latency(started.elapsed().as_secs_f64());
    info!(lane = %lane, receipt = %b.receipt_id, member = answer.member_id.as_deref(), points, "Sale recorded.");
    state
        .live
        .recorded(&lane, state.lanes.epoch(&lane), Recorded::Sale(&answer));
    // Written straight from the answer's type, not through a `Value` tree first.
    Ok(Json(answer))
}

#[utoipa::path(get, path = "/v1/lanes/{lane}", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    responses((status = 200, description = "Who is at the lane", body = super::openapi::LaneAnswer), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn lane(State(state): State<AppState>, Path(lane): Path<String>) -> ApiResult {
    known_lane(&state, &lane)?;
    let member = lane_view::lane_member(&state, &lane).await?;
    let mut answer = lane_view::lane_alerts(&state, &lane);
    answer["lane"] = json!(lane);
    answer["member"] = member;
    Ok(Json(answer))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    #[serde(default)]
    reason: Option<ClearReason>,
}

/// Why the POS or the cashier ends a lane's session; a sale ends it on its own.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ClearReason {
    Cashier,
    NewBasket,
    Void,
}

/// `POST /v1/lanes/{lane}/clear`: the customer identified at the lane is gone (the cashier's
/// Clear, or the POS opening a new basket or voiding one). An empty body is the cashier's.
#[utoipa::path(post, path = "/v1/lanes/{lane}/clear", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body(content = Option<ClearBody>, description = "Why; empty: the cashier's Clear"),
    responses((status = 200, description = "The session ended (`ended`: who was identified, or null)", body = super::openapi::Cleared), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn clear(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: axum::body::Bytes,
) -> ApiResult {
    known_lane(&state, &lane)?;
    // No body at all is the cashier's button; a body must be the documented object.
    let b: ClearBody = if payload.iter().all(u8::is_ascii_whitespace) {
        ClearBody::default()
    } else {
        serde_json::from_slice(&payload).map_err(|e| {
            ApiError::invalid(
                "bad_json",
                format!("the body must be {{\"reason\": \"cashier\" | \"new_basket\" | \"void\"}} or empty: {e}"),
            )
        })?
    };
    let why = match b.reason.unwrap_or(ClearReason::Cashier) {
        ClearReason::Cashier => SessionEnd::Cashier,
        ClearReason::NewBasket => SessionEnd::NewBasket,
        ClearReason::Void => SessionEnd::Void,
    };
    let ended = state.lanes.end(&lane, why);
    Ok(Json(json!({
        "lane": lane,
        "reason": why.as_str(),
        "ended": ended.map(|who| json!({"member_id": who.member_id, "card": who.card})),
    })))
}

/// A redemption of `points` (needs a fresh app QR: scanned at the lane or sent as `qr`) or the
/// hand-over of a gift (`gift_id`, to the member identified at the lane); one of them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    /// 1 to 128 printable characters; the same id again returns the first answer.
    redemption_id: String,
    /// Points to spend, more than 0.
    points: Option<i64>,
    /// An open gift of the member at the lane.
    gift_id: Option<String>,
    /// An item of the points catalogue.
    reward_id: Option<String>,
    /// The basket a reward's discount lines are computed on.
    lines: Option<Vec<basket::LineBody>>,
    /// A member app QR token the POS read.
    qr: Option<String>,
}

#[utoipa::path(post, path = "/v1/lanes/{lane}/redemptions", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body = RedeemBody,
    responses((status = 200, description = "Spent, or handed over", body = crate::ledger::Redeemed), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
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
    let basket = match b.lines {
        Some(lines) => basket::basket(None, Some(lines))?.1,
        None => Vec::new(),
    };
    let (points, reward) = match (b.points, &b.gift_id, &b.reward_id) {
        (Some(p), None, None) => (p, None),
        (None, Some(gift_id), None) => {
            check_id("gift_id", gift_id)?;
            let gift = GiftHandOver {
                redemption_id: b.redemption_id,
                gift_id: gift_id.clone(),
                basket,
            };
            return redeem_gift(&state, &lane, gift, b.qr).await;
        }
        (None, None, Some(reward_id)) => {
            let rules = state.ledger.rules();
            let Some(item) = rules.catalogue.iter().find(|c| c.id == *reward_id) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_reward",
                    format!("this store's catalogue has no reward `{reward_id}`"),
                ));
            };
            let reward = RewardUse {
                reward_id: item.id.clone(),
                text: item.text.clone(),
                reward: item.reward.clone(),
                basket,
            };
            (item.cost_points, Some(reward))
        }
        _ => {
            return Err(ApiError::invalid(
                "bad_request",
                "send `points`, `gift_id` or `reward_id`, one of them",
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
            reward,
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
    state.metrics.redeemed("points", points);
    state.live.recorded(
        &lane,
        state.lanes.epoch(&lane),
        Recorded::Redemption(&answer),
    );
    Ok(Json(json!(answer)))
}

/// A gift to hand over, with the basket its reward applies to (if any).
struct GiftHandOver {
    redemption_id: String,
    gift_id: String,
    basket: Vec<crate::engine::BasketLine>,
}

/// A gift is handed to the member identified at the lane, by card or app QR: it was issued to
/// that member for being here, and the cashier sees who it is for. Points need the fresh QR.
async fn redeem_gift(
    state: &AppState,
    lane: &str,
    gift: GiftHandOver,
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
            redemption_id: gift.redemption_id,
            member_id,
            gift_id: gift.gift_id,
            basket: gift.basket,
            at: chrono::Utc::now(),
        })
        .await?;
    if let Redeemed::Gift(g) = &answer {
        info!(lane = %lane, gift = %g.gift_id, "Gift handed over.");
        state.metrics.redeemed("gift", 0);
    }
    state
        .live
        .recorded(lane, state.lanes.epoch(lane), Recorded::Redemption(&answer));
    Ok(Json(json!(answer)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {
    void_id: String,
    redemption_ids: Vec<String>,
}

/// `POST /v1/lanes/{lane}/voids`: the POS voided a basket; the rewards and gifts redeemed for
/// it come back to the member, and the lane's session ends.
#[utoipa::path(post, path = "/v1/lanes/{lane}/voids", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body = VoidBody,
    responses((status = 200, description = "Given back (or given back before under this void id)", body = crate::ledger::VoidOutcome), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn void(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<VoidBody>, JsonRejection>,
) -> ApiResult {
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("void_id", &b.void_id)?;
    if b.redemption_ids.is_empty() || b.redemption_ids.len() > basket::MAX_LINES {
        return Err(ApiError::invalid(
            "bad_request",
            "`redemption_ids` names 1 to 500 redemptions made for the voided basket",
        ));
    }
    for id in &b.redemption_ids {
        check_id("redemption_ids", id)?;
    }
    let _turn = state.in_flight.turn(keys::void(&b.void_id)).await;
    let answer = state
        .ledger
        .void(VoidRequest {
            lane: lane.clone(),
            void_id: b.void_id,
            redemption_ids: b.redemption_ids,
            at: chrono::Utc::now(),
        })
        .await?;
    state.lanes.end(&lane, SessionEnd::Void);
    info!(lane = %lane, void = %answer.void_id, member = %answer.member_id, returned = answer.returned.len(), "Basket voided; its redemptions given back.");
    Ok(Json(json!(answer)))
}

/// A refund of part (or all) of a sale recorded here.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// 1 to 128 printable characters; the same id again returns the first answer.
    refund_id: String,
    /// The sale's receipt id.
    receipt_id: String,
    /// The amount refunded now, in cents, more than 0; or `lines` instead.
    total_cents: Option<i64>,
    /// Units of the sale's lines refunded now (1-based line numbers).
    lines: Option<Vec<basket::RefundLineBody>>,
}

#[utoipa::path(post, path = "/v1/lanes/{lane}/refunds", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body = RefundBody,
    responses((status = 200, description = "Recorded: the points taken back", body = crate::ledger::RefundOutcome), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn refund(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<RefundBody>, JsonRejection>,
) -> ApiResult {
    known_lane(&state, &lane)?;
    let b = body(payload)?;
    check_id("refund_id", &b.refund_id)?;
    check_id("receipt_id", &b.receipt_id)?;
    let what = match (b.total_cents, b.lines) {
        (Some(cents), None) if cents > 0 => RefundOf::Cents(cents),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "bad_total",
                "`total_cents` must be more than 0",
            ))
        }
        (None, Some(lines)) => RefundOf::Lines(basket::refund_lines(lines)?),
        _ => return Err(ApiError::invalid(
            "bad_request",
            "send `total_cents` (an amount) or `lines` (units of the sale's lines), one of them",
        )),
    };
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
            what,
            at: chrono::Utc::now(),
        })
        .await?;
    state.metrics.refunded(answer.points_taken_back);
    state
        .live
        .recorded(&lane, state.lanes.epoch(&lane), Recorded::Refund(&answer));
    Ok(Json(json!(answer)))
}

#[utoipa::path(get, path = "/v1/members/{member_id}", tag = "members",
    params(("member_id" = String, Path, description = "A member id")),
    responses((status = 200, description = "The member as this store knows them", body = crate::ledger::MemberView), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
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

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "The agent records sales (`status` may still be `degraded`)", body = super::openapi::Health),
        (status = 503, description = "The ledger cannot be read: send nothing here", body = super::openapi::Health)))]
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
    // What is wrong, by component, so that "degraded" says where to look. HQ offline counts:
    // the tills still sell, but nothing reaches HQ and spending is capped by allowances.
    let degraded_by: Vec<&str> = [
        ("ledger", ledger["state"] != "ok"),
        ("hq", hq["state"] == "blocked" || hq["state"] == "offline"),
        (
            "scanners",
            !state.scanners.values().all(|h| h.is_connected()),
        ),
        ("proximity", !sensors_good),
    ]
    .into_iter()
    .filter_map(|(name, bad)| bad.then_some(name))
    .collect();
    // The code is for a load balancer or a probe: 200 while the agent can record sales
    // (degraded included: a store without HQ or a scanner still sells), 503 when its ledger
    // cannot be read and nothing should be sent to it.
    let code = if ledger["state"] == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(json!({
        "status": if degraded_by.is_empty() { "ok" } else { "degraded" },
        "degraded_by": degraded_by,
        "store": state.store_id,
        "components": {
            "ledger": ledger,
            "scanners": scanners,
            "hq": hq,
            "proximity": proximity,
        }
    }));
    (code, body)
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4 (README, \"Metrics\")", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let readers = state.ledger.readers().clone();
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
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
}
