//! Refunds and redemptions: taking points back and spending them.
//!
//! A refund takes back points in proportion to the refunded share of the sale, computed on the
//! running total of refunds so that partial refunds add up exactly to a full one, and never more
//! than the sale earned. A balance never goes negative: when the member already spent the points
//! a refund would take back, the refund takes what is there and records the rest as
//! `uncollected` for HQ to follow up (a sale cannot be un-refunded at the till).

use thiserror::Error;

/// What the ledger knows of a sale when a refund arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleRecord {
    pub total_cents: i64,
    pub points_earned: i64,
    pub refunded_cents: i64,
    /// Points the refunds so far were due to take back (collected or not).
    pub points_due_back: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundDecision {
    /// Points due back for this refund.
    pub points_due: i64,
    /// Of those, what the balance gave back.
    pub points_taken: i64,
    /// `points_due - points_taken`: already spent by the member.
    pub uncollected: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RefundError {
    #[error("a refund must be more than 0 cents")]
    NotPositive,
    #[error("line {line}: refund a quantity of at least 1")]
    NoQuantity { line: usize },
    #[error("the sale has no line {line} (it has {lines})")]
    UnknownLine { line: usize, lines: usize },
    #[error("line {line}: refunds would total {would_total} units but {bought} were sold")]
    ExceedsLine {
        line: usize,
        would_total: i64,
        bought: i64,
    },
    #[error("line {line} is named twice in one refund")]
    LineTwice { line: usize },
    #[error("refunds would total {would_total} cents but the sale was {sale_total} cents")]
    ExceedsSale { would_total: i64, sale_total: i64 },
}

/// Decides a refund of `refund_cents` of `sale`, given the account's current `balance`.
pub fn refund(
    sale: SaleRecord,
    refund_cents: i64,
    balance: i64,
) -> Result<RefundDecision, RefundError> {
    if refund_cents <= 0 {
        return Err(RefundError::NotPositive);
    }
    let would_total = sale.refunded_cents.saturating_add(refund_cents);
    if would_total > sale.total_cents {
        return Err(RefundError::ExceedsSale {
            would_total,
            sale_total: sale.total_cents,
        });
    }
    let due_in_total = if sale.total_cents == 0 {
        0
    } else {
        let share =
            i128::from(sale.points_earned) * i128::from(would_total) / i128::from(sale.total_cents);
        i64::try_from(share).unwrap_or(sale.points_earned)
    };
    let points_due = (due_in_total - sale.points_due_back).clamp(0, sale.points_earned);
    let points_taken = points_due.min(balance.max(0));
    Ok(RefundDecision {
        points_due,
        points_taken,
        uncollected: points_due - points_taken,
    })
}

/// One line of a sale as the ledger keeps it for refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRecord {
    pub quantity: i64,
    pub total_cents: i64,
    /// What the line earned (its share of the basket's points and its own bonuses).
    pub points: i64,
    pub refunded_quantity: i64,
    /// Points earlier refunds of this line were due to take back.
    pub points_back: i64,
}

/// What a refund of given lines decides, line by line and in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinesRefundDecision {
    /// Per refunded line (1-based number, units, cents, points due back), in request order.
    pub lines: Vec<(usize, i64, i64, i64)>,
    /// The cents refunded: each line's share of its total, the last unit taking the rest.
    pub cents: i64,
    /// As for a refund by amount.
    pub decision: RefundDecision,
}

