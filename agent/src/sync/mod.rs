//! HQ sync: push the log's tail, pull changes, forever, whatever HQ does.
//!
//! One loop, so a push and a pull never overlap and HQ's watermark in a pulled page is never
//! older than an acknowledgement already recorded (the ledger copes if it is). Every answer is
//! recorded in the same transaction as what it moves (watermark, cursor), so a crash at any
//! instant means at most one batch pushed or one page pulled again, which HQ and the ledger
//! both treat as no-ops. A failure of any kind (refused connection, 500, garbage, a body cut
//! mid-way, a timeout) is logged once per attempt and retried after a full-jitter backoff.
//!
//! Idle, the loop pulls with `wait=`: HQ holds the pull until something changes, so an idle
//! store costs HQ one request per wait instead of one a second. A new event drops the waiting
//! pull (its connection with it) and pushes at once; a page already answered is applied whole
//! first, campaigns included.

pub mod campaigns;
pub mod client;

pub use client::{HqClient, HqError};

use crate::backoff::Backoff;
use crate::ledger::{Ledger, PushAck, UnsyncedEvent};
use loyalty_protocol::{Event, EventBatch, EventKind, OutcomeStatus, PROTOCOL_VERSION};
use rand::SeedableRng;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Events per push: big enough to drain a long outage fast (the reference HQ takes up to 5,000
/// by default); halved whenever an HQ answers 413, so a stricter HQ slows the drain, never
/// stops it.
pub const PUSH_BATCH: usize = 5000;
const PULL_PAGE: u32 = 500;
/// Consecutive pulls start at least this far apart: a busy chain's changes reach a store in
/// pages at most once a second, and an HQ that does not wait (`wait=` unknown to it, or
/// `hq.pull_wait_secs = 0`) is asked once a second. A new event wakes the loop at once (the
/// ledger's `appended` notify), so this does not bound how soon a gift or sale reaches HQ.
const MIN_PULL_INTERVAL: Duration = Duration::from_secs(1);
/// How long an idle pull asks HQ to wait for a change; the default of `hq.pull_wait_secs`.
/// Under the reference HQ's cap (30 s) and the 60 s idle timeouts common to proxies.
pub const PULL_WAIT: Duration = Duration::from_secs(25);
/// Without a successful round for this long, the store counts as offline and offline spend
/// allowances apply to redemptions. The default of `hq.offline_after_secs`.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(60);
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(30),
};

/// What `/healthz`, `/metrics` and redemptions need to know about sync.
#[derive(Debug)]
pub struct SyncHealth {
    inner: Mutex<SyncState>,
    offline_after: Duration,
}

impl Default for SyncHealth {
    fn default() -> Self {
        SyncHealth::new(OFFLINE_AFTER)
    }
}

#[derive(Debug, Default, Clone)]
struct SyncState {
    last_ok: Option<Instant>,
    last_error: Option<String>,
    failures: u32,
    /// HQ refuses this ledger's events (`ledger_conflict`, `seq_gap`, `seq_conflict`) until an
    /// operator re-bases it.
    blocked: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncHealthView {
    /// `online`, `offline`, or `blocked` when HQ refuses this ledger's events.
    pub state: &'static str,
    /// The refusal's code while blocked.
    pub blocked: Option<String>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub seconds_since_contact: Option<u64>,
}

impl SyncHealth {
    /// Offline after `offline_after` without a successful round (`hq.offline_after_secs`).
    pub fn new(offline_after: Duration) -> Self {
        SyncHealth {
            inner: Mutex::default(),
            offline_after,
        }
    }

    fn succeeded(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.last_ok = Some(Instant::now());
            s.last_error = None;
            s.failures = 0;
            s.blocked = None;
        }
    }

    fn failed(&self, error: &HqError) -> u32 {
        match self.inner.lock() {
            Ok(mut s) => {
                s.failures = s.failures.saturating_add(1);
                s.last_error = Some(error.to_string());
                s.blocked = match error {
                    HqError::Ledger { code, .. } => Some(code.clone()),
                    _ => None,
                };
                s.failures
            }
            Err(_) => 1,
        }
    }

