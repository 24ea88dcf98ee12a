//! `POST /v1/lanes/{lane}/quotes`: what a basket would earn and which rewards apply, with
//! nothing written. Fast enough for a POS to ask on every basket change: one pooled read (the
//! member's profile, balance and open gifts) and the pure rules, no writer, no fsync.
//!
//! The sale that follows earns what the quote said unless the rules changed in between: both
//! answers carry `rule_version`, so the POS can tell.

use super::basket::{self, LineBody};
use super::{ApiError, AppState};
use crate::engine;
use crate::engine::reward::{self, Discount};
use crate::ledger::{card_account, Identity, OpenGift};
use crate::scan::CardNumber;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use loyalty_http_edge::Path;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteBody {
    total_cents: Option<i64>,
    lines: Option<Vec<LineBody>>,
    /// A card the POS read itself; otherwise the member identified at the lane. A quote never
    /// takes an app QR: identifying one spends its nonce.
    card: Option<String>,
}

/// One line of a quote.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotedLine {
    pub line: usize,
    pub sku: String,
    pub points: i64,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Quote {
    pub lane: String,
    pub member_id: Option<String>,
    pub card: Option<String>,
    /// What the sale would earn now; 0 with nobody identified.
    pub points: i64,
    pub lines: Vec<QuotedLine>,
    /// Basket-wide bonuses, in `points` and attributed to no line.
    pub basket_bonus: i64,
    pub rule_version: Option<String>,
    pub campaigns: Vec<String>,
    pub balance: Option<i64>,
    /// Rewards the member can use on this basket: their open gifts.
    pub rewards: Vec<OpenGift>,
    /// The points catalogue's items that apply to this basket, with their discount lines and
    /// whether the member's balance affords them.
    pub catalogue: Vec<CatalogueQuote>,
}

/// A catalogue item as a quote shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogueQuote {
    pub reward_id: String,
    pub text: String,
    pub cost_points: i64,
    pub affordable: bool,
    pub discounts: Vec<Discount>,
}

#[utoipa::path(post, path = "/v1/lanes/{lane}/quotes", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id, as configured in `[[lanes]]`", example = "1")),
    request_body = QuoteBody,
    responses((status = 200, description = "What the basket would earn now; nothing is written", body = Quote), (status = "default", description = "An error: `{\"error\": code, \"message\": sentence}` (README, \"The local API in short\")", body = loyalty_protocol::ErrorBody)))]
pub async fn quote(
    State(state): State<AppState>,
    Path(lane): Path<String>,
    payload: Result<Json<QuoteBody>, JsonRejection>,
) -> Result<Json<Quote>, ApiError> {
    if !state.lanes.exists(&lane) {
        return Err(super::error::unknown_lane(&lane));
    }
    let b = payload.map(|Json(v)| v).map_err(|e| {
        let (status, code, message) = loyalty_http_edge::errors::json_rejection(&e);
        ApiError::new(status, code, message)
    })?;
    let (total_cents, lines) = basket::basket(b.total_cents, b.lines)?;
    let identity = match b.card {
        Some(card) => Some(Identity::Card(
            CardNumber::from_str(&card)
                .map_err(|e| {
                    ApiError::invalid(
                        "bad_card",
                        format!("`{card}` is not a valid card number: {e}"),
                    )
                })?
                .as_str()
                .to_owned(),
        )),
        None => state.lanes.current(&lane).map(|w| w.identity),
    };
    let rules = state.ledger.rules();
    let (member_id, card, account, profile, balance, rewards) = state
        .ledger
        .readers()
        .run(move |r| {
            let (member, card) = match identity {
                None => (None, None),
                Some(Identity::Member(m)) => (Some(m), None),
                Some(Identity::Card(c)) => (r.member_for_card(&c)?, Some(c)),
            };
            let account = match (&member, &card) {
                (Some(m), _) => Some(m.clone()),
                (None, Some(c)) => Some(card_account(c)),
                (None, None) => None,
            };
            let profile = match &member {
                Some(m) => r.profile(m)?,
                None => None,
            };
            let balance = match &account {
                Some(a) => Some(r.balance(a)?),
                None => None,
            };
            let rewards = match &member {
                Some(m) => r.open_gifts(m)?,
                None => Vec::new(),
            };
            Ok((member, card, account, profile, balance, rewards))
        })
        .await?;
    let at = chrono::Utc::now();
    let earning = account.as_ref().map(|_| {
        if lines.is_empty() {
            engine::earn(&rules, profile.as_ref(), total_cents, at)
        } else {
            engine::earn_basket(&rules, profile.as_ref(), &lines, at)
        }
    });
    let quoted = lines
        .iter()
        .enumerate()
        .map(|(i, l)| QuotedLine {
            line: i + 1,
            sku: l.sku.clone(),
            points: earning
                .as_ref()
                .and_then(|e| e.lines.get(i).copied())
                .unwrap_or(0),
        })
        .collect();
    let catalogue = rules
        .catalogue
        .iter()
        .filter_map(|c| {
            let discounts = reward::apply(&c.reward, &c.text, &lines).ok()?;
            Some(CatalogueQuote {
                reward_id: c.id.clone(),
                text: c.text.clone(),
                cost_points: c.cost_points,
                affordable: member_id.is_some() && balance.is_some_and(|b| b >= c.cost_points),
                discounts,
            })
        })
        .collect();
    Ok(Json(Quote {
        lane,
        member_id,
        card,
        points: earning.as_ref().map_or(0, |e| e.points),
        lines: quoted,
        basket_bonus: earning.as_ref().map_or(0, |e| e.basket_bonus),
        rule_version: earning.as_ref().map(|e| e.rule_version.clone()),
        campaigns: earning.map(|e| e.campaigns).unwrap_or_default(),
        balance,
        rewards,
        catalogue,
    }))
}
