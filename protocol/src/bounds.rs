//! Bounds on points, shared by the agent and HQ, so no sum either side computes can overflow
//! an `i64` (SQLite would turn it into a REAL and every read of that balance would fail).
//!
//! An event moves at most [`MAX_EVENT_POINTS`] either way; a balance stays within
//! ±[`MAX_BALANCE`]. With those, a balance plus one event is at most about 10^15 + 10^9, far
//! inside `i64`, and even a member's own account plus thousands of card accounts cannot
//! overflow.

/// The most points one event may credit or debit: a billion, far above any real sale or gift
/// (a 10,000 EUR basket at 100 points per euro is a million).
pub const MAX_EVENT_POINTS: i64 = 1_000_000_000;

/// The largest balance, positive or negative, an account may hold.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

/// A balance or one event's points outside the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutOfBounds {
    #[error("{points} points in one event; at most {MAX_EVENT_POINTS} either way")]
    Event { points: i64 },
    #[error("a balance of {balance} plus {points} points leaves the bounds of ±{MAX_BALANCE}")]
    Balance { balance: i64, points: i64 },
}

/// Checks one event's points.
pub fn check_event_points(points: i64) -> Result<(), OutOfBounds> {
    if points.checked_abs().is_some_and(|p| p <= MAX_EVENT_POINTS) {
        Ok(())
    } else {
        Err(OutOfBounds::Event { points })
    }
}

/// `balance + points`, when both and the result are within bounds.
pub fn add_to_balance(balance: i64, points: i64) -> Result<i64, OutOfBounds> {
    check_event_points(points)?;
    balance
        .checked_add(points)
        .filter(|b| b.checked_abs().is_some_and(|b| b <= MAX_BALANCE))
        .ok_or(OutOfBounds::Balance { balance, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_at_the_edges() {
        assert!(check_event_points(MAX_EVENT_POINTS).is_ok());
        assert!(check_event_points(-MAX_EVENT_POINTS).is_ok());
        assert!(check_event_points(MAX_EVENT_POINTS + 1).is_err());
        assert!(check_event_points(i64::MIN).is_err());
        assert_eq!(add_to_balance(MAX_BALANCE - 5, 5), Ok(MAX_BALANCE));
        assert!(add_to_balance(MAX_BALANCE - 5, 6).is_err());
        assert!(add_to_balance(i64::MAX, 1).is_err());
        assert!(add_to_balance(-MAX_BALANCE, -1).is_err());
    }
}
