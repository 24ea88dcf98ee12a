//! Gift campaigns: who gets which gift when the proximity tracker reports a member's presence.
//!
//! Pure: the ledger loads the member's history (inside its write transaction, so two triggers
//! can never both pass a limit) and the time (HQ-corrected), and stores what [`decide`] says.
//!
//! A visit is a stretch of presence with no gap longer than [`VISIT_GAP`]; it is kept in the
//! ledger, so an agent restarted mid-visit sees the same visit and gives no second welcome gift.

use super::MemberProfile;
use crate::time_zone::StoreTimeZone;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Absence after which the next sighting starts a new visit.
pub const VISIT_GAP: Duration = Duration::hours(2);
/// A gift with less time than this left before it expires is not issued: the member could not
/// reach a till in time, and a gift that expires in their hand is worse than none.
pub const MIN_USEFUL_LIFE: Duration = Duration::minutes(5);

/// What the tracker saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum PresenceFact {
    /// Came in through the door (inside sensor after, or without, the outside one).
    WalkedIn,
    /// Stayed in a zone for `seconds` (reported once per visit, at the zone's minimum dwell).
    Dwelled { zone: String, seconds: u64 },
    /// Entered a zone: keeps the visit alive, triggers nothing by itself.
    Entered { zone: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftTrigger {
    EnteredStore,
    /// Dwelled at least `seconds` in `zone`.
    Dwelled {
        zone: String,
        seconds: u64,
    },
    /// Walked in after at least `days` without being seen (or buying) at this store.
    Returned {
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiftLimit {
    OncePerVisit,
    OncePerDay,
    OncePerMember,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GiftCampaign {
    pub id: String,
    pub version: i64,
    /// What the cashier hands over ("Free coffee").
    pub gift: String,
    pub trigger: GiftTrigger,
    /// Empty: every tier.
    pub tiers: Vec<String>,
    /// Empty: every segment; otherwise at least one of them.
    pub segments: Vec<String>,
    pub limit: GiftLimit,
    /// Gifts of this campaign this store may issue per store-local day.
    pub daily_budget: Option<u32>,
    /// The campaign issues gifts from `starts` until `ends`.
    pub starts: Option<DateTime<Utc>>,
    pub ends: Option<DateTime<Utc>>,
    /// A gift is valid this long after it is issued...
    pub valid_for: Duration,
    /// ...and never after this instant.
    pub expires_at: Option<DateTime<Utc>>,
    /// Points credited with the gift (0 for an item).
    pub points: i64,
    /// What the POS applies when the gift is handed over; `None`: `gift` is free text.
    pub reward: Option<crate::reward::Reward>,
}

/// The member's history with one campaign, and the store's, as the ledger knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GiftHistory {
    /// When this member last got a gift of this campaign at this store.
    pub last_issued: Option<DateTime<Utc>>,
    pub issued_to_member_today: u32,
    pub issued_to_member_ever: u32,
    pub issued_by_store_today: u32,
}

/// The member's presence as this fact finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    /// Start of the visit this fact belongs to (see [`visit_start`]).
    pub visit_started: Option<DateTime<Utc>>,
    /// Last time the member was seen or bought here before this visit began: what a "we
    /// missed you" campaign measures the absence from. None: never before.
    pub seen_before_visit: Option<DateTime<Utc>>,
}

/// The start of the visit a fact at `now` belongs to: the open visit `(started, last_seen)`
/// unless the member was away longer than [`VISIT_GAP`].
pub fn visit_start(
    open: Option<(DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match open {
        Some((start, seen)) if now - seen <= VISIT_GAP => start,
        _ => now,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoGift {
    #[error("the fact does not trigger this campaign")]
    NotTriggered,
    #[error("the member's tier or segments are not eligible")]
    NotEligible,
    #[error("the campaign is not running now")]
    OutsideWindow,
    #[error("already given this visit")]
    AlreadyThisVisit,
    #[error("already given today")]
    AlreadyToday,
    #[error("already given to this member")]
    AlreadyGiven,
    #[error("the store's daily budget for this campaign is spent")]
    BudgetExhausted,
    #[error("the gift would expire before it could be used")]
    WouldBeExpired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftGrant {
    pub expires_at: DateTime<Utc>,
}

/// The store-local day a gift counts against for daily limits and budgets: local midnight to
/// local midnight, so 23 or 25 hours long on the days the clocks change.
pub fn local_day(at: DateTime<Utc>, zone: StoreTimeZone) -> NaiveDate {
    zone.date(at)
}

/// Whether `campaign` gives `profile` a gift for `fact` at `now`.
pub fn decide(
    campaign: &GiftCampaign,
    fact: &PresenceFact,
    profile: &MemberProfile,
    history: &GiftHistory,
    presence: &Presence,
    now: DateTime<Utc>,
) -> Result<GiftGrant, NoGift> {
    let triggered = match (&campaign.trigger, fact) {
        (GiftTrigger::EnteredStore, PresenceFact::WalkedIn) => true,
        (
            GiftTrigger::Dwelled { zone, seconds },
            PresenceFact::Dwelled {
                zone: z,
                seconds: s,
            },
        ) => zone == z && s >= seconds,
        (GiftTrigger::Returned { days }, PresenceFact::WalkedIn) => presence
            .seen_before_visit
            .is_some_and(|seen| now - seen >= Duration::days(i64::from(*days))),
        _ => false,
    };
    if !triggered {
        return Err(NoGift::NotTriggered);
    }
    if !campaign.tiers.is_empty()
        && !profile
            .tier
            .as_ref()
            .is_some_and(|t| campaign.tiers.contains(t))
    {
        return Err(NoGift::NotEligible);
    }
    if !campaign.segments.is_empty()
        && !profile
            .segments
            .iter()
            .any(|s| campaign.segments.contains(s))
    {
        return Err(NoGift::NotEligible);
    }
    if campaign.starts.is_some_and(|s| now < s) || campaign.ends.is_some_and(|e| now >= e) {
        return Err(NoGift::OutsideWindow);
    }
    match campaign.limit {
        GiftLimit::OncePerVisit => {
            let visit = presence.visit_started.unwrap_or(now);
            if history.last_issued.is_some_and(|t| t >= visit) {
                return Err(NoGift::AlreadyThisVisit);
            }
        }
        GiftLimit::OncePerDay if history.issued_to_member_today > 0 => {
            return Err(NoGift::AlreadyToday)
        }
        GiftLimit::OncePerMember if history.issued_to_member_ever > 0 => {
            return Err(NoGift::AlreadyGiven)
        }
        _ => {}
    }
    if campaign
        .daily_budget
        .is_some_and(|b| history.issued_by_store_today >= b)
    {
        return Err(NoGift::BudgetExhausted);
    }
    let mut expires_at = now + campaign.valid_for;
    if let Some(cap) = campaign.expires_at {
        expires_at = expires_at.min(cap);
    }
    if expires_at - now < MIN_USEFUL_LIFE {
        return Err(NoGift::WouldBeExpired);
    }
    Ok(GiftGrant { expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

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
            valid_for: Duration::hours(2),
            expires_at: None,
            points: 0,
            reward: None,
        }
    }

    const NOW: &str = "2026-11-23T10:00:00Z";

    #[test]
    fn a_walk_in_gets_the_welcome_gift_valid_for_its_period() {
        let g = decide(
            &welcome(),
            &PresenceFact::WalkedIn,
            &MemberProfile::default(),
            &GiftHistory::default(),
            &Presence::default(),
            t(NOW),
        )
        .unwrap();
        assert_eq!(g.expires_at, t("2026-11-23T12:00:00Z"));
    }

    #[test]
    fn once_per_visit_survives_a_restart_because_the_visit_is_in_the_ledger() {
        let open = Some((t("2026-11-23T09:50:00Z"), t("2026-11-23T09:59:00Z")));
        let presence = Presence {
            visit_started: Some(visit_start(open, t(NOW))),
            seen_before_visit: None,
        };
        let history = GiftHistory {
            last_issued: Some(t("2026-11-23T09:50:05Z")),
            issued_to_member_today: 1,
            issued_to_member_ever: 1,
            issued_by_store_today: 1,
        };
        let no = decide(
            &welcome(),
            &PresenceFact::WalkedIn,
            &MemberProfile::default(),
            &history,
            &presence,
            t(NOW),
        );
        assert_eq!(no, Err(NoGift::AlreadyThisVisit));
        // Three hours after the last sighting it is a new visit.
        let later_now = t("2026-11-23T13:00:00Z");
        let later = Presence {
            visit_started: Some(visit_start(
                Some((t("2026-11-23T09:50:00Z"), t("2026-11-23T10:00:00Z"))),
                later_now,
            )),
            seen_before_visit: Some(t("2026-11-23T10:00:00Z")),
        };
        assert!(decide(
            &welcome(),
            &PresenceFact::WalkedIn,
            &MemberProfile::default(),
            &history,
            &later,
            later_now,
        )
        .is_ok());
    }

    #[test]
    fn limits_budget_and_eligibility_refuse_with_their_reason() {
        let mut c = welcome();
        c.limit = GiftLimit::OncePerDay;
        let today = GiftHistory {
            issued_to_member_today: 1,
            ..GiftHistory::default()
        };
        let p = MemberProfile::default();
        let f = PresenceFact::WalkedIn;
        let none = Presence::default();
        assert_eq!(
            decide(&c, &f, &p, &today, &none, t(NOW)),
            Err(NoGift::AlreadyToday)
        );
        c.limit = GiftLimit::OncePerMember;
        let ever = GiftHistory {
            issued_to_member_ever: 1,
            ..GiftHistory::default()
        };
        assert_eq!(
            decide(&c, &f, &p, &ever, &none, t(NOW)),
            Err(NoGift::AlreadyGiven)
        );
        c.daily_budget = Some(3);
        let spent = GiftHistory {
            issued_by_store_today: 3,
            ..GiftHistory::default()
        };
        assert_eq!(
            decide(&c, &f, &p, &spent, &none, t(NOW)),
            Err(NoGift::BudgetExhausted)
        );
        c.daily_budget = None;
        c.tiers = vec!["gold".into()];
        assert_eq!(
            decide(&c, &f, &p, &GiftHistory::default(), &none, t(NOW)),
            Err(NoGift::NotEligible)
        );
        let gold = MemberProfile {
            tier: Some("gold".into()),
            segments: vec![],
        };
        assert!(decide(&c, &f, &gold, &GiftHistory::default(), &none, t(NOW)).is_ok());
    }

    #[test]
    fn no_gift_is_issued_already_expired_or_about_to_expire() {
        let mut c = welcome();
        c.expires_at = Some(t("2026-11-23T10:03:00Z"));
        assert_eq!(
            decide(
                &c,
                &PresenceFact::WalkedIn,
                &MemberProfile::default(),
                &GiftHistory::default(),
                &Presence::default(),
                t(NOW)
            ),
            Err(NoGift::WouldBeExpired)
        );
        c.expires_at = Some(t("2026-11-23T11:00:00Z"));
        let g = decide(
            &c,
            &PresenceFact::WalkedIn,
            &MemberProfile::default(),
            &GiftHistory::default(),
            &Presence::default(),
            t(NOW),
        )
        .unwrap();
        assert_eq!(
            g.expires_at,
            t("2026-11-23T11:00:00Z"),
            "capped by the absolute expiry"
        );
        c.ends = Some(t("2026-11-23T09:59:59Z"));
        assert_eq!(
            decide(
                &c,
                &PresenceFact::WalkedIn,
                &MemberProfile::default(),
                &GiftHistory::default(),
                &Presence::default(),
                t(NOW)
            ),
            Err(NoGift::OutsideWindow)
        );
    }

    #[test]
    fn a_local_day_runs_midnight_to_midnight_23_hours_in_spring_and_25_in_autumn() {
        let amsterdam = StoreTimeZone::named("Europe/Amsterdam").unwrap();
        let day = |at: &str| local_day(t(at), amsterdam).to_string();
        // Sunday 2027-03-28 (clocks forward): from 00:00 CET to 00:00 CEST, 23 hours.
        assert_eq!(day("2027-03-27T22:59:59Z"), "2027-03-27");
        assert_eq!(day("2027-03-27T23:00:00Z"), "2027-03-28");
        assert_eq!(day("2027-03-28T21:59:59Z"), "2027-03-28");
        assert_eq!(day("2027-03-28T22:00:00Z"), "2027-03-29");
        // Sunday 2027-10-31 (clocks back): from 00:00 CEST to 00:00 CET, 25 hours.
        assert_eq!(day("2027-10-30T21:59:59Z"), "2027-10-30");
        assert_eq!(day("2027-10-30T22:00:00Z"), "2027-10-31");
        assert_eq!(day("2027-10-31T22:59:59Z"), "2027-10-31");
        assert_eq!(day("2027-10-31T23:00:00Z"), "2027-11-01");
    }

    #[test]
    fn dwell_and_return_triggers_need_their_zone_time_and_absence() {
        let mut c = welcome();
        c.trigger = GiftTrigger::Dwelled {
            zone: "coffee".into(),
            seconds: 60,
        };
        let p = MemberProfile::default();
        let h = GiftHistory::default();
        let none = Presence::default();
        let dwell = |zone: &str, seconds| PresenceFact::Dwelled {
            zone: zone.into(),
            seconds,
        };
        assert!(decide(&c, &dwell("coffee", 60), &p, &h, &none, t(NOW)).is_ok());
        assert_eq!(
            decide(&c, &dwell("coffee", 30), &p, &h, &none, t(NOW)),
            Err(NoGift::NotTriggered)
        );
        assert_eq!(
            decide(&c, &dwell("bakery", 90), &p, &h, &none, t(NOW)),
            Err(NoGift::NotTriggered)
        );
        c.trigger = GiftTrigger::Returned { days: 30 };
        let away = Presence {
            visit_started: Some(t(NOW)),
            seen_before_visit: Some(t("2026-10-01T10:00:00Z")),
        };
        let recent = Presence {
            visit_started: Some(t(NOW)),
            seen_before_visit: Some(t("2026-11-20T10:00:00Z")),
        };
        assert!(decide(&c, &PresenceFact::WalkedIn, &p, &h, &away, t(NOW)).is_ok());
        assert_eq!(
            decide(&c, &PresenceFact::WalkedIn, &p, &h, &recent, t(NOW)),
            Err(NoGift::NotTriggered)
        );
        assert_eq!(
            decide(&c, &PresenceFact::WalkedIn, &p, &h, &none, t(NOW)),
            Err(NoGift::NotTriggered),
            "a member never seen before is new, not returning"
        );
    }
}
