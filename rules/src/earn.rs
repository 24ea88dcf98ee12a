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
        if !campaign.applies(profile, total_cents, at, rules.time_zone) {
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
    use crate::{DailyHours, PointsCampaign, StoreTimeZone};
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

    /// Doubles the points of sales whose store-local time is in `hours` on `weekdays`.
    fn doubling(hours: (u32, u32), weekdays: Vec<Weekday>) -> PointsCampaign {
        PointsCampaign {
            id: "double".into(),
            version: 1,
            boost: Boost::Multiply(Multiplier(2000)),
            starts: None,
            ends: None,
            weekdays,
            hours: Some(DailyHours {
                from: NaiveTime::from_hms_opt(hours.0, 0, 0).unwrap(),
                to: NaiveTime::from_hms_opt(hours.1, 0, 0).unwrap(),
            }),
            tiers: vec![],
            segments: vec![],
            min_total_cents: 0,
        }
    }

    fn in_amsterdam(campaign: PointsCampaign) -> Rules {
        let mut r = rules();
        r.time_zone = StoreTimeZone::named("Europe/Amsterdam").unwrap();
        r.campaigns.push(campaign);
        r
    }

    /// Points for a 10.00 EUR sale at `utc` by a member with no tier: 20 when the campaign
    /// doubles it, 10 when not.
    fn points_at(r: &Rules, utc: &str) -> i64 {
        let at = DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .with_timezone(&Utc);
        earn(r, Some(&MemberProfile::default()), 1000, at).points
    }

    #[test]
    fn monday_evening_campaign_runs_at_local_17_30_in_winter_and_in_summer() {
        let r = in_amsterdam(doubling((17, 20), vec![Weekday::Mon]));
        // Winter, CET (UTC+1): Monday 2027-01-11.
        assert_eq!(points_at(&r, "2027-01-11T16:30:00Z"), 20, "17:30 CET");
        assert_eq!(points_at(&r, "2027-01-11T15:30:00Z"), 10, "16:30 CET");
        assert_eq!(
            points_at(&r, "2027-01-11T19:00:00Z"),
            10,
            "20:00 CET, end excluded"
        );
        // Summer, CEST (UTC+2): Monday 2027-06-14.
        assert_eq!(points_at(&r, "2027-06-14T15:30:00Z"), 20, "17:30 CEST");
        assert_eq!(points_at(&r, "2027-06-14T14:30:00Z"), 10, "16:30 CEST");
        assert_eq!(
            points_at(&r, "2027-06-14T18:00:00Z"),
            10,
            "20:00 CEST, end excluded"
        );
        // The old fixed offset judged the summer sale at 16:30: an hour off.
        let mut fixed = r.clone();
        fixed.time_zone = StoreTimeZone::Fixed(chrono::FixedOffset::east_opt(3600).unwrap());
        assert_eq!(points_at(&fixed, "2027-06-14T15:30:00Z"), 10);
    }

    #[test]
    fn the_weekday_is_the_local_one_near_midnight() {
        let r = in_amsterdam(doubling((0, 1), vec![Weekday::Mon]));
        // Sunday 22:30 UTC in summer is Monday 00:30 in Amsterdam.
        assert_eq!(points_at(&r, "2027-06-13T22:30:00Z"), 20);
        // In winter the same local time is 23:30 UTC; 22:30 UTC is still Sunday there.
        assert_eq!(points_at(&r, "2027-01-10T23:30:00Z"), 20);
        assert_eq!(points_at(&r, "2027-01-10T22:30:00Z"), 10);
    }

    #[test]
    fn the_hours_around_spring_forward_are_judged_on_the_wall_clock() {
        // 2027-03-28 01:00 UTC: 02:00 CET jumps to 03:00 CEST.
        let before = in_amsterdam(doubling((1, 2), vec![Weekday::Sun]));
        let after = in_amsterdam(doubling((3, 4), vec![Weekday::Sun]));
        for (utc, local_before, local_after) in [
            ("2027-03-28T00:00:00Z", 20, 10), // 01:00 CET
            ("2027-03-28T00:59:59Z", 20, 10), // 01:59:59 CET
            ("2027-03-28T01:00:00Z", 10, 20), // 03:00 CEST
            ("2027-03-28T01:59:59Z", 10, 20), // 03:59:59 CEST
            ("2027-03-28T02:00:00Z", 10, 10), // 04:00 CEST
        ] {
            assert_eq!(
                points_at(&before, utc),
                local_before,
                "01:00-02:00 at {utc}"
            );
            assert_eq!(points_at(&after, utc), local_after, "03:00-04:00 at {utc}");
        }
        // 02:00-03:00 never shows on the clock that night, so that window does not run.
        let skipped = in_amsterdam(doubling((2, 3), vec![Weekday::Sun]));
        let night = Utc.with_ymd_and_hms(2027, 3, 27, 23, 0, 0).unwrap();
        let minutes_run = (0..6 * 60)
            .filter(|m| {
                let at = night + chrono::Duration::minutes(*m);
                earn(&skipped, Some(&MemberProfile::default()), 1000, at).points == 20
            })
            .count();
        assert_eq!(minutes_run, 0);
    }

    #[test]
    fn the_hours_around_fall_back_are_judged_on_the_wall_clock() {
        // 2027-10-31 01:00 UTC: 03:00 CEST falls back to 02:00 CET, so 02:xx happens twice.
        let twice = in_amsterdam(doubling((2, 3), vec![Weekday::Sun]));
        let after = in_amsterdam(doubling((3, 4), vec![Weekday::Sun]));
        for (utc, in_twice, in_after) in [
            ("2027-10-30T23:59:59Z", 10, 10), // 01:59:59 CEST
            ("2027-10-31T00:00:00Z", 20, 10), // 02:00 CEST
            ("2027-10-31T00:59:59Z", 20, 10), // 02:59:59 CEST
            ("2027-10-31T01:00:00Z", 20, 10), // 02:00 CET, again
            ("2027-10-31T01:59:59Z", 20, 10), // 02:59:59 CET
            ("2027-10-31T02:00:00Z", 10, 20), // 03:00 CET
        ] {
            assert_eq!(points_at(&twice, utc), in_twice, "02:00-03:00 at {utc}");
            assert_eq!(points_at(&after, utc), in_after, "03:00-04:00 at {utc}");
        }
        // The repeated hour counts both times: the window runs two real hours that night.
        let night = Utc.with_ymd_and_hms(2027, 10, 30, 22, 0, 0).unwrap();
        let minutes_run = (0..6 * 60)
            .filter(|m| {
                let at = night + chrono::Duration::minutes(*m);
                earn(&twice, Some(&MemberProfile::default()), 1000, at).points == 20
            })
            .count();
        assert_eq!(minutes_run, 120);
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
