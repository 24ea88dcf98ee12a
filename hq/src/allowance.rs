//! The offline spend allowance HQ leases each member at each store.
//!
//! Rule: `allowance = min(cap, max(0, balance) / registered_stores)` (integer division).
//!
//! Why: while offline, each store may let the member spend at most its share of what HQ last
//! saw. Even if every registered store spends its whole allowance at the same time, the total
//! spent is at most `max(0, balance)`, so concurrent offline spending cannot overdraw the
//! account. `cap` bounds what a single stolen or replayed identity can spend before HQ hears of
//! it. A store refreshes the lease with every pull of the member; credits earned since then do
//! not raise it, debits since then are subtracted by the agent.

use serde::{Deserialize, Serialize};

/// `[allowance]` in hq.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowancePolicy {
    /// Most points one store may let a member spend offline. 0 forbids offline spending.
    pub cap: i64,
}

impl Default for AllowancePolicy {
    fn default() -> Self {
        AllowancePolicy { cap: 1_000 }
    }
}

impl AllowancePolicy {
    /// The allowance for a member with `balance` points when `stores` stores are registered.
    pub fn allowance(&self, balance: i64, stores: i64) -> i64 {
        (balance.max(0) / stores.max(1)).min(self.cap.max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_balance_and_never_exceed_the_cap() {
        let p = AllowancePolicy { cap: 100 };
        assert_eq!(p.allowance(90, 3), 30);
        assert_eq!(p.allowance(1_000, 2), 100);
        assert_eq!(p.allowance(-50, 2), 0);
        assert_eq!(p.allowance(10, 0), 10);
        // Every store spending its whole share at once stays within the balance.
        for balance in 0..200 {
            for stores in 1..7 {
                assert!(p.allowance(balance, stores) * stores <= balance);
            }
        }
    }
}
