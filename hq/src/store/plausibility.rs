//! What no store could have computed: the bounds past which HQ keeps an event but flags it.
//!
//! HQ never refuses a fact over these (the store recorded it; a member may have been told), it
//! flags it in the reconciliation report for a person to look at. Only the hard bounds of
//! `loyalty_protocol::bounds` refuse an event.

use serde::{Deserialize, Serialize};

/// `[plausibility]` in hq.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plausibility {
    /// The most points a sale may earn per euro, every tier and campaign multiplier included.
    pub max_points_per_euro: i64,
    /// Fixed bonus points a sale may carry on top (campaign bonuses).
    pub max_sale_bonus: i64,
    /// The most points one gift may credit.
    pub max_gift_points: i64,
}

impl Default for Plausibility {
    fn default() -> Self {
        Plausibility {
            max_points_per_euro: 100,
            max_sale_bonus: 10_000,
            max_gift_points: 100_000,
        }
    }
}

impl Plausibility {
    /// The most a sale of `total_cents` may earn.
    pub fn max_sale_points(&self, total_cents: i64) -> i64 {
        let per_total = i128::from(total_cents.max(0)) * i128::from(self.max_points_per_euro) / 100;
        i64::try_from(per_total)
            .unwrap_or(i64::MAX)
            .saturating_add(self.max_sale_bonus)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            ("max_points_per_euro", self.max_points_per_euro),
            ("max_sale_bonus", self.max_sale_bonus),
            ("max_gift_points", self.max_gift_points),
        ] {
            if v < 0 {
                out.push(format!(
                    "plausibility.{name}: must not be negative, got {v}"
                ));
            }
        }
        out
    }
}
