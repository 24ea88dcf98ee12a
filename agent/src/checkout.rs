//! Lane sessions: who is at each checkout lane, and how a scan or a POS-read code identifies
//! them.
//!
//! A known card or a signed app QR makes that member the lane's member until the session ends:
//! a sale, the cashier's Clear, the POS opening a new basket or voiding one, a refused scan on
//! the lane, or the session timeout ([`SessionEnd`]). Earning and spending differ (DESIGN.md): a card, an expired QR or a
//! replayed QR may earn; only a fresh, first-seen QR lets the member spend, and one scan of it
//! authorises one spend of points ([`Lanes::take_spend`]). A forged QR never identifies anyone.

use crate::ledger::{Identity, Ledger};
use crate::metrics::Metrics;
use crate::scan::{qr, AppQr, LaneRead, ScannedCode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Who a lane serves now, as the cashier sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LaneIdentity {
    #[serde(skip)]
    pub identity: Identity,
    pub member_id: Option<String>,
    pub card: Option<String>,
    /// True only after a fresh, unreplayed app QR.
    pub can_spend: bool,
    /// Why spending is not allowed, when it is not.
    pub spend_refused: Option<&'static str>,
}

impl LaneIdentity {
    /// A card: it earns, under its member when linked, under its number until then.
    pub fn card(number: String, member_id: Option<String>) -> Self {
        LaneIdentity {
            identity: Identity::Card(number.clone()),
            member_id,
            card: Some(number),
            can_spend: false,
            spend_refused: Some("a card earns points; spending needs the member's app QR"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentifyError {
    #[error("this app QR code is not signed by the member's app (forged or damaged)")]
    Forged,
    #[error("this app QR code names a member this store does not know")]
    UnknownMember,
    #[error("the ledger cannot be read: {0}")]
    Ledger(String),
}

impl IdentifyError {
    pub fn code(&self) -> &'static str {
        match self {
            IdentifyError::Forged => "forged_qr",
            IdentifyError::UnknownMember => "unknown_member",
            IdentifyError::Ledger(_) => "ledger_unavailable",
        }
    }
}

/// Why a lane's QR scan no longer allows spending after one redemption.
const SCAN_ALREADY_SPENT: &str =
    "this app QR scan already paid for a redemption: scan a fresh QR to spend again";

struct Session {
    who: LaneIdentity,
    since: Instant,
    /// Which scan set it: a spend authorisation given back after a refusal goes only to the
    /// scan it was taken from.
    scan: u64,
}

/// Why a lane's session ended: a customer's identity never outlives their purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The sale was recorded.
    Sale,
    /// The cashier pressed Clear on the lane page, or the POS asked.
    Cashier,
    /// The POS opened a new basket: whoever was identified belongs to the one before.
    NewBasket,
    /// The POS voided the basket.
    Void,
    /// A scan on the lane was refused: the customer who scanned is not the one identified.
    RejectedScan,
    /// Nobody bought anything within the session timeout.
    Timeout,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Sale => "sale",
            SessionEnd::Cashier => "cashier",
            SessionEnd::NewBasket => "new_basket",
            SessionEnd::Void => "void",
            SessionEnd::RejectedScan => "rejected_scan",
            SessionEnd::Timeout => "timeout",
        }
    }
}

/// A scan that identified nobody, as the lane page shows it until the next scan or clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The API's error code (`bad_check_digit`, `forged_qr`, ...).
    pub code: &'static str,
    pub message: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// Who is at a lane now and since when, for the page's countdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub who: LaneIdentity,
    /// Until the session times out on its own.
    pub remaining: Duration,
}

#[derive(Default)]
struct LaneState {
    session: Option<Session>,
    /// Counts every change of customer (set, end, timeout): facts recorded under an older
    /// epoch belong to an earlier customer and are not shown to the current one.
    epoch: u64,
    rejection: Option<Rejection>,
}

/// The right to spend that a lane's fresh QR scan gave, taken by [`Lanes::take_spend`].
#[derive(Debug)]
pub struct SpendTicket {
    lane: String,
    scan: u64,
}

/// What [`Lanes::take_spend`] found.
#[derive(Debug)]
pub enum Spend {
    /// The member may spend, once: the lane's scan no longer allows another spend.
    Allowed(LaneIdentity, SpendTicket),
    /// Nobody at the lane (None), or someone who may not spend.
    Refused(Option<LaneIdentity>),
}

/// Every lane's current member.
pub struct Lanes {
    ids: Vec<String>,
    lanes: Mutex<HashMap<String, LaneState>>,
    timeout: Duration,
    /// The id of a lane whose member was set or cleared (the lane page follows it).
    changes: broadcast::Sender<String>,
    scans: AtomicU64,
}

impl Lanes {
    pub fn new(ids: Vec<String>, timeout: Duration) -> Self {
        Lanes {
            ids,
            lanes: Mutex::new(HashMap::new()),
            timeout,
            changes: broadcast::channel(64).0,
            scans: AtomicU64::new(0),
        }
    }

