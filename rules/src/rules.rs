//! The points rules a store runs with, already validated (see `config` for where they come from).

use crate::time_zone::StoreTimeZone;
use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use std::collections::BTreeMap;

/// A multiplier in thousandths, so that rule arithmetic stays in integers: 1.25 is 1250.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Multiplier(pub u32);

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(1000);

    /// Converts a decimal factor; `None` when it is negative, not finite or above 100.
    pub fn from_factor(factor: f64) -> Option<Multiplier> {
        if !factor.is_finite() || !(0.0..=100.0).contains(&factor) {
            return None;
        }
        Some(Multiplier((factor * 1000.0).round() as u32))
    }
}

/// What a member is, as far as rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberProfile {
    pub tier: Option<String>,
    pub segments: Vec<String>,
}

/// What a campaign adds to a sale it applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Boost {
    /// Multiplies the earned points (with the tier multiplier and other campaigns).
    Multiply(Multiplier),
    /// Adds a fixed number of points once per qualifying sale.
    Bonus(i64),
}

/// Daily hours on the store's wall clock; `from > to` wraps past midnight. Judged on local
/// wall-clock time, so at the daylight-saving transitions a window may be an hour shorter or
/// longer that night (see [`crate::time_zone`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl DailyHours {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.from <= self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// A points campaign: a bonus for sales in a time window, to a tier or segment.
#[derive(Debug, Clone, PartialEq)]
pub struct PointsCampaign {
    pub id: String,
    pub version: u32,
    pub boost: Boost,
    pub starts: Option<DateTime<Utc>>,
    pub ends: Option<DateTime<Utc>>,
    /// Empty: every day.
    pub weekdays: Vec<Weekday>,
    pub hours: Option<DailyHours>,
    /// Empty: every tier (and non-members' cards too).
    pub tiers: Vec<String>,
    /// Empty: every segment. Otherwise the member needs at least one of them.
    pub segments: Vec<String>,
    pub min_total_cents: i64,
    /// `None`: the whole basket (a multiplier on every line, a bonus once per sale). Otherwise
    /// only matching lines: a multiplier on them, a bonus per unit of each.
    pub scope: Option<crate::basket::LineScope>,
}

impl PointsCampaign {
    /// Whether this campaign applies to a sale of `total_cents` by `profile` at `at`, with
    /// weekdays and hours judged in the store's time zone `zone`.
    pub fn applies(
        &self,
        profile: Option<&MemberProfile>,
        total_cents: i64,
        at: DateTime<Utc>,
        zone: StoreTimeZone,
    ) -> bool {
        if total_cents < self.min_total_cents {
            return false;
        }
        if self.starts.is_some_and(|s| at < s) || self.ends.is_some_and(|e| at >= e) {
            return false;
        }
        let local_time = zone.local(at);
        if !self.weekdays.is_empty() && !self.weekdays.contains(&local_time.weekday()) {
            return false;
        }
        if let Some(hours) = &self.hours {
            if !hours.contains(local_time.time()) {
                return false;
            }
        }
        if !self.tiers.is_empty() {
            let tier = profile.and_then(|p| p.tier.as_deref());
            if !tier.is_some_and(|t| self.tiers.iter().any(|x| x == t)) {
                return false;
            }
        }
        if !self.segments.is_empty() {
            let Some(profile) = profile else { return false };
            if !profile.segments.iter().any(|s| self.segments.contains(s)) {
                return false;
            }
        }
        true
    }
}

/// The validated rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Points per whole euro before multipliers.
    pub per_euro: u32,
    /// Stamped on every credit so HQ knows which rules computed it.
    pub version: String,
    pub tier_multipliers: BTreeMap<String, Multiplier>,
    pub campaigns: Vec<PointsCampaign>,
    /// The points catalogue: what members can spend points on (HQ's `"kind": "reward"`).
    pub catalogue: Vec<crate::reward::CatalogueReward>,
    /// Basket lines in these categories earn nothing (tobacco, gift cards, deposits) and do not
    /// count towards a campaign's minimum basket.
    pub excluded_categories: Vec<String>,
    /// The store's time zone: campaign weekdays and hours, and the local day of per-day gift
    /// limits and budgets.
    pub time_zone: StoreTimeZone,
    /// Gift campaigns from agent.toml; HQ's come through the ledger's campaigns table.
    pub gifts: Vec<super::gifts::GiftCampaign>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            per_euro: 1,
            version: "default".into(),
            tier_multipliers: BTreeMap::new(),
            campaigns: Vec::new(),
            excluded_categories: Vec::new(),
            catalogue: Vec::new(),
            time_zone: StoreTimeZone::UTC,
            gifts: Vec::new(),
        }
    }
}
