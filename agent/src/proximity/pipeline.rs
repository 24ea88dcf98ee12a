//! The running proximity chain: sightings from any source -> rotating id resolved to a member
//! -> zone tracker -> presence facts recorded by the ledger, which issues the gifts.
//!
//! The resolver map is rebuilt off this task (on a blocking thread) at each interval boundary
//! and when the member table changes, then swapped in whole; the hot path only reads it. Ledger
//! writes go through their own task so a slow commit never delays tracking; that task keeps up
//! to 256 facts queued in the writer, which records those waiting in one commit (background
//! work: after the tills' commands).

use super::resolver::{MemberId, Resolution, ResolverMap};
use super::rotating_id::{interval_number, ProximityKey};
use super::settings::ProximityConfig;
use super::tracker::{Observation, Tracker, ZoneEvent};
use super::Sighting;
use crate::engine::gifts::PresenceFact;
use crate::ledger::{GiftsIssued, Ledger, LedgerError, PresenceRequest};
use crate::metrics::Metrics;
use crate::sync::corrected_now;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Presence facts waiting for the ledger, at most: a storm of walk-ins (a thousand phones, three
/// facts each) waits here while the tills go first, instead of being dropped; tracking itself
/// never waits for the ledger.
const FACTS_QUEUED: usize = 16_384;
/// How often exit timeouts are applied and the member table is checked for changes.
const TICK: Duration = Duration::from_secs(1);
const MEMBER_CHECK: Duration = Duration::from_secs(15);

/// What `/healthz` shows about tracking.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TrackingStatus {
    pub members_with_keys: usize,
    pub resolver_interval: u64,
    pub ambiguous_ids: usize,
    pub sightings: u64,
    pub resolved: u64,
    pub unknown_ids: u64,
    pub stale_ids: u64,
    pub ambiguous: u64,
    pub tracked_members: usize,
    pub open_visits: usize,
    pub facts_recorded: u64,
    /// Facts dropped because the ledger fell [`FACTS_QUEUED`] behind.
    pub facts_dropped: u64,
    pub gifts_issued: u64,
}

#[derive(Default)]
pub struct TrackingHealth(Mutex<TrackingStatus>);

impl TrackingHealth {
    pub fn snapshot(&self) -> TrackingStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut TrackingStatus)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

fn unix_now(skew_ms: i64) -> u64 {
    u64::try_from(corrected_now(skew_ms).timestamp()).unwrap_or(0)
}

async fn build_resolver(ledger: &Ledger, interval: u64) -> Option<ResolverMap> {
    let readers = ledger.readers().clone();
    let built = tokio::task::spawn_blocking(move || {
        let rows = readers.proximity_keys().map_err(|e| e.to_string())?;
        let mut members: Vec<(MemberId, ProximityKey)> = Vec::with_capacity(rows.len());
        let mut bad = 0usize;
        for (member, key) in rows {
            match key.parse::<ProximityKey>() {
                Ok(k) => members.push((Arc::from(member.as_str()), k)),
                Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            warn!(
                members = bad,
                "Members with a proximity key that is not 32 hex digits are not tracked."
            );
        }
        ResolverMap::build(&members, interval).map_err(|e| e.to_string())
    })
    .await;
    match built {
        Ok(Ok(map)) => Some(map),
        Ok(Err(e)) => {
            warn!(error = %e, "Cannot build the rotating-id map; keeping the previous one.");
            None
        }
        Err(e) => {
            warn!(error = %e, "The rotating-id rebuild failed; keeping the previous one.");
            None
        }
    }
}

async fn skew_ms(ledger: &Ledger) -> i64 {
    ledger.readers().run(|r| r.skew_ms()).await.unwrap_or(0)
}

/// Runs until `stop` or until every sighting source is gone.
pub async fn run_pipeline(
    config: ProximityConfig,
    mut sightings: mpsc::Receiver<Sighting>,
    ledger: Ledger,
    metrics: Arc<Metrics>,
    health: Arc<TrackingHealth>,
    stop: CancellationToken,
) {
    let mut tracker: Tracker<MemberId> = match config.tracker.build() {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "Proximity tracking is off: its configuration is invalid.");
            return;
        }
    };
    let (facts_tx, facts_rx) = mpsc::channel::<PresenceRequest>(FACTS_QUEUED);
    let recorder = tokio::spawn(record_facts(
        facts_rx,
        ledger.clone(),
        metrics.clone(),
        health.clone(),
    ));
    let epoch = Instant::now();
    let mut skew = skew_ms(&ledger).await;
    let mut interval = interval_number(unix_now(skew), config.interval_secs);
    let mut resolver = build_resolver(&ledger, interval).await;
    let mut members_version = ledger.readers().members_version().ok();
    publish_resolver(&health, resolver.as_ref());
    let mut tick = tokio::time::interval(TICK);
    let mut last_member_check = Instant::now();
    let mut events = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            s = sightings.recv() => {
                let Some(s) = s else { break };
                metrics.sighting(&s.sensor);
                observe(&s, &mut tracker, resolver.as_ref(), interval, epoch, &health, &mut events);
            }
            _ = tick.tick() => {
                tracker.tick(epoch.elapsed(), &mut events);
                let now_interval = interval_number(unix_now(skew), config.interval_secs);
                let mut rebuild = now_interval != interval;
                if last_member_check.elapsed() >= MEMBER_CHECK {
                    last_member_check = Instant::now();
                    skew = skew_ms(&ledger).await;
                    let version = ledger.readers().members_version().ok();
                    if version != members_version {
                        members_version = version;
                        rebuild = true;
                    }
                }
                if rebuild {
                    interval = now_interval;
                    if let Some(map) = build_resolver(&ledger, interval).await {
                        info!(interval, members = map.members(), ambiguous = map.conflicts(), "Rotating-id map rebuilt.");
                        resolver = Some(map);
                    }
                    publish_resolver(&health, resolver.as_ref());
                }
                health.update(|h| {
                    h.tracked_members = tracker.tracked_members();
                    h.open_visits = tracker.open_visits();
                });
            }
        }
        for event in events.drain(..) {
            if let Some(fact) = to_fact(&event) {
                let request = PresenceRequest {
                    member_id: event.member().to_string(),
                    fact,
                    at: corrected_now(skew),
                };
                if facts_tx.try_send(request).is_err() {
                    health.update(|h| h.facts_dropped += 1);
                    warn!("Presence facts are arriving faster than the ledger records them; one was dropped.");
                }
            }
        }
    }
    drop(facts_tx);
    if let Err(e) = recorder.await {
        warn!(error = %e, "The presence recorder stopped abnormally.");
    }
}

