//! Rewards a POS can apply: what a gift or a catalogue item gives, as discount lines on the
//! basket rather than free text.
//!
//! A reward is one of (JSON, `"type"` first):
//! - `{"type":"percent_off","percent":10,"category":"coffee","min_basket_cents":500,"cap_cents":300}`
//!   percent off the matching lines (`sku`, `category`, or neither: the whole basket);
//! - `{"type":"amount_off","amount_cents":200,"sku":"CRO-1","min_basket_cents":1000}`: that
//!   much off the matching lines, never more than they cost;
//! - `{"type":"free_item","sku":"COF-1"}`: one unit of that SKU free;
//! - `{"type":"points","points":50}`: points credited (a gift's; a catalogue item never gives
//!   points for points).
//!
//! [`apply`] turns a reward and a basket into the discount lines the POS applies: one per basket
//! line it touches, in cents, rounded down, the cents the rounding leaves going to the lines
//! with the largest remainders, so the lines add up to the discount exactly.

use crate::basket::BasketLine;
use serde::{Deserialize, Serialize};

/// What a reward gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    PercentOff {
        percent: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sku: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        #[serde(default)]
        min_basket_cents: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap_cents: Option<i64>,
    },
    AmountOff {
        amount_cents: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sku: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        #[serde(default)]
        min_basket_cents: i64,
    },
    FreeItem {
        sku: String,
    },
    Points {
        points: i64,
    },
}

/// A discount line the POS applies to the basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discount {
    /// The basket line it reduces (1-based, as sent).
    pub line: usize,
    pub sku: String,
    /// Taken off that line's total.
    pub amount_cents: i64,
    /// What the receipt says.
    pub text: String,
}

/// Why a reward does not apply to a basket; nothing is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotApplicable {
    #[error("the basket has no line this reward applies to ({0})")]
    NothingMatches(String),
    #[error("the reward needs a basket of at least {min} cents; this one is {total}")]
    UnderMinimum { min: i64, total: i64 },
    #[error("a points reward gives points, not a discount")]
    NotADiscount,
}

/// An item of the points catalogue: spend `cost_points` for `reward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueReward {
    pub id: String,
    pub version: i64,
    pub cost_points: i64,
    /// What people read ("A free coffee").
    pub text: String,
    pub reward: Reward,
}

fn scope_text(sku: &Option<String>, category: &Option<String>) -> String {
    match (sku, category) {
        (Some(s), _) => format!("SKU {s}"),
        (None, Some(c)) => format!("category {c}"),
        (None, None) => "any line".into(),
    }
}

fn in_scope(line: &BasketLine, sku: &Option<String>, category: &Option<String>) -> bool {
    sku.as_ref().is_none_or(|s| *s == line.sku)
        && category.as_ref().is_none_or(|c| *c == line.category)
}

/// The discount lines `reward` gives on `basket`, each labelled `text`.
pub fn apply(
    reward: &Reward,
    text: &str,
    basket: &[BasketLine],
) -> Result<Vec<Discount>, NotApplicable> {
    let total: i64 = basket.iter().map(|l| l.total_cents.max(0)).sum();
    let spread =
        |sku: &Option<String>, category: &Option<String>, min: i64, off: &dyn Fn(i64) -> i64| {
            if total < min {
                return Err(NotApplicable::UnderMinimum { min, total });
            }
            let lines: Vec<usize> = (0..basket.len())
                .filter(|i| in_scope(&basket[*i], sku, category) && basket[*i].total_cents > 0)
                .collect();
            if lines.is_empty() {
                return Err(NotApplicable::NothingMatches(scope_text(sku, category)));
            }
            let base: i64 = lines.iter().map(|i| basket[*i].total_cents).sum();
            let discount = off(base).clamp(0, base);
            Ok(share(basket, &lines, base, discount, text))
        };
    match reward {
        Reward::PercentOff {
            percent,
            sku,
            category,
            min_basket_cents,
            cap_cents,
        } => spread(sku, category, *min_basket_cents, &|base| {
            let off = i64::try_from(i128::from(base) * i128::from(*percent) / 100).unwrap_or(base);
            cap_cents.map_or(off, |cap| off.min(cap))
        }),
        Reward::AmountOff {
            amount_cents,
            sku,
            category,
            min_basket_cents,
        } => spread(sku, category, *min_basket_cents, &|_| *amount_cents),
        Reward::FreeItem { sku } => {
            let Some(i) = basket.iter().position(|l| l.sku == *sku && l.quantity > 0) else {
                return Err(NotApplicable::NothingMatches(format!("SKU {sku}")));
            };
            let line = &basket[i];
            // One unit: the line's total over its units, so a POS discount on the line is kept.
            let unit = line.total_cents / line.quantity.max(1);
            Ok(vec![Discount {
                line: i + 1,
                sku: line.sku.clone(),
                amount_cents: unit,
                text: text.to_owned(),
            }])
        }
        Reward::Points { .. } => Err(NotApplicable::NotADiscount),
    }
}