    /// Lane ids as their sessions change. A timed-out session sends nothing: readers that care
    /// poll [`Lanes::current`] as well.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    pub fn exists(&self, lane: &str) -> bool {
        self.ids.iter().any(|l| l == lane)
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The session timeout, as configured (`checkout.session_timeout_secs`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn notify(&self, lane: &str) {
        // No receiver (no lane page open) is not an error.
        let _ = self.changes.send(lane.to_owned());
    }

    /// Runs `f` on the lane's state after ending a session that timed out.
    fn with_lane<T>(&self, lane: &str, f: impl FnOnce(&mut LaneState) -> T) -> Option<T> {
        let mut lanes = self.lanes.lock().ok()?;
        let state = lanes.entry(lane.to_owned()).or_default();
        if state
            .session
            .as_ref()
            .is_some_and(|s| s.since.elapsed() > self.timeout)
        {
            if let Some(old) = state.session.take() {
                info!(lane = %lane, member = old.who.member_id.as_deref(), card = old.who.card.as_deref(), reason = SessionEnd::Timeout.as_str(), "Lane session ended.");
            }
            state.epoch += 1;
        }
        Some(f(state))
    }

    pub fn set(&self, lane: &str, who: LaneIdentity) {
        let scan = self.scans.fetch_add(1, Ordering::Relaxed);
        self.with_lane(lane, |state| {
            state.session = Some(Session {
                who,
                since: Instant::now(),
                scan,
            });
            state.rejection = None;
            state.epoch += 1;
        });
        self.notify(lane);
    }

    /// The lane's member if identified within the session timeout.
    pub fn current(&self, lane: &str) -> Option<LaneIdentity> {
        self.with_lane(lane, |state| state.session.as_ref().map(|s| s.who.clone()))
            .flatten()
    }

    /// The lane's member with the time left before the session times out.
    pub fn current_with_remaining(&self, lane: &str) -> Option<Current> {
        self.with_lane(lane, |state| {
            state.session.as_ref().map(|s| Current {
                who: s.who.clone(),
                remaining: self.timeout.saturating_sub(s.since.elapsed()),
            })
        })
        .flatten()
    }

    /// Which customer the lane is on; see [`LaneState::epoch`].
    pub fn epoch(&self, lane: &str) -> u64 {
        self.with_lane(lane, |state| state.epoch).unwrap_or(0)
    }

    /// The last refused scan on the lane, until the next scan identifies someone or the lane is
    /// cleared.
    pub fn rejection(&self, lane: &str) -> Option<Rejection> {
        self.with_lane(lane, |state| state.rejection.clone())
            .flatten()
    }

    /// Takes the lane's spend authorisation: one fresh QR scan pays for one redemption of
    /// points, so that a second redemption (a second cashier action, or a POS bug) needs the
    /// member to show a fresh QR. Taken under the lock: two redemptions at once cannot both
    /// have it.
    pub fn take_spend(&self, lane: &str) -> Spend {
        let spend = self.with_lane(lane, |state| match state.session.as_mut() {
            None => Spend::Refused(None),
            Some(s) if !s.who.can_spend => Spend::Refused(Some(s.who.clone())),
            Some(s) => {
                let allowed = s.who.clone();
                s.who.can_spend = false;
                s.who.spend_refused = Some(SCAN_ALREADY_SPENT);
                Spend::Allowed(
                    allowed,
                    SpendTicket {
                        lane: lane.to_owned(),
                        scan: s.scan,
                    },
                )
            }
        });
        let spend = spend.unwrap_or(Spend::Refused(None));
        if matches!(spend, Spend::Allowed(..)) {
            self.notify(lane);
        }
        spend
    }

    /// Gives back an authorisation whose redemption the ledger refused (too few points, the
    /// offline allowance, a ledger that cannot write): nothing was spent. Only to the same
    /// scan; a new scan or a finished sale since then keeps what it has.
    pub fn give_back(&self, ticket: SpendTicket) {
        let given = self.with_lane(&ticket.lane, |state| {
            let Some(s) = state.session.as_mut() else {
                return false;
            };
            if s.scan != ticket.scan || s.who.spend_refused != Some(SCAN_ALREADY_SPENT) {
                return false;
            }
            s.who.can_spend = true;
            s.who.spend_refused = None;
            true
        });
        if given == Some(true) {
            self.notify(&ticket.lane);
        }
    }

    /// Ends the lane's session, whoever is there; answers who was. The next customer starts
    /// without a member.
    pub fn end(&self, lane: &str, why: SessionEnd) -> Option<LaneIdentity> {
        let ended = self
            .with_lane(lane, |state| {
                state.rejection = None;
                state.epoch += 1;
                state.session.take().map(|s| s.who)
            })
            .flatten();
        if let Some(who) = &ended {
            info!(lane = %lane, member = who.member_id.as_deref(), card = who.card.as_deref(), reason = why.as_str(), "Lane session ended.");
        }
        self.notify(lane);
        ended
    }

    /// A scan on the lane identified nobody: whoever was identified before is not the customer
    /// who just scanned, so their session ends, and the page shows why the scan was refused.
    pub fn reject(&self, lane: &str, code: &'static str, message: String) {
        let ended = self
            .with_lane(lane, |state| {
                state.rejection = Some(Rejection {
                    code,
                    message,
                    at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                });
                state.epoch += 1;
                state.session.take().map(|s| s.who)
            })
            .flatten();
        if let Some(who) = &ended {
            info!(lane = %lane, member = who.member_id.as_deref(), card = who.card.as_deref(), reason = SessionEnd::RejectedScan.as_str(), "Lane session ended.");
        }
        self.notify(lane);
    }
}

/// Turns scanned codes into lane identities.
#[derive(Clone)]
pub struct Identifier {
    pub ledger: Ledger,
    pub metrics: Arc<Metrics>,
    pub qr_max_age: Duration,
}

impl Identifier {
    pub async fn identify(&self, code: &ScannedCode) -> Result<LaneIdentity, IdentifyError> {
        match code {
            ScannedCode::Card(card) => {
                let number = card.as_str().to_owned();
                let lookup = number.clone();
                let member = self
                    .ledger
                    .readers()
                    .run(move |r| r.member_for_card(&lookup))
                    .await
                    .map_err(|e| IdentifyError::Ledger(e.to_string()))?;
                Ok(LaneIdentity::card(number, member))
            }
            ScannedCode::AppQr(token) => self.identify_qr(token).await,
        }
    }