/// Decides a refund of `requested` (1-based line number, units) of a sale with `lines`, given
/// the account's `balance`. Each line gives back its points in proportion to the units
/// refunded (rounded down, the last unit taking the rest), never more than it earned; the
/// basket's bonus (what the sale earned beyond its lines) comes back with the last unit of the
/// last line.
pub fn refund_lines(
    sale: SaleRecord,
    lines: &[LineRecord],
    requested: &[(usize, i64)],
    balance: i64,
) -> Result<LinesRefundDecision, RefundError> {
    if requested.is_empty() {
        return Err(RefundError::NotPositive);
    }
    let mut after: Vec<LineRecord> = lines.to_vec();
    let mut out = Vec::with_capacity(requested.len());
    let mut seen = Vec::with_capacity(requested.len());
    for &(line, units) in requested {
        if seen.contains(&line) {
            return Err(RefundError::LineTwice { line });
        }
        seen.push(line);
        let Some(record) = line.checked_sub(1).and_then(|i| after.get_mut(i)) else {
            return Err(RefundError::UnknownLine {
                line,
                lines: lines.len(),
            });
        };
        if units <= 0 {
            return Err(RefundError::NoQuantity { line });
        }
        let would_total = record.refunded_quantity.saturating_add(units);
        if would_total > record.quantity {
            return Err(RefundError::ExceedsLine {
                line,
                would_total,
                bought: record.quantity,
            });
        }
        let share = |of: i64, n: i64| {
            i64::try_from(i128::from(of) * i128::from(n) / i128::from(record.quantity.max(1)))
                .unwrap_or(of)
        };
        let cents = share(record.total_cents, would_total)
            - share(record.total_cents, record.refunded_quantity);
        let points_due = (share(record.points, would_total) - record.points_back).max(0);
        record.refunded_quantity = would_total;
        record.points_back += points_due;
        out.push((line, units, cents, points_due));
    }
    let cents: i64 = out.iter().map(|l| l.2).sum();
    let mut points_due: i64 = out.iter().map(|l| l.3).sum();
    let lines_points: i64 = lines.iter().map(|l| l.points).sum();
    if after.iter().all(|l| l.refunded_quantity == l.quantity) {
        points_due += (sale.points_earned - lines_points).max(0);
    }
    let would_total = sale.refunded_cents.saturating_add(cents);
    if would_total > sale.total_cents {
        return Err(RefundError::ExceedsSale {
            would_total,
            sale_total: sale.total_cents,
        });
    }
    // Never more than the sale earned, whatever refunds by amount took before.
    let points_due = points_due.clamp(0, (sale.points_earned - sale.points_due_back).max(0));
    let points_taken = points_due.min(balance.max(0));
    Ok(LinesRefundDecision {
        lines: out,
        cents,
        decision: RefundDecision {
            points_due,
            points_taken,
            uncollected: points_due - points_taken,
        },
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RedeemError {
    #[error("a redemption must spend more than 0 points")]
    NotPositive,
    #[error("the balance is {balance} points, {wanted} were asked")]
    InsufficientBalance { balance: i64, wanted: i64 },
}

/// Decides spending `points` from `balance`: the new balance, or why not.
pub fn redeem(balance: i64, points: i64) -> Result<i64, RedeemError> {
    if points <= 0 {
        return Err(RedeemError::NotPositive);
    }
    if points > balance {
        return Err(RedeemError::InsufficientBalance {
            balance,
            wanted: points,
        });
    }
    Ok(balance - points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sale(total: i64, points: i64) -> SaleRecord {
        SaleRecord {
            total_cents: total,
            points_earned: points,
            refunded_cents: 0,
            points_due_back: 0,
        }
    }

    #[test]
    fn partial_refund_takes_back_proportionally_rounded_down() {
        let d = refund(sale(1000, 15), 500, 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.points_due, 7);
        assert_eq!(d.points_taken, 7);
    }

    #[test]
    fn refund_beyond_sale_is_refused() {
        let mut s = sale(1000, 10);
        s.refunded_cents = 600;
        assert_eq!(
            refund(s, 500, 100),
            Err(RefundError::ExceedsSale {
                would_total: 1100,
                sale_total: 1000
            })
        );
    }

    #[test]
    fn refund_of_spent_points_is_recorded_uncollected() {
        let d = refund(sale(1000, 10), 1000, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.points_due, d.points_taken, d.uncollected), (10, 4, 6));
    }

    #[test]
    fn redemption_cannot_overdraw() {
        assert_eq!(redeem(10, 10), Ok(0));
        assert!(matches!(
            redeem(10, 11),
            Err(RedeemError::InsufficientBalance { .. })
        ));
        assert_eq!(redeem(10, 0), Err(RedeemError::NotPositive));
    }

    fn lines() -> Vec<LineRecord> {
        let line = |quantity, total_cents, points| LineRecord {
            quantity,
            total_cents,
            points,
            refunded_quantity: 0,
            points_back: 0,
        };
        // Two coffees earning 14, three croissants earning 28 (bonuses included); 50 basket bonus.
        vec![line(2, 700, 14), line(3, 450, 28)]
    }

    #[test]
    fn refunding_lines_takes_back_what_they_earned() {
        let sale = sale(1150, 92);
        let d = refund_lines(sale, &lines(), &[(2, 1)], 100).unwrap();
        assert_eq!(d.lines, vec![(2, 1, 150, 9)]);
        assert_eq!((d.cents, d.decision.points_due), (150, 9));
        // Both remaining croissants: 28 in all for the line, never more.
        let mut after = lines();
        after[1].refunded_quantity = 1;
        after[1].points_back = 9;
        let s2 = SaleRecord {
            refunded_cents: 150,
            points_due_back: 9,
            ..sale
        };
        let d = refund_lines(s2, &after, &[(2, 2)], 100).unwrap();
        assert_eq!((d.cents, d.decision.points_due), (300, 19));
        // The coffees last: their 14 and the basket's 50 bonus come back with them.
        after[1].refunded_quantity = 3;
        after[1].points_back = 28;
        let s3 = SaleRecord {
            refunded_cents: 450,
            points_due_back: 28,
            ..sale
        };
        let d = refund_lines(s3, &after, &[(1, 2)], 100).unwrap();
        assert_eq!((d.cents, d.decision.points_due), (700, 64));
    }

    #[test]
    fn a_line_refund_beyond_what_was_sold_is_refused() {
        let s = sale(1150, 92);
        assert!(matches!(
            refund_lines(s, &lines(), &[(1, 3)], 100),
            Err(RefundError::ExceedsLine {
                line: 1,
                would_total: 3,
                bought: 2
            })
        ));
        assert!(matches!(
            refund_lines(s, &lines(), &[(3, 1)], 100),
            Err(RefundError::UnknownLine { line: 3, lines: 2 })
        ));
        assert!(matches!(
            refund_lines(s, &lines(), &[(0, 1)], 100),
            Err(RefundError::UnknownLine { line: 0, .. })
        ));
        assert!(matches!(
            refund_lines(s, &lines(), &[(1, 1), (1, 1)], 100),
            Err(RefundError::LineTwice { line: 1 })
        ));
        assert!(matches!(
            refund_lines(s, &lines(), &[(1, 0)], 100),
            Err(RefundError::NoQuantity { line: 1 })
        ));
    }

    proptest! {
        /// Refunding every unit of every line, in any order and any pieces, takes back exactly
        /// what the sale earned and refunds exactly its total.
        #[test]
        fn line_refunds_add_up_to_the_sale(
            cuts in proptest::collection::vec((1usize..3, 1i64..4), 1..12),
        ) {
            let mut ls = lines();
            let mut s = sale(1150, 92);
            let mut taken = 0;
            let mut plan: Vec<(usize, i64)> = cuts;
            plan.push((1, 2));
            plan.push((2, 3));
            for (line, units) in plan {
                let left = ls[line - 1].quantity - ls[line - 1].refunded_quantity;
                let units = units.min(left);
                if units == 0 { continue; }
                let d = refund_lines(s, &ls, &[(line, units)], i64::MAX).unwrap();
                taken += d.decision.points_taken;
                s.refunded_cents += d.cents;
                s.points_due_back += d.decision.points_due;
                ls[line - 1].refunded_quantity += units;
                ls[line - 1].points_back += d.lines[0].3;
                prop_assert!(ls[line - 1].points_back <= ls[line - 1].points);
            }
            prop_assert_eq!(s.refunded_cents, 1150);
            prop_assert_eq!(taken, 92);
        }

        /// Any split of a full refund into parts takes back exactly what the sale earned.
        #[test]
        fn partial_refunds_add_up_to_the_sale(
            total in 1i64..1_000_000,
            points in 0i64..100_000,
            cuts in proptest::collection::vec(1i64..1_000_000, 0..6),
        ) {
            let mut s = sale(total, points);
            let mut taken = 0;
            let mut parts: Vec<i64> = cuts.iter().map(|c| c % total + 1).collect();
            parts.push(total);
            for part in parts {
                let part = part.min(total - s.refunded_cents);
                if part == 0 { break; }
                let d = refund(s, part, i64::MAX).unwrap_or_else(|e| panic!("{e}"));
                prop_assert!(d.points_due >= 0);
                taken += d.points_taken;
                s.refunded_cents += part;
                s.points_due_back += d.points_due;
                prop_assert!(s.points_due_back <= points);
            }
            prop_assert_eq!(s.refunded_cents, total);
            prop_assert_eq!(taken, points);
        }

        #[test]
        fn refund_never_takes_more_than_the_balance(
            total in 1i64..1_000_000, points in 0i64..100_000, part in 1i64..1_000_000, balance in -10i64..100_000,
        ) {
            if let Ok(d) = refund(sale(total, points), part, balance) {
                prop_assert!(d.points_taken <= balance.max(0));
                prop_assert!(d.points_taken + d.uncollected == d.points_due);
            }
        }
    }
}