/// `discount` over `lines` in proportion to their totals (summing to `base`), rounded down,
/// the rest by largest remainder.
fn share(
    basket: &[BasketLine],
    lines: &[usize],
    base: i64,
    discount: i64,
    text: &str,
) -> Vec<Discount> {
    let exact: Vec<(i64, i128)> = lines
        .iter()
        .map(|i| {
            let n = i128::from(discount) * i128::from(basket[*i].total_cents);
            let d = i128::from(base.max(1));
            (i64::try_from(n / d).unwrap_or(0), n % d)
        })
        .collect();
    let mut amounts: Vec<i64> = exact.iter().map(|e| e.0).collect();
    let left = discount - amounts.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for k in order.into_iter().take(usize::try_from(left).unwrap_or(0)) {
        amounts[k] += 1;
    }
    lines
        .iter()
        .zip(amounts)
        .filter(|(_, a)| *a > 0)
        .map(|(i, amount_cents)| Discount {
            line: i + 1,
            sku: basket[*i].sku.clone(),
            amount_cents,
            text: text.to_owned(),
        })
        .collect()
}

/// Checks a reward as HQ staff or agent.toml write it: `Err` holds every problem as a sentence
/// naming the field under `here`.
pub fn check(value: &serde_json::Value, here: &str) -> Result<Reward, Vec<String>> {
    let reward: Reward = serde_json::from_value(value.clone()).map_err(|e| {
        vec![format!(
            "{here}: {e} (a reward is {{\"type\": \"percent_off\" | \"amount_off\" | \"free_item\" | \"points\", ...}})"
        )]
    })?;
    let mut problems = Vec::new();
    let scope_ok = |v: &Option<String>| {
        v.as_ref().is_none_or(|s| {
            !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control)
        })
    };
    // What percent-off and amount-off share: where they apply and from which basket.
    let mut scoped = |sku: &Option<String>, category: &Option<String>, min: i64| {
        if !scope_ok(sku) || !scope_ok(category) {
            problems.push(format!(
                "{here}: `sku` and `category` are 1 to 64 printable characters"
            ));
        }
        if min < 0 {
            problems.push(format!("{here}.min_basket_cents: 0 or more"));
        }
    };
    let mut more: Vec<String> = Vec::new();
    match &reward {
        Reward::PercentOff {
            percent,
            sku,
            category,
            min_basket_cents,
            cap_cents,
        } => {
            scoped(sku, category, *min_basket_cents);
            if !(1..=100).contains(percent) {
                more.push(format!("{here}.percent: a whole number from 1 to 100"));
            }
            if cap_cents.is_some_and(|c| c <= 0) {
                more.push(format!("{here}.cap_cents: more than 0 cents"));
            }
        }
        Reward::AmountOff {
            amount_cents,
            sku,
            category,
            min_basket_cents,
        } => {
            scoped(sku, category, *min_basket_cents);
            if *amount_cents <= 0 {
                more.push(format!("{here}.amount_cents: more than 0 cents"));
            }
        }
        Reward::FreeItem { sku } => {
            if !scope_ok(&Some(sku.clone())) {
                more.push(format!("{here}.sku: 1 to 64 printable characters"));
            }
        }
        Reward::Points { points } => {
            if !(1..=1_000_000).contains(points) {
                more.push(format!("{here}.points: 1 to 1000000"));
            }
        }
    }
    problems.append(&mut more);
    if problems.is_empty() {
        Ok(reward)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(sku: &str, category: &str, qty: i64, total: i64) -> BasketLine {
        BasketLine {
            sku: sku.into(),
            category: category.into(),
            brand: None,
            quantity: qty,
            unit_cents: total / qty,
            total_cents: total,
        }
    }

    fn basket() -> Vec<BasketLine> {
        vec![
            line("COF-1", "coffee", 2, 700),
            line("COF-2", "coffee", 1, 333),
            line("CRO-1", "bakery", 3, 450),
        ]
    }

    #[test]
    fn percent_off_a_category_spreads_over_its_lines_and_adds_up() {
        let r = check(
            &json!({"type": "percent_off", "percent": 10, "category": "coffee"}),
            "reward",
        )
        .unwrap();
        let d = apply(&r, "10% off coffee", &basket()).unwrap();
        // 10% of 10.33 = 103 cents: 70 on the first line, 33 (32.9 rounded up) on the second.
        assert_eq!(
            d.iter()
                .map(|x| (x.line, x.amount_cents))
                .collect::<Vec<_>>(),
            vec![(1, 70), (2, 33)]
        );
        assert!(d.iter().all(|x| x.text == "10% off coffee"));
    }

    #[test]
    fn caps_minimums_and_free_items() {
        let capped = check(
            &json!({"type": "percent_off", "percent": 50, "cap_cents": 100}),
            "r",
        )
        .unwrap();
        let d = apply(&capped, "half off", &basket()).unwrap();
        assert_eq!(d.iter().map(|x| x.amount_cents).sum::<i64>(), 100);
        let min = check(
            &json!({"type": "amount_off", "amount_cents": 500, "min_basket_cents": 2000}),
            "r",
        )
        .unwrap();
        assert_eq!(
            apply(&min, "5 off", &basket()),
            Err(NotApplicable::UnderMinimum {
                min: 2000,
                total: 1483
            })
        );
        let more_than_it_costs = check(
            &json!({"type": "amount_off", "amount_cents": 5000, "sku": "CRO-1"}),
            "r",
        )
        .unwrap();
        assert_eq!(
            apply(&more_than_it_costs, "x", &basket()).unwrap()[0].amount_cents,
            450
        );
        let free = check(&json!({"type": "free_item", "sku": "COF-1"}), "r").unwrap();
        let d = apply(&free, "A free coffee", &basket()).unwrap();
        assert_eq!((d[0].line, d[0].amount_cents), (1, 350));
        let missing = check(&json!({"type": "free_item", "sku": "TEA-1"}), "r").unwrap();
        assert!(matches!(
            apply(&missing, "x", &basket()),
            Err(NotApplicable::NothingMatches(_))
        ));
    }

    #[test]
    fn a_badly_written_reward_names_every_problem() {
        assert!(
            check(
                &json!({"type": "percent_off", "percent": 0, "cap_cents": -1}),
                "reward"
            )
            .unwrap_err()
            .len()
                == 2
        );
        let e = check(&json!({"type": "percent_of", "percent": 10}), "reward").unwrap_err();
        assert!(
            e[0].starts_with("reward: unknown variant `percent_of`"),
            "{e:?}"
        );
        let e = check(
            &json!({"type": "free_item", "sku": "A", "colour": "red"}),
            "reward",
        )
        .unwrap_err();
        assert!(e[0].contains("colour"), "{e:?}");
    }
}