    async fn identify_qr(&self, token: &AppQr) -> Result<LaneIdentity, IdentifyError> {
        let member_id = token.member_id.clone();
        let (member, skew_ms) = self
            .ledger
            .readers()
            .run(move |r| Ok((r.member(&member_id)?, r.skew_ms()?)))
            .await
            .map_err(|e| IdentifyError::Ledger(e.to_string()))?;
        let Some(member) = member else {
            self.metrics.qr_rejected("unknown_member");
            warn!(member = %token.member_id, "App QR for an unknown member refused.");
            return Err(IdentifyError::UnknownMember);
        };
        let key = member
            .qr_public_key
            .as_deref()
            .and_then(|k| qr::parse_public_key(k).ok());
        if key.is_none_or(|k| token.verify(&k).is_err()) {
            self.metrics.qr_rejected("forged");
            warn!(member = %token.member_id, reason = "forged", "App QR refused: the signature does not verify.");
            return Err(IdentifyError::Forged);
        }
        // The member's phone keeps network time; so does HQ. This box's clock may not.
        let now = crate::sync::corrected_now(skew_ms).timestamp();
        let mut spend_refused = None;
        if !token.is_fresh(now, self.qr_max_age) {
            self.metrics.qr_rejected("expired");
            warn!(member = %token.member_id, reason = "expired", issued_at = token.issued_at, "App QR too old to spend; it still earns.");
            spend_refused =
                Some("this app QR code has expired: ask the member to refresh it to spend points");
        } else {
            let first = self
                .ledger
                .see_nonce(token.nonce_hex(), token.member_id.clone(), now)
                .await
                .map_err(|e| IdentifyError::Ledger(e.to_string()))?;
            if !first {
                self.metrics.qr_rejected("replayed");
                warn!(member = %token.member_id, reason = "replayed", "App QR already used; it still earns but cannot spend.");
                spend_refused = Some("this app QR code was already used: ask the member to refresh it to spend points");
            }
        }
        Ok(LaneIdentity {
            identity: Identity::Member(member.member_id.clone()),
            member_id: Some(member.member_id),
            card: None,
            can_spend: spend_refused.is_none(),
            spend_refused,
        })
    }
}

/// Consumes scans from every lane's scanner and sets the lane's member.
pub async fn run_scans(
    mut scans: mpsc::Receiver<LaneRead>,
    lanes: Arc<Lanes>,
    identifier: Identifier,
    shutdown: CancellationToken,
) {
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = scans.recv() => match read { Some(r) => r, None => break },
        };
        let scan = match read {
            LaneRead::Scan(scan) => scan,
            LaneRead::Rejected(r) => {
                lanes.reject(&r.lane, r.reason, r.message);
                continue;
            }
        };
        match identifier.identify(&scan.code).await {
            Ok(who) => {
                info!(lane = %scan.lane, member = who.member_id.as_deref(), card = who.card.as_deref(), can_spend = who.can_spend, "Member identified at lane.");
                lanes.set(&scan.lane, who);
            }
            Err(e) => {
                identifier.metrics.scan(&scan.lane, e.code());
                warn!(lane = %scan.lane, error = %e, "Scan did not identify a member.");
                lanes.reject(&scan.lane, e.code(), format!("Scan refused: {e}."));
            }
        }
    }
}