fn publish_resolver(health: &TrackingHealth, resolver: Option<&ResolverMap>) {
    health.update(|h| {
        h.members_with_keys = resolver.map(|r| r.members()).unwrap_or(0);
        h.resolver_interval = resolver.map(|r| r.interval()).unwrap_or(0);
        h.ambiguous_ids = resolver.map(|r| r.conflicts()).unwrap_or(0);
    });
}

fn observe(
    s: &Sighting,
    tracker: &mut Tracker<MemberId>,
    resolver: Option<&ResolverMap>,
    interval: u64,
    epoch: Instant,
    health: &TrackingHealth,
    events: &mut Vec<ZoneEvent<MemberId>>,
) {
    let Some(token) = s.token else { return };
    let resolution = resolver
        .map(|r| r.resolve(token, interval))
        .unwrap_or(Resolution::Unknown);
    let member = match resolution {
        Resolution::Member { member, .. } => Some(member.clone()),
        _ => None,
    };
    health.update(|h| {
        h.sightings += 1;
        match resolution {
            Resolution::Member { .. } => h.resolved += 1,
            Resolution::Ambiguous => h.ambiguous += 1,
            Resolution::Stale { .. } => h.stale_ids += 1,
            Resolution::Unknown => h.unknown_ids += 1,
        }
    });
    let (Some(member), Some(sensor)) = (member, tracker.sensor_id(&s.sensor)) else {
        return;
    };
    tracker.observe(
        Observation {
            member,
            sensor,
            rssi: s.rssi,
            tx_power: None,
            check_in: s.check_in,
            at: s.at.saturating_duration_since(epoch),
        },
        events,
    );
}

/// The presence fact the ledger records for a tracker event (`Exited` records none).
pub fn to_fact(event: &ZoneEvent<MemberId>) -> Option<PresenceFact> {
    match event {
        ZoneEvent::WalkedIn { .. } => Some(PresenceFact::WalkedIn),
        ZoneEvent::Dwelled { zone, dwell, .. } => Some(PresenceFact::Dwelled {
            zone: zone.to_string(),
            seconds: dwell.as_secs(),
        }),
        ZoneEvent::Entered { zone, .. } => Some(PresenceFact::Entered {
            zone: zone.to_string(),
        }),
        ZoneEvent::Exited { .. } => None,
    }
}

