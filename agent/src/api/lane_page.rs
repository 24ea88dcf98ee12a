//! The cashier's lane page, `GET /lane/{lane}`, and its live feed, `GET /lane/{lane}/events`.
//!
//! - [`LivePages`] is the one piece of state the page adds to [`AppState`]: a broadcast of lane
//!   ids that handlers notify after they record a sale, redemption or refund, and each lane's
//!   last sale and last action (in memory: the page shows what happened at the till since the
//!   agent started, the ledger keeps the rest).
//! - The feed is server-sent events: one `state` event carrying a full [`snapshot`] when the page
//!   connects, whenever the lane's session changes ([`Lanes::subscribe`]) or something is recorded
//!   on the lane, and at least every [`HEARTBEAT`] (a session that timed out, HQ going offline,
//!   the sync queue draining). Full snapshots rather than deltas: a page that missed events (a
//!   lagging receiver, a reconnect) is right again at the next one.
//! - Feeds end when the agent shuts down, so an open page never holds up a graceful stop.
//!
//! The page itself is one self-contained HTML file (inline CSS and JS, system fonts): the store
//! may be offline.
//!
//! [`Lanes::subscribe`]: crate::checkout::Lanes::subscribe

use super::{lane_view, ApiError, AppState};
use crate::ledger::{Redeemed, RefundOutcome, SaleOutcome};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream::Stream;
use loyalty_http_edge::Path;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The page: inline CSS and JS, no external assets.
const PAGE: &str = include_str!("lane_page.html");

