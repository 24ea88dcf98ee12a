//! A gift campaign as written by people: `[[gifts]]` in agent.toml, or the JSON body of a
//! campaign HQ publishes with `"kind": "gift"`. One spec, one validation, both sources.
//!
//! ```toml
//! [[gifts]]
//! id = "welcome-coffee"
//! gift = "Free coffee"
//! trigger = "entered_store"        # or "dwelled" (with zone, dwell_seconds) or "returned" (absent_days)
//! limit = "once_per_visit"         # or "once_per_day", "once_per_member"
//! valid_for_minutes = 120          # each gift's life...
//! expires_at = "2026-12-31T23:00:00Z"  # ...and never after this (optional)
//! starts_at = "2026-11-01T00:00:00Z"   # the campaign issues in this window (optional)
//! ends_at = "2026-12-24T00:00:00Z"
//! tiers = ["gold"]                 # optional: only these tiers
//! segments = ["coffee-lovers"]     # optional: members in at least one
//! daily_budget = 200               # optional: gifts per store-local day at this store
//! points = 0                       # optional: points credited with the gift
//! reward = { type = "free_item", sku = "COF-1" }  # optional: what the POS applies (crate::reward)
//! ```

use super::gifts::{GiftCampaign, GiftLimit, GiftTrigger};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiftCampaignSpec {
    /// Required in agent.toml; HQ campaigns take their id from HQ.
    #[serde(default)]
    pub id: Option<String>,
    /// `"gift"`; present on HQ campaign bodies, which also carry points campaigns.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
    pub gift: String,
    pub trigger: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub dwell_seconds: Option<u64>,
    #[serde(default)]
    pub absent_days: Option<u32>,
    pub limit: GiftLimit,
    pub valid_for_minutes: u32,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tiers: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub daily_budget: Option<u32>,
    #[serde(default)]
    pub points: i64,
    /// What the POS applies when the gift is handed over ([`crate::reward`]); `gift` stays the
    /// text people read. A `points` reward is the same as `points`.
    #[serde(default)]
    pub reward: Option<serde_json::Value>,
}

impl GiftCampaignSpec {
    /// Every problem at once, each a sentence naming the field.
    pub fn validate(self, id: String, version: i64) -> Result<GiftCampaign, Vec<String>> {
        let mut problems = Vec::new();
        if self.kind.as_deref().is_some_and(|k| k != "gift") {
            problems.push(format!(
                "`kind` is `{}`, not `gift`",
                self.kind.clone().unwrap_or_default()
            ));
        }
        if self.gift.trim().is_empty() {
            problems.push("`gift` must say what the member gets".into());
        }
        let trigger = match self.trigger.as_str() {
            "entered_store" => Some(GiftTrigger::EnteredStore),
            "dwelled" => match (&self.zone, self.dwell_seconds) {
                (Some(zone), Some(seconds)) if seconds > 0 => Some(GiftTrigger::Dwelled {
                    zone: zone.clone(),
                    seconds,
                }),
                _ => {
                    problems.push(
                        "trigger `dwelled` needs `zone` and `dwell_seconds` (more than 0)".into(),
                    );
                    None
                }
            },
            "returned" => match self.absent_days {
                Some(days) if days > 0 => Some(GiftTrigger::Returned { days }),
                _ => {
                    problems.push("trigger `returned` needs `absent_days` (more than 0)".into());
                    None
                }
            },
            other => {
                problems.push(format!(
                    "`trigger` is `{other}`; expected `entered_store`, `dwelled` or `returned`"
                ));
                None
            }
        };
        if self.valid_for_minutes == 0 {
            problems.push("`valid_for_minutes` must be more than 0".into());
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at) {
            if e <= s {
                problems.push("`ends_at` must be after `starts_at`".into());
            }
        }
        if self.points < 0 {
            problems.push("`points` must not be negative".into());
        }
        let mut points = self.points;
        let reward = match &self.reward {
            None => None,
            Some(v) => match crate::reward::check(v, "reward") {
                Ok(crate::reward::Reward::Points { points: p }) if self.points == 0 => {
                    points = p;
                    None
                }
                Ok(crate::reward::Reward::Points { .. }) => {
                    problems.push("give `points` or a `points` reward, not both".into());
                    None
                }
                Ok(r) => Some(r),
                Err(mut p) => {
                    problems.append(&mut p);
                    None
                }
            },
        };
        match trigger {
            Some(trigger) if problems.is_empty() => Ok(GiftCampaign {
                id,
                version: self.version.unwrap_or(version),
                gift: self.gift,
                trigger,
                tiers: self.tiers,
                segments: self.segments,
                limit: self.limit,
                daily_budget: self.daily_budget,
                starts: self.starts_at,
                ends: self.ends_at,
                valid_for: Duration::minutes(i64::from(self.valid_for_minutes)),
                expires_at: self.expires_at,
                points,
                reward,
            }),
            _ => Err(problems),
        }
    }
}

/// A campaign HQ published: a gift campaign, or `None` for other kinds (points campaigns).
pub fn from_hq(
    campaign_id: &str,
    version: i64,
    body: &serde_json::Value,
) -> Option<Result<GiftCampaign, Vec<String>>> {
    if body.get("kind").and_then(|k| k.as_str()) != Some("gift") {
        return None;
    }
    Some(
        serde_json::from_value::<GiftCampaignSpec>(body.clone())
            .map_err(|e| vec![e.to_string()])
            .and_then(|spec| spec.validate(campaign_id.to_owned(), version)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_hq_gift_campaign_becomes_a_campaign_with_hq_version() {
        let c = from_hq(
            "coffee",
            4,
            &json!({"kind": "gift", "gift": "Free coffee", "trigger": "dwelled", "zone": "coffee",
                    "dwell_seconds": 60, "limit": "once_per_day", "valid_for_minutes": 30}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.version, 4);
        assert_eq!(
            c.trigger,
            GiftTrigger::Dwelled {
                zone: "coffee".into(),
                seconds: 60
            }
        );
        assert!(from_hq("double", 1, &json!({"kind": "points", "multiplier": 2})).is_none());
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = from_hq(
            "bad",
            1,
            &json!({"kind": "gift", "gift": " ", "trigger": "dwelled", "limit": "once_per_visit",
                    "valid_for_minutes": 0, "points": -1}),
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        let typo = from_hq(
            "typo",
            1,
            &json!({"kind": "gift", "gift": "x", "trigger": "entered_store", "limit": "once_per_visit",
                    "valid_for_minutes": 5, "tier": ["gold"]}),
        )
        .unwrap()
        .unwrap_err();
        assert!(typo[0].contains("tier"), "{typo:?}");
    }
}