    /// No successful round with HQ in the last `offline_after` ([`OFFLINE_AFTER`] by default).
    pub fn is_offline(&self) -> bool {
        self.inner
            .lock()
            .map(|s| s.last_ok.is_none_or(|t| t.elapsed() > self.offline_after))
            .unwrap_or(true)
    }

    /// The code of HQ's refusal while it refuses this ledger's events.
    pub fn blocked(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|s| s.blocked.clone())
    }

    pub fn view(&self) -> SyncHealthView {
        let s = self.inner.lock().map(|s| s.clone()).unwrap_or_default();
        SyncHealthView {
            state: if s.blocked.is_some() {
                "blocked"
            } else if self.is_offline() {
                "offline"
            } else {
                "online"
            },
            blocked: s.blocked.clone(),
            consecutive_failures: s.failures,
            last_error: s.last_error,
            seconds_since_contact: s.last_ok.map(|t| t.elapsed().as_secs()),
        }
    }
}

/// HQ-corrected wall-clock time: gift expiries, daily limits and QR freshness are decided by
/// HQ's clock, so a store clock that drifted cannot decide them.
pub fn corrected_now(skew_ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::milliseconds(skew_ms)
}

/// How the loop talks to HQ, from `[hq]`.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// Events per push (`hq.push_batch`).
    pub push_batch: usize,
    /// How long an idle pull waits at HQ (`hq.pull_wait_secs`); zero pulls once a second.
    pub pull_wait: Duration,
}

/// What ended an idle spell.
enum Wake {
    Stop,
    /// An event was appended, or the cursor needs a full round: push and pull now.
    Round,
}

