//! Points earned by a sale, a basket of lines or a total alone.
//!
//! Rounding rule: each line's base amount is `line_total_cents * per_euro / 100`, multiplied by
//! the tier multiplier, every applicable basket-wide multiplying campaign and every campaign
//! scoped to the line's SKU, category or brand, computed exactly in integers; the basket's
//! points are the sum of those exact amounts rounded *down* once, at the end. Each line is then
//! given its whole points plus, by largest remainder, the points the rounding of the sum left,
//! so the lines' points add up to the basket's. Fixed bonuses come last: a scoped bonus is per
//! unit of each matching line (the line's), a basket-wide bonus once per sale (the basket's,
//! attributed to no line). Lines in an excluded category earn nothing and do not count towards
//! a campaign's minimum basket. Rounding once means splitting a basket never earns more than
//! paying it at once. A sale given as a total alone is a basket of one line that no scoped
//! campaign matches.

use super::basket::BasketLine;
use super::rules::{Boost, MemberProfile, Multiplier, Rules};
use chrono::{DateTime, Utc};

/// The decision for one sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earning {
    pub points: i64,
    /// `rules.version` plus the tier and every campaign (with its version) that applied.
    pub rule_version: String,
    pub campaigns: Vec<String>,
    /// Each line's points, in the basket's order (one entry for a total-only sale); they add up
    /// to `points - basket_bonus`.
    pub lines: Vec<i64>,
    /// Basket-wide bonuses, attributed to no line.
    pub basket_bonus: i64,
}

/// Points for a sale of `total_cents` (never negative) by `profile` (None: an unknown card).
pub fn earn(
    rules: &Rules,
    profile: Option<&MemberProfile>,
    total_cents: i64,
    at: DateTime<Utc>,
) -> Earning {
    earn_basket(rules, profile, &[BasketLine::total_only(total_cents)], at)
}

/// An exact non-negative amount of points, `n / d`.
#[derive(Clone, Copy)]
struct Exact {
    n: i128,
    d: i128,
}

impl Exact {
    fn times(self, m: Multiplier) -> Exact {
        let (n, d) = (self.n * i128::from(m.0), self.d * 1000);
        // Keep the fraction small: every factor is at most 100_000 / 1000.
        let g = gcd(n, d).max(1);
        Exact { n: n / g, d: d / g }
    }
}

/// Points for `basket` by `profile` at `at`.
pub fn earn_basket(
    rules: &Rules,
    profile: Option<&MemberProfile>,
    basket: &[BasketLine],
    at: DateTime<Utc>,
) -> Earning {
    let tier = profile.and_then(|p| p.tier.as_deref());
    let tier_multiplier = tier
        .and_then(|t| rules.tier_multipliers.get(t).copied())
        .unwrap_or(Multiplier::ONE);
    let earns: Vec<bool> = basket
        .iter()
        .map(|l| !rules.excluded_categories.contains(&l.category))
        .collect();
    let eligible_cents: i64 = basket
        .iter()
        .zip(&earns)
        .filter(|(_, e)| **e)
        .map(|(l, _)| l.total_cents.max(0))
        .fold(0i64, i64::saturating_add);

    let mut exact: Vec<Exact> = basket
        .iter()
        .zip(&earns)
        .map(|(l, e)| Exact {
            n: if *e {
                i128::from(l.total_cents.max(0)) * i128::from(rules.per_euro)
            } else {
                0
            },
            d: 100,
        })
        .map(|x| x.times(tier_multiplier))
        .collect();
    let mut line_bonus = vec![0i64; basket.len()];
    let mut basket_bonus: i64 = 0;
    let mut campaigns = Vec::new();
    for campaign in &rules.campaigns {
        if !campaign.applies(profile, eligible_cents, at, rules.time_zone) {
            continue;
        }
        let mut matched = false;
        for (i, line) in basket.iter().enumerate() {
            let in_scope = campaign.scope.as_ref().is_none_or(|s| s.matches(line));
            if !in_scope || !earns[i] {
                continue;
            }
            matched = true;
            match (campaign.boost, &campaign.scope) {
                (Boost::Multiply(m), _) => exact[i] = exact[i].times(m),
                (Boost::Bonus(points), Some(_)) => {
                    line_bonus[i] =
                        line_bonus[i].saturating_add(points.saturating_mul(line.quantity))
                }
                (Boost::Bonus(_), None) => {}
            }
        }
        // A basket of excluded lines alone (tobacco, gift cards) earns no basket bonus either.
        if let (Boost::Bonus(points), None, true) =
            (campaign.boost, &campaign.scope, earns.contains(&true))
        {
            basket_bonus = basket_bonus.saturating_add(points);
            matched = true;
        }
        if matched {
            campaigns.push(format!("{}@{}", campaign.id, campaign.version));
        }
    }
    let mut lines = share_out(&exact);
    for (points, bonus) in lines.iter_mut().zip(&line_bonus) {
        *points = points.saturating_add(*bonus);
    }
    let points = lines
        .iter()
        .fold(basket_bonus, |sum, p| sum.saturating_add(*p));
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
        points,
        rule_version,
        campaigns,
        lines,
        basket_bonus,
    }
}