/// Facts queued in the writer and not yet answered, at most: a storm of walk-ins is recorded a
/// few hundred facts to a commit. One at a time, each fact cost a commit, and facts that did
/// not fit the channel meanwhile were dropped (gifts never issued).
const FACTS_IN_FLIGHT: usize = 256;

type FactDone = (String, PresenceFact, Result<GiftsIssued, LedgerError>);

async fn record_facts(
    mut facts: mpsc::Receiver<PresenceRequest>,
    ledger: Ledger,
    metrics: Arc<Metrics>,
    health: Arc<TrackingHealth>,
) {
    let mut in_flight: FuturesOrdered<BoxFuture<'static, FactDone>> = FuturesOrdered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                report_fact(done, &metrics, &health);
            }
            fact = facts.recv(), if open && in_flight.len() < FACTS_IN_FLIGHT => {
                let Some(fact) = fact else {
                    open = false;
                    continue;
                };
                let member = fact.member_id.clone();
                let what = fact.fact.clone();
                // Queued in arrival order; answered whenever their commit is durable.
                match ledger.queue_presence(fact).await {
                    Ok(pending) => in_flight.push_back(Box::pin(async move {
                        (member, what, pending.answer().await)
                    })),
                    Err(e) => report_fact((member, what, Err(e)), &metrics, &health),
                }
            }
        }
    }
}

fn report_fact((member, what, answer): FactDone, metrics: &Metrics, health: &TrackingHealth) {
    match answer {
        Ok(answer) => {
            for g in &answer.gifts {
                metrics.gift_issued(&g.campaign_id);
                info!(member = %member, campaign = %g.campaign_id, gift = %g.gift, expires_at = %g.expires_at, "Gift issued.");
            }
            health.update(|h| {
                h.facts_recorded += 1;
                h.gifts_issued += answer.gifts.len() as u64;
            });
        }
        Err(e) => {
            warn!(member = %member, fact = ?what, error = %e, "A presence fact could not be recorded.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gifts::{GiftCampaign, GiftLimit, GiftTrigger};
    use crate::engine::Rules;
    use crate::ledger::{MemberProfile, MemberRecord};

    const MEMBERS: usize = 600;

    fn welcome() -> GiftCampaign {
        GiftCampaign {
            id: "welcome".into(),
            version: 1,
            gift: "Free coffee".into(),
            trigger: GiftTrigger::EnteredStore,
            tiers: vec![],
            segments: vec![],
            limit: GiftLimit::OncePerVisit,
            daily_budget: None,
            starts: None,
            ends: None,
            valid_for: chrono::Duration::minutes(120),
            expires_at: None,
            points: 0,
            reward: None,
        }
    }

    /// A burst of walk-ins far larger than one commit: every fact recorded, each member's in
    /// the order the tracker produced them (the second walk-in of a visit gives nothing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_facts_is_recorded_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Arc::new(Rules {
            gifts: vec![welcome()],
            ..Rules::default()
        });
        let (ledger, _writer) = Ledger::open(&dir.path().join("ledger.db"), rules).unwrap();
        let members: Vec<MemberRecord> = (0..MEMBERS)
            .map(|m| format!("m{m}"))
            .chain(["late".to_owned()])
            .map(|member_id| MemberRecord {
                member_id,
                profile: MemberProfile::default(),
            })
            .collect();
        ledger.import_members(members).await.unwrap();

        let (tx, rx) = mpsc::channel(2 * MEMBERS);
        for m in 0..MEMBERS {
            for _ in 0..2 {
                tx.try_send(PresenceRequest {
                    member_id: format!("m{m}"),
                    fact: PresenceFact::WalkedIn,
                    at: chrono::Utc::now(),
                })
                .unwrap();
            }
        }
        drop(tx);
        let health = Arc::new(TrackingHealth::default());
        record_facts(rx, ledger.clone(), Arc::new(Metrics::new()), health.clone()).await;
        let status = health.snapshot();
        assert_eq!(status.facts_recorded, 2 * MEMBERS as u64);
        assert_eq!(
            status.gifts_issued, MEMBERS as u64,
            "one welcome gift a visit"
        );

        // Queued one after the other, answered in that order: the first walk-in of a visit
        // gets the gift.
        let first = ledger
            .queue_presence(PresenceRequest {
                member_id: "late".into(),
                fact: PresenceFact::WalkedIn,
                at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        let second = ledger
            .queue_presence(PresenceRequest {
                member_id: "late".into(),
                fact: PresenceFact::WalkedIn,
                at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        let (second, first) = (
            second.answer().await.unwrap(),
            first.answer().await.unwrap(),
        );
        assert_eq!((first.gifts.len(), second.gifts.len()), (1, 0));
    }
}
