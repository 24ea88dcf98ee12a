//! Points earned by a sale.
//!
//! Rounding rule: the base amount is `total_cents * per_euro / 100`, multiplied by the tier
//! multiplier and every applicable multiplying campaign, computed exactly in integers and
//! rounded *down* once, at the end, to whole points; fixed bonuses are then added. Rounding once
//! means splitting a basket never earns more than paying it at once.

use super::rules::{Boost, MemberProfile, Multiplier, Rules};
use chrono::{DateTime, Utc};

/// The decision for one sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earning {
    pub points: i64,
    /// `rules.version` plus the tier and every campaign (with its version) that applied.
    pub rule_version: String,
    pub campaigns: Vec<String>,
}

/// Points for a sale of `total_cents` (never negative) by `profile` (None: an unknown card).
pub fn earn(
    rules: &Rules,
    profile: Option<&MemberProfile>,
    total_cents: i64,
    at: DateTime<Utc>,
) -> Earning {
    let total_cents = total_cents.max(0);
    let tier = profile.and_then(|p| p.tier.as_deref());
    let tier_multiplier = tier
        .and_then(|t| rules.tier_multipliers.get(t).copied())
        .unwrap_or(Multiplier::ONE);

    let mut numerator: i128 = i128::from(total_cents) * i128::from(rules.per_euro);
    let mut denominator: i128 = 100;
    let mut bonus: i64 = 0;
    let mut campaigns = Vec::new();
    let apply = |m: Multiplier, numerator: &mut i128, denominator: &mut i128| {
        *numerator *= i128::from(m.0);
        *denominator *= 1000;
        // Keep the fraction small: every factor is at most 100_000 / 1000.
        let g = gcd(*numerator, *denominator);
        if g > 1 {
            *numerator /= g;
            *denominator /= g;
        }
    };
    apply(tier_multiplier, &mut numerator, &mut denominator);
    for campaign in &rules.campaigns {
        if !campaign.applies(profile, total_cents, at, rules.local_offset) {
            continue;
        }
        match campaign.boost {
            Boost::Multiply(m) => apply(m, &mut numerator, &mut denominator),
            Boost::Bonus(points) => bonus = bonus.saturating_add(points),
        }
        campaigns.push(format!("{}@{}", campaign.id, campaign.version));
    }
    let base = i64::try_from(numerator / denominator).unwrap_or(i64::MAX);
    let mut rule_version = rules.version.clone();
    if let Some(t) = tier {
        rule_version.push_str(";tier=");
        rule_version.push_str(t);
    }
    for c in &campaigns {
        rule_version.push(';');
        rule_version.push_str(c);
    }
    Earning {
        points: base.saturating_add(bonus),
        rule_version,
        campaigns,
    }
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DailyHours, PointsCampaign};
    use chrono::{NaiveTime, TimeZone, Weekday};
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn gold() -> MemberProfile {
        MemberProfile {
            tier: Some("gold".into()),
            segments: vec!["students".into()],
        }
    }

    fn rules() -> Rules {
        let mut r = Rules {
            per_euro: 1,
            version: "r1".into(),
            ..Rules::default()
        };
        r.tier_multipliers.insert("gold".into(), Multiplier(1500));
        r
    }

    #[test]
    fn one_point_per_whole_euro_rounded_down() {
        let e = earn(&rules(), None, 1999, at(2026, 11, 23, 10));
        assert_eq!(e.points, 19);
        assert_eq!(e.rule_version, "r1");
    }

    #[test]
    fn gold_tier_multiplies_before_rounding() {
        // 19.99 * 1.5 = 29.985 -> 29, not 19 * 1.5 = 28.5 -> 28.
        let e = earn(&rules(), Some(&gold()), 1999, at(2026, 11, 23, 10));
        assert_eq!(e.points, 29);
        assert_eq!(e.rule_version, "r1;tier=gold");
    }

    #[test]
    fn campaign_applies_only_in_its_window_and_segment() {
        let mut r = rules();
        r.campaigns.push(PointsCampaign {
            id: "student-evening".into(),
            version: 3,
            boost: Boost::Multiply(Multiplier(2000)),
            starts: Some(at(2026, 11, 1, 0)),
            ends: Some(at(2026, 12, 1, 0)),
            weekdays: vec![Weekday::Mon],
            hours: Some(DailyHours {
                from: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default(),
                to: NaiveTime::from_hms_opt(20, 0, 0).unwrap_or_default(),
            }),
            tiers: vec![],
            segments: vec!["students".into()],
            min_total_cents: 0,
        });
        // Monday 2026-11-23 18:00: applies, 10 * 1.5 * 2 = 30.
        let e = earn(&r, Some(&gold()), 1000, at(2026, 11, 23, 18));
        assert_eq!(e.points, 30);
        assert_eq!(e.campaigns, vec!["student-evening@3".to_string()]);
        // Same hour on Tuesday: no.
        assert_eq!(
            earn(&r, Some(&gold()), 1000, at(2026, 11, 24, 18)).points,
            15
        );
        // Monday morning: no.
        assert_eq!(
            earn(&r, Some(&gold()), 1000, at(2026, 11, 23, 9)).points,
            15
        );
        // Not a student: no.
        let plain = MemberProfile::default();
        assert_eq!(
            earn(&r, Some(&plain), 1000, at(2026, 11, 23, 18)).points,
            10
        );
        // After the campaign ended: no.
        assert_eq!(
            earn(&r, Some(&gold()), 1000, at(2026, 12, 7, 18)).points,
            15
        );
    }

    #[test]
    fn bonus_campaign_adds_once_above_minimum_basket() {
        let mut r = rules();
        r.campaigns.push(PointsCampaign {
            id: "big-basket".into(),
            version: 1,
            boost: Boost::Bonus(50),
            starts: None,
            ends: None,
            weekdays: vec![],
            hours: None,
            tiers: vec![],
            segments: vec![],
            min_total_cents: 5000,
        });
        assert_eq!(earn(&r, None, 4999, at(2026, 11, 23, 10)).points, 49);
        assert_eq!(earn(&r, None, 5000, at(2026, 11, 23, 10)).points, 100);
    }

    proptest! {
        #[test]
        fn earning_is_monotonic_and_never_negative(a in 0i64..10_000_000, b in 0i64..10_000_000) {
            let r = rules();
            let t = at(2026, 11, 23, 10);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let pl = earn(&r, Some(&gold()), lo, t).points;
            let ph = earn(&r, Some(&gold()), hi, t).points;
            prop_assert!(pl >= 0);
            prop_assert!(pl <= ph);
        }

        #[test]
        fn splitting_a_basket_never_earns_more(a in 0i64..1_000_000, b in 0i64..1_000_000) {
            let r = rules();
            let t = at(2026, 11, 23, 10);
            let split = earn(&r, Some(&gold()), a, t).points + earn(&r, Some(&gold()), b, t).points;
            prop_assert!(split <= earn(&r, Some(&gold()), a + b, t).points);
        }
    }
}