/// Longest time between two snapshots on an open feed.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// What a handler recorded on a lane, with the answer it gave.
pub enum Recorded<'a> {
    Sale(&'a SaleOutcome),
    Redemption(&'a Redeemed),
    Refund(&'a RefundOutcome),
}

/// A lane's last sale and last action, each with the lane's customer epoch when recorded
/// ([`crate::checkout::Lanes::epoch`]): the page shows only the current customer's.
#[derive(Debug, Clone, Default)]
struct Recent {
    last_sale: Option<(u64, Value)>,
    last_action: Option<(u64, Value)>,
}

/// Live lane pages: who to wake, and what each lane last did.
pub struct LivePages {
    changes: broadcast::Sender<String>,
    recent: Mutex<HashMap<String, Recent>>,
    shutdown: CancellationToken,
}

impl LivePages {
    /// Feeds end when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        LivePages {
            changes: broadcast::channel(64).0,
            recent: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Called by a handler after it recorded `what` on `lane` for the lane's customer `epoch`:
    /// remembers it for the page and wakes the lane's open feeds.
    pub fn recorded(&self, lane: &str, epoch: u64, what: Recorded<'_>) {
        // Milliseconds: the page tells one action from the next by this time.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Ok(mut recent) = self.recent.lock() {
            let entry = recent.entry(lane.to_owned()).or_default();
            match what {
                Recorded::Sale(a) => {
                    entry.last_sale = Some((
                        epoch,
                        json!({
                            "receipt_id": a.receipt_id,
                            "member_id": a.member_id,
                            "card": a.card,
                            "points_earned": a.points_earned,
                            "balance": a.balance,
                            "at": now,
                        }),
                    ));
                }
                Recorded::Redemption(a) => {
                    let text = match a {
                        Redeemed::Gift(g) => format!("Handed over: {}", g.gift),
                        Redeemed::Points(p) => {
                            format!("{} points spent; balance {}", p.points_spent, p.balance)
                        }
                    };
                    entry.last_action = Some((
                        epoch,
                        json!({"kind": "redemption", "text": text, "at": now}),
                    ));
                }
                Recorded::Refund(a) => {
                    let text = format!(
                        "Refund on receipt {}: {} points taken back; balance {}",
                        a.receipt_id,
                        a.points_taken_back,
                        a.balance
                            .map_or_else(|| "null".to_owned(), |b| b.to_string())
                    );
                    entry.last_action =
                        Some((epoch, json!({"kind": "refund", "text": text, "at": now})));
                }
            }
        }
        // No open page is not an error.
        let _ = self.changes.send(lane.to_owned());
    }

    fn recent(&self, lane: &str) -> Recent {
        self.recent
            .lock()
            .ok()
            .and_then(|r| r.get(lane).cloned())
            .unwrap_or_default()
    }
}

/// How the page presents the lane's member; each state has its own colour on the page.
pub fn lane_state(member: &Value, rejected_scan: &Value) -> (&'static str, Option<String>) {
    if member.is_null() {
        if let Some(message) = rejected_scan["message"].as_str() {
            return ("rejected", Some(message.to_owned()));
        }
        return ("idle", None);
    }
    if member["known"] != Value::Bool(true) {
        return ("unknown_card", None);
    }
    // Identified by app QR (no card) yet not allowed to spend: expired or already used.
    if member["card"].is_null() && member["can_spend"] != Value::Bool(true) {
        let why = member["spend_refused"]
            .as_str()
            .unwrap_or("this app QR code cannot be used to spend points")
            .to_owned();
        return ("token_expired", Some(why));
    }
    // By card, or a QR already spent once: the cashier learns before trying to redeem points.
    let why = (member["can_spend"] != Value::Bool(true))
        .then(|| member["spend_refused"].as_str().map(str::to_owned))
        .flatten();
    ("member", why)
}

/// Everything the page shows, as one JSON object.
pub async fn snapshot(state: &AppState, lane: &str) -> Value {
    let member = match lane_view::lane_member(state, lane).await {
        Ok(m) => m,
        Err(e) => {
            warn!(lane = %lane, error = %e.message, "Lane page snapshot failed.");
            return json!({"lane": lane, "state": "unavailable", "message": e.message});
        }
    };
    let alerts = lane_view::lane_alerts(state, lane);
    let (name, why) = lane_state(&member, &alerts["rejected_scan"]);
    let recent = state.live.recent(lane);
    let epoch = state.lanes.epoch(lane);
    let current = |fact: Option<(u64, Value)>| fact.filter(|(e, _)| *e == epoch).map(|(_, v)| v);
    json!({
        "lane": lane,
        "state": name,
        "why": why,
        "member": member,
        "rejected_scan": alerts["rejected_scan"],
        "scanner": alerts["scanner"],
        "session_timeout_secs": state.lanes.timeout().as_secs(),
        "last_sale": current(recent.last_sale),
        "last_action": current(recent.last_action),
        "hq": hq_view(state).await,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

async fn hq_view(state: &AppState) -> Value {
    let Some(sync) = &state.sync else {
        return json!({"configured": false});
    };
    let readers = state.ledger.readers().clone();
    let queue = match tokio::task::spawn_blocking(move || readers.sync_status()).await {
        Ok(Ok(s)) => Some(s.depth),
        _ => None,
    };
    json!({"configured": true, "online": !sync.is_offline(), "queue": queue})
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /lane/{lane}`: the page, or a 404 page for a lane this store does not have.
#[utoipa::path(get, path = "/lane/{lane}", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id", example = "1")),
    responses(
        (status = 200, description = "The cashier's page", content_type = "text/html; charset=utf-8", body = String),
        (status = 404, description = "No such lane: a page saying so", content_type = "text/html; charset=utf-8", body = String),
        (status = "default", description = "An error", body = loyalty_protocol::ErrorBody)))]
pub async fn page(State(state): State<AppState>, Path(lane): Path<String>) -> Response {
    let known = state.lanes.exists(&lane);
    let lane = escape(&lane);
    if !known {
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Unknown lane</title>\
             <body style=\"font:1.5rem system-ui,sans-serif;margin:2rem\"><h1>Lane {lane} is not \
             configured in this store</h1><p>Configured lanes: {}</p></body></html>",
            state
                .lanes
                .ids()
                .iter()
                .map(|l| format!("<a href=\"/lane/{0}\">{0}</a>", escape(l)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return (StatusCode::NOT_FOUND, Html(body)).into_response();
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(PAGE.replace("__LANE__", &lane)),
    )
        .into_response()
}

/// `GET /lane/{lane}/events`: the page's live feed of `state` events.
#[utoipa::path(get, path = "/lane/{lane}/events", tag = "lanes",
    params(("lane" = String, Path, description = "The lane's id", example = "1")),
    responses(
        (status = 200, description = "Server-sent events: `state`, the lane's whole view, on every change and every 3 s", content_type = "text/event-stream", body = String),
        (status = "default", description = "An error", body = loyalty_protocol::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(lane): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !state.lanes.exists(&lane) {
        return Err(super::error::unknown_lane(&lane));
    }
    debug!(lane = %lane, "Lane page connected.");
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        sessions: state.lanes.subscribe(),
        recorded: state.live.changes.subscribe(),
        shutdown: state.live.shutdown.clone(),
        state,
        lane,
        tick,
        first: true,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Feed {
    state: AppState,
    lane: String,
    sessions: broadcast::Receiver<String>,
    recorded: broadcast::Receiver<String>,
    shutdown: CancellationToken,
    tick: tokio::time::Interval,
    first: bool,
}

enum Wake {
    Now,
    Ignore,
    Stop,
}

fn wake_for(lane: &str, received: Result<String, broadcast::error::RecvError>) -> Wake {
    match received {
        Ok(l) if l == lane => Wake::Now,
        Ok(_) => Wake::Ignore,
        // Missed some: a fresh snapshot covers them.
        Err(broadcast::error::RecvError::Lagged(_)) => Wake::Now,
        Err(broadcast::error::RecvError::Closed) => Wake::Stop,
    }
}

impl Feed {
    /// Waits for a reason to send, then the snapshot to send; `None` ends the feed.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let wake = tokio::select! {
                _ = self.shutdown.cancelled() => Wake::Stop,
                _ = self.tick.tick() => Wake::Now,
                r = self.sessions.recv() => wake_for(&self.lane, r),
                r = self.recorded.recv() => wake_for(&self.lane, r),
            };
            match wake {
                Wake::Now => break,
                Wake::Ignore => continue,
                Wake::Stop => return None,
            }
        }
        // The heartbeat counts from the last snapshot sent.
        self.tick.reset();
        let snapshot = snapshot(&self.state, &self.lane).await;
        let mut event = Event::default().event("state").data(snapshot.to_string());
        if std::mem::take(&mut self.first) {
            // EventSource reconnects after this long when the agent restarts.
            event = event.retry(Duration::from_secs(2));
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_how_the_member_was_identified() {
        assert_eq!(lane_state(&Value::Null, &Value::Null), ("idle", None));
        let refused = json!({"code": "bad_check_digit", "message": "Scan refused"});
        assert_eq!(
            lane_state(&Value::Null, &refused),
            ("rejected", Some("Scan refused".to_owned()))
        );
        let card =
            json!({"member_id": null, "card": "4006381333931", "known": false, "can_spend": false});
        assert_eq!(lane_state(&card, &Value::Null).0, "unknown_card");
        let member_card = json!({"member_id": "m", "card": "4006381333931", "known": true, "can_spend": false, "spend_refused": "a card earns"});
        assert_eq!(
            lane_state(&member_card, &Value::Null),
            ("member", Some("a card earns".to_owned()))
        );
        let fresh_qr = json!({"member_id": "m", "card": null, "known": true, "can_spend": true});
        assert_eq!(lane_state(&fresh_qr, &Value::Null), ("member", None));
        let old_qr = json!({"member_id": "m", "card": null, "known": true, "can_spend": false, "spend_refused": "expired"});
        assert_eq!(
            lane_state(&old_qr, &Value::Null),
            ("token_expired", Some("expired".to_owned()))
        );
    }

    #[test]
    fn lane_ids_are_escaped_in_html() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