/// Runs sync rounds until `stop`.
pub async fn run(
    client: HqClient,
    ledger: Ledger,
    base_rules: std::sync::Arc<crate::engine::Rules>,
    settings: SyncSettings,
    health: std::sync::Arc<SyncHealth>,
    stop: CancellationToken,
) {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut batch = settings.push_batch.max(1);
    // Half the offline threshold at most: a pull that waits its whole wait still lands well
    // inside it, so a store whose HQ is there never counts as offline while it waits.
    let pull_wait = Duration::from_secs(settings.pull_wait.min(health.offline_after / 2).as_secs());
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = round(&client, &ledger, &base_rules, batch) => r,
        };
        if let Err(HqError::Rejected { status: 413, .. }) = &outcome {
            if batch > 1 {
                batch = (batch / 2).max(1);
                warn!(
                    batch,
                    "HQ finds the push too large; pushing smaller batches."
                );
                continue;
            }
        }
        // Events recorded while a round is in flight leave one stored permit: they go in the
        // next round's batch, so a burst coalesces into one push instead of one per event.
        let failure = match outcome {
            Ok(true) => {
                health.succeeded();
                continue;
            }
            Ok(false) => {
                health.succeeded();
                match idle(&client, &ledger, &base_rules, pull_wait, &health, &stop).await {
                    Ok(Wake::Stop) => return,
                    Ok(Wake::Round) => continue,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        let failures = health.failed(&failure);
        let delay = BACKOFF.delay(failures, &mut rng);
        if let HqError::Ledger { code, .. } = &failure {
            tracing::error!(error = %failure, code = %code, failures, retry_in_ms = delay.as_millis() as u64, "HQ refuses this ledger's events; nothing is lost, the queue waits for `loyalty-agent rebase`.");
        } else {
            warn!(error = %failure, failures, retry_in_ms = delay.as_millis() as u64, "HQ sync failed; the queue is kept and will be retried.");
        }
        // A failing HQ keeps its backoff: new events must not hammer it.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Nothing to push: pulls, each held at HQ up to `wait` for a change, one after another at
/// least [`MIN_PULL_INTERVAL`] apart, until an event is appended (returns at once, dropping a
/// pull in flight) or a pull fails.
async fn idle(
    client: &HqClient,
    ledger: &Ledger,
    base_rules: &crate::engine::Rules,
    wait: Duration,
    health: &SyncHealth,
    stop: &CancellationToken,
) -> Result<Wake, HqError> {
    let appended = ledger.appended();
    // The round before this one has just pulled.
    let mut next_pull = tokio::time::Instant::now() + MIN_PULL_INTERVAL;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(Wake::Stop),
            _ = appended.notified() => return Ok(Wake::Round),
            _ = tokio::time::sleep_until(next_pull) => {}
        }
        next_pull = tokio::time::Instant::now() + MIN_PULL_INTERVAL;
        let cursor = read_cursor(ledger).await?;
        let pulled = async {
            if wait.is_zero() {
                client.changes(&cursor, PULL_PAGE).await
            } else {
                client.changes_waiting(&cursor, PULL_PAGE, wait).await
            }
        };
        let answer = tokio::select! {
            _ = stop.cancelled() => return Ok(Wake::Stop),
            _ = appended.notified() => return Ok(Wake::Round),
            answer = pulled => answer,
        };
        let answer = match answer {
            // The round's pull starts the feed again from the beginning.
            Err(e) if e.is_bad_cursor() => return Ok(Wake::Round),
            other => other?,
        };
        // An answered page is recorded and its campaigns applied whole: only `stop` cuts it.
        let applied = async {
            let mut campaigns = record_page(ledger, &cursor, answer).await?;
            if campaigns.more {
                campaigns.count += pull_all(client, ledger).await?;
            }
            if campaigns.count > 0 {
                apply_campaigns(ledger, base_rules).await?;
            }
            Ok::<_, HqError>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return Ok(Wake::Stop),
            r = applied => r?,
        }
        health.succeeded();
    }
}

/// One push of the log's tail and a pull of all pending changes. `Ok(true)` when more events
/// are waiting to be pushed.
async fn round(
    client: &HqClient,
    ledger: &Ledger,
    base_rules: &crate::engine::Rules,
    batch: usize,
) -> Result<bool, HqError> {
    let more = push_once(client, ledger, batch).await?;
    if pull_all(client, ledger).await? > 0 {
        apply_campaigns(ledger, base_rules).await?;
    }
    Ok(more)
}

/// HQ changed campaigns: the writer earns with agent.toml's rules plus HQ's from now on.
async fn apply_campaigns(
    ledger: &Ledger,
    base_rules: &crate::engine::Rules,
) -> Result<(), HqError> {
    let stored = ledger
        .readers()
        .run(|r| r.campaigns())
        .await
        .map_err(|e| HqError::Local(format!("reading campaigns: {e}")))?;
    let rules = crate::sync::campaigns::effective_rules(base_rules, &stored);
    info!(
        points_campaigns = rules.campaigns.len(),
        "Campaigns from HQ applied."
    );
    ledger
        .set_rules(std::sync::Arc::new(rules))
        .await
        .map_err(|e| HqError::Local(format!("applying campaigns: {e}")))
}

async fn push_once(client: &HqClient, ledger: &Ledger, batch: usize) -> Result<bool, HqError> {
    let outbox = ledger
        .readers()
        .run(move |r| r.unsynced(batch))
        .await
        .map_err(|e| HqError::Local(format!("reading the queue: {e}")))?;
    let events = outbox.events;
    if events.is_empty() {
        return Ok(false);
    }
    let request = EventBatch {
        protocol: PROTOCOL_VERSION,
        store_id: client.store().to_owned(),
        ledger_id: outbox.ledger_id,
        after_seq: outbox.after_seq,
        events: events
            .iter()
            .map(|e| to_protocol(client.store(), e))
            .collect(),
    };
    let answer = client.push(&request).await?;
    let response = answer.body;
    if response.outcomes.len() != events.len() {
        return Err(HqError::Garbage(format!(
            "{} outcomes for {} events",
            response.outcomes.len(),
            events.len()
        )));
    }
    let mut rejected = Vec::new();
    let mut flagged = 0usize;
    for (event, outcome) in events.iter().zip(&response.outcomes) {
        if outcome.event_id != event.event_id {
            return Err(HqError::Garbage(format!(
                "outcome for {} where {} was expected",
                outcome.event_id, event.event_id
            )));
        }
        if !outcome.flags.is_empty() {
            flagged += 1;
        }
        if let OutcomeStatus::Rejected { reason } = &outcome.status {
            warn!(seq = event.seq, event_id = %event.event_id, kind = %event.kind, reason = %reason, "HQ rejected an event for good; it goes to the dead-letter table.");
            rejected.push((event.seq, event.event_id.clone(), reason.clone()));
        }
    }
    let last = events.last().map(|e| e.seq).unwrap_or(0);
    // Exactly what HQ acknowledged of what it was sent, never more: HQ's watermark may run
    // ahead of this batch (an earlier answer was lost), and must not count for events recorded
    // after this batch was read.
    let watermark = response.watermark.min(last);
    let pushed = events.len();
    ledger
        .push_acked(PushAck {
            watermark,
            rejected,
            skew_ms: answer.skew_ms,
            at: now_text(),
        })
        .await
        .map_err(|e| HqError::Local(format!("recording HQ's answer: {e}")))?;
    info!(
        pushed,
        watermark,
        flagged,
        skew_ms = answer.skew_ms,
        "Pushed events to HQ."
    );
    Ok(pushed == batch)
}

async fn read_cursor(ledger: &Ledger) -> Result<String, HqError> {
    Ok(ledger
        .readers()
        .run(|r| r.sync_status())
        .await
        .map_err(|e| HqError::Local(format!("reading the cursor: {e}")))?
        .cursor)
}

/// What recording one page found.
struct Recorded {
    /// Campaign changes in it.
    count: usize,
    /// HQ has another page after it.
    more: bool,
}

/// Records a page pulled from `cursor` with the cursor it moves to, in one transaction.
async fn record_page(
    ledger: &Ledger,
    cursor: &str,
    answer: client::Timed<loyalty_protocol::ChangesPage>,
) -> Result<Recorded, HqError> {
    let page = answer.body;
    let more = page.has_more && page.next_cursor != cursor;
    let next = page.next_cursor.clone();
    let changes = page.changes.len();
    let count = page
        .changes
        .iter()
        .filter(|c| matches!(c, loyalty_protocol::Change::Campaign(_)))
        .count();
    ledger
        .changes_pulled(page, answer.skew_ms, now_text())
        .await
        .map_err(|e| HqError::Local(format!("recording HQ's changes: {e}")))?;
    if changes > 0 {
        info!(changes, cursor = %next, "Pulled changes from HQ.");
    }
    Ok(Recorded { count, more })
}

/// Pulls every pending page; returns how many campaign changes were applied.
async fn pull_all(client: &HqClient, ledger: &Ledger) -> Result<usize, HqError> {
    let mut cursor = read_cursor(ledger).await?;
    let mut campaigns = 0;
    loop {
        let answer = match client.changes(&cursor, PULL_PAGE).await {
            Err(e) if e.is_bad_cursor() && !cursor.is_empty() => {
                warn!(cursor = %cursor, "HQ does not know this store's cursor; pulling everything again.");
                cursor.clear();
                continue;
            }
            other => other?,
        };
        let next = answer.body.next_cursor.clone();
        let recorded = record_page(ledger, &cursor, answer).await?;
        campaigns += recorded.count;
        cursor = next;
        if !recorded.more {
            return Ok(campaigns);
        }
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn to_protocol(store: &str, e: &UnsyncedEvent) -> Event {
    Event {
        event_id: e.event_id.clone(),
        store_id: store.to_owned(),
        seq: e.seq,
        kind: EventKind::from(e.kind.clone()),
        account: e.account.clone(),
        lane: e.lane.clone(),
        points: e.points,
        // A payload that no longer parses is sent as text: HQ rejects it with a reason and the
        // event is dead-lettered, instead of blocking the queue here.
        payload: serde_json::from_str(&e.payload)
            .unwrap_or_else(|_| serde_json::Value::String(e.payload.clone())),
        rule_version: e.rule_version.clone(),
        recorded_at: e.recorded_at.clone(),
        idempotency_key: e.idempotency_key.clone(),
    }
}
