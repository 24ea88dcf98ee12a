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

    proptest! {
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