/// Whole points per line: the sum of the exact amounts rounded down once, handed out as each
/// line's whole part plus one point to each of the lines with the largest remainders.
fn share_out(exact: &[Exact]) -> Vec<i64> {
    let whole: Vec<i64> = exact
        .iter()
        .map(|x| i64::try_from(x.n / x.d).unwrap_or(i64::MAX))
        .collect();
    // Every denominator is 2^a 5^b (from 100 and 1000): their least common multiple is the
    // largest power of each.
    let Some(common) = exact
        .iter()
        .try_fold(1i128, |l, x| l.checked_mul(x.d / gcd(l, x.d).max(1)))
    else {
        // Beyond i128 (dozens of stacked multipliers): the lines' whole parts, never more.
        return whole;
    };
    let remainders: Option<Vec<i128>> = exact
        .iter()
        .map(|x| (x.n % x.d).checked_mul(common / x.d))
        .collect();
    let Some(remainders) = remainders else {
        return whole;
    };
    let Some(total) = remainders.iter().try_fold(0i128, |s, r| s.checked_add(*r)) else {
        return whole;
    };
    let extra = usize::try_from(total / common).unwrap_or(0);
    let mut order: Vec<usize> = (0..exact.len()).collect();
    // Largest remainder first; ties to the earlier line, so the answer never depends on sorting.
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b)));
    let mut lines = whole;
    for i in order.into_iter().take(extra) {
        lines[i] = lines[i].saturating_add(1);
    }
    lines
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
    use crate::{DailyHours, LineScope, PointsCampaign, StoreTimeZone};
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
            scope: None,
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
            scope: None,
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
            scope: None,
        }
    }

    fn line(sku: &str, category: &str, brand: Option<&str>, qty: i64, unit: i64) -> BasketLine {
        BasketLine {
            sku: sku.into(),
            category: category.into(),
            brand: brand.map(Into::into),
            quantity: qty,
            unit_cents: unit,
            total_cents: qty * unit,
        }
    }

    fn scoped(id: &str, boost: Boost, scope: LineScope, min_total_cents: i64) -> PointsCampaign {
        PointsCampaign {
            id: id.into(),
            version: 2,
            boost,
            starts: None,
            ends: None,
            weekdays: vec![],
            hours: None,
            tiers: vec![],
            segments: vec![],
            min_total_cents,
            scope: Some(scope),
        }
    }

    #[test]
    fn lines_earn_by_sku_category_and_brand_and_excluded_categories_earn_nothing() {
        let mut r = rules();
        r.excluded_categories = vec!["tobacco".into(), "gift_cards".into()];
        r.campaigns = vec![
            scoped(
                "coffee-x2",
                Boost::Multiply(Multiplier(2000)),
                LineScope::Category("coffee".into()),
                0,
            ),
            scoped(
                "acme-bonus",
                Boost::Bonus(5),
                LineScope::Brand("acme".into()),
                0,
            ),
            scoped(
                "croissant",
                Boost::Bonus(3),
                LineScope::Sku("CRO-1".into()),
                0,
            ),
        ];
        let t = at(2026, 11, 23, 10);
        let basket = [
            line("COF-1", "coffee", None, 2, 350),          // 7.00 x2 = 14
            line("CRO-1", "bakery", Some("acme"), 3, 150),  // 4.50 -> 4 (+5x3 +3x3)
            line("CIG-1", "tobacco", Some("acme"), 1, 900), // nothing, no acme bonus
            line("GC-25", "gift_cards", None, 1, 2500),     // nothing
        ];
        let e = earn_basket(&r, None, &basket, t);
        // 14 + 4.5 = 18.5 -> 18, shared 14 and 4; bonuses 15 + 9 on the croissants.
        assert_eq!(e.lines, vec![14, 4 + 15 + 9, 0, 0]);
        assert_eq!(e.points, 42);
        assert_eq!(e.basket_bonus, 0);
        assert_eq!(e.rule_version, "r1;coffee-x2@2;acme-bonus@2;croissant@2");
    }

    #[test]
    fn the_rounding_of_the_sum_goes_to_the_largest_remainders() {
        let r = rules();
        // 1.50 + 1.50 + 1.20 = 4.20 -> 4 points: whole parts 1, 1, 1 and one more to the first
        // of the two largest remainders.
        let basket = [
            line("A", "x", None, 1, 150),
            line("B", "x", None, 1, 150),
            line("C", "x", None, 1, 120),
        ];
        let e = earn_basket(&r, Some(&gold()), &basket, at(2026, 11, 23, 10));
        // Gold 1.5: 2.25 + 2.25 + 1.80 = 6.30 -> 6: whole 2, 2, 1; the 0.80 gets the extra one.
        assert_eq!(e.lines, vec![2, 2, 2]);
        assert_eq!(e.points, 6);
        assert_eq!(
            earn_basket(&r, None, &basket, at(2026, 11, 23, 10)).lines,
            vec![2, 1, 1]
        );
    }

    #[test]
    fn a_basket_bonus_needs_an_eligible_minimum_and_is_no_lines() {
        let mut r = rules();
        r.excluded_categories = vec!["tobacco".into()];
        r.campaigns.push(PointsCampaign {
            scope: None,
            ..scoped("big", Boost::Bonus(50), LineScope::Sku("-".into()), 5000)
        });
        let t = at(2026, 11, 23, 10);
        // 40 euros of groceries and 20 of tobacco: under the 50 euro minimum that counts.
        let small = [
            line("G", "grocery", None, 1, 4000),
            line("T", "tobacco", None, 1, 2000),
        ];
        assert_eq!(earn_basket(&r, None, &small, t).points, 40);
        let big = [line("G", "grocery", None, 1, 5000)];
        let e = earn_basket(&r, None, &big, t);
        assert_eq!(
            (e.points, e.basket_bonus, e.lines.clone()),
            (100, 50, vec![50])
        );
        // Tobacco alone earns no basket bonus, whatever its amount.
        let r2 = Rules {
            campaigns: vec![PointsCampaign {
                scope: None,
                ..scoped("any", Boost::Bonus(9), LineScope::Sku("-".into()), 0)
            }],
            ..r
        };
        assert_eq!(
            earn_basket(&r2, None, &[line("T", "tobacco", None, 3, 900)], t).points,
            0
        );
    }

    #[test]
    fn a_total_only_sale_earns_as_before() {
        let mut r = rules();
        r.campaigns.push(scoped(
            "coffee-x2",
            Boost::Multiply(Multiplier(2000)),
            LineScope::Category("coffee".into()),
            0,
        ));
        let e = earn(&r, Some(&gold()), 1999, at(2026, 11, 23, 10));
        assert_eq!((e.points, e.lines.clone()), (29, vec![29]));
        assert_eq!(
            e.rule_version, "r1;tier=gold",
            "a scoped campaign never matches a total"
        );
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
        fn lines_add_up_to_the_basket_and_never_beat_one_line(
            totals in proptest::collection::vec(0i64..1_000_000, 1..20),
        ) {
            let r = rules();
            let t = at(2026, 11, 23, 10);
            let basket: Vec<BasketLine> = totals.iter().map(|c| line("S", "c", None, 1, *c)).collect();
            let e = earn_basket(&r, Some(&gold()), &basket, t);
            prop_assert_eq!(e.lines.iter().sum::<i64>(), e.points);
            let whole = earn(&r, Some(&gold()), totals.iter().sum(), t).points;
            prop_assert_eq!(e.points, whole);
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
