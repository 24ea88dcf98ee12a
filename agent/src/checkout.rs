//! Lane sessions: who is at each checkout lane, and how a scan or a POS-read code identifies
//! them.
//!
//! A known card or a signed app QR makes that member the lane's member until a sale completes
//! or the session times out. Earning and spending differ (DESIGN.md): a card, an expired QR or a
//! replayed QR may earn; only a fresh, first-seen QR lets the member spend, and one scan of it
//! authorises one spend of points ([`Lanes::take_spend`]). A forged QR never identifies anyone.

use crate::ledger::{Identity, Ledger};
use crate::metrics::Metrics;
use crate::scan::{qr, AppQr, LaneScan, ScannedCode};
use serde::Serialize;
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
    sessions: Mutex<HashMap<String, Session>>,
    timeout: Duration,
    /// The id of a lane whose member was set or cleared (the lane page follows it).
    changes: broadcast::Sender<String>,
    scans: AtomicU64,
}

impl Lanes {
    pub fn new(ids: Vec<String>, timeout: Duration) -> Self {
        Lanes {
            ids,
            sessions: Mutex::new(HashMap::new()),
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

    pub fn set(&self, lane: &str, who: LaneIdentity) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(
                lane.to_owned(),
                Session {
                    who,
                    since: Instant::now(),
                    scan: self.scans.fetch_add(1, Ordering::Relaxed),
                },
            );
        }
        // No receiver (no lane page open) is not an error.
        let _ = self.changes.send(lane.to_owned());
    }

    /// The lane's member if identified within the session timeout.
    pub fn current(&self, lane: &str) -> Option<LaneIdentity> {
        let mut sessions = self.sessions.lock().ok()?;
        match sessions.get(lane) {
            Some(s) if s.since.elapsed() <= self.timeout => Some(s.who.clone()),
            Some(_) => {
                sessions.remove(lane);
                None
            }
            None => None,
        }
    }

    /// Takes the lane's spend authorisation: one fresh QR scan pays for one redemption of
    /// points, so that a second redemption (a second cashier action, or a POS bug) needs the
    /// member to show a fresh QR. Taken under the lock: two redemptions at once cannot both
    /// have it.
    pub fn take_spend(&self, lane: &str) -> Spend {
        let Ok(mut sessions) = self.sessions.lock() else {
            return Spend::Refused(None);
        };
        let spend = match sessions.get_mut(lane) {
            Some(s) if s.since.elapsed() > self.timeout => {
                sessions.remove(lane);
                return Spend::Refused(None);
            }
            None => return Spend::Refused(None),
            Some(s) if !s.who.can_spend => return Spend::Refused(Some(s.who.clone())),
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
        };
        drop(sessions);
        let _ = self.changes.send(lane.to_owned());
        spend
    }

    /// Gives back an authorisation whose redemption the ledger refused (too few points, the
    /// offline allowance, a ledger that cannot write): nothing was spent. Only to the same
    /// scan; a new scan or a finished sale since then keeps what it has.
    pub fn give_back(&self, ticket: SpendTicket) {
        let Ok(mut sessions) = self.sessions.lock() else {
            return;
        };
        let Some(s) = sessions.get_mut(&ticket.lane) else {
            return;
        };
        if s.scan != ticket.scan || s.who.spend_refused != Some(SCAN_ALREADY_SPENT) {
            return;
        }
        s.who.can_spend = true;
        s.who.spend_refused = None;
        drop(sessions);
        let _ = self.changes.send(ticket.lane);
    }

    /// Ends the lane's session (a sale completed: the next customer starts fresh).
    pub fn clear(&self, lane: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(lane);
        }
        let _ = self.changes.send(lane.to_owned());
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
    mut scans: mpsc::Receiver<LaneScan>,
    lanes: Arc<Lanes>,
    identifier: Identifier,
    shutdown: CancellationToken,
) {
    loop {
        let scan = tokio::select! {
            _ = shutdown.cancelled() => break,
            scan = scans.recv() => match scan { Some(s) => s, None => break },
        };
        match identifier.identify(&scan.code).await {
            Ok(who) => {
                info!(lane = %scan.lane, member = who.member_id.as_deref(), card = who.card.as_deref(), can_spend = who.can_spend, "Member identified at lane.");
                lanes.set(&scan.lane, who);
            }
            Err(e) => {
                identifier.metrics.scan(&scan.lane, e.code());
                warn!(lane = %scan.lane, error = %e, "Scan did not identify a member.");
            }
        }
    }
}
