//! Campaigns HQ publishes (`PUT /v1/admin/campaigns/{id}`, pulled into the ledger's
//! `campaigns` table) merged with agent.toml's: the rules the writer earns with.
//!
//! A points campaign body is the JSON form of a `[[points.campaigns]]` table plus
//! `"kind": "points"` (`starts`/`ends` as RFC 3339 strings); it is validated exactly as the file
//! is; a gift campaign body (`"kind": "gift"`) is `engine::gift_spec`'s; a catalogue item
//! (`"kind": "reward"`) is `engine::campaign::catalogue_from_hq`'s. An HQ campaign replaces
//! a local one of the same kind and id; an invalid or deleted one leaves no campaign of that id,
//! logged, never half-applied. The merge happens here, once per change HQ sends, not in the
//! ledger writer on every presence fact.

use crate::engine::{gift_spec, PointsCampaign, Rules};
use serde_json::Value;
use tracing::warn;

/// A campaign row as stored: id, HQ version, JSON body, deleted.
pub type StoredCampaign = (String, i64, String, bool);

/// An HQ points campaign, or `None` when the body is another kind of campaign; checked by
/// `loyalty_rules::campaign`, as HQ checks it before accepting it.
pub fn points_campaign(
    id: &str,
    version: i64,
    body: &Value,
) -> Option<Result<PointsCampaign, Vec<String>>> {
    if body.get("kind").and_then(Value::as_str) != Some("points") {
        return None;
    }
    Some(loyalty_rules::campaign::points_from_hq(id, version, body))
}

/// `base` (agent.toml's rules) with HQ's points and gift campaigns applied.
pub fn effective_rules(base: &Rules, stored: &[StoredCampaign]) -> Rules {
    let mut rules = base.clone();
    for (id, version, body, deleted) in stored {
        let Ok(body) = serde_json::from_str::<Value>(body) else {
            warn!(campaign = %id, "An HQ campaign's body is not JSON; it is ignored.");
            continue;
        };
        match body.get("kind").and_then(Value::as_str) {
            Some("points") => {
                rules.campaigns.retain(|c| &c.id != id);
                if !*deleted {
                    if let Some(c) = valid(id, points_campaign(id, *version, &body)) {
                        rules.campaigns.push(c);
                    }
                }
            }
            Some("gift") => {
                rules.gifts.retain(|c| &c.id != id);
                if !*deleted {
                    if let Some(c) = valid(id, gift_spec::from_hq(id, *version, &body)) {
                        rules.gifts.push(c);
                    }
                }
            }
            Some("reward") => {
                rules.catalogue.retain(|c| &c.id != id);
                if !*deleted {
                    let item = loyalty_rules::campaign::catalogue_from_hq(id, *version, &body);
                    if let Some(c) = valid(id, Some(item)) {
                        rules.catalogue.push(c);
                    }
                }
            }
            _ => {}
        }
    }
    rules
}

fn valid<T>(id: &str, parsed: Option<Result<T, Vec<String>>>) -> Option<T> {
    match parsed? {
        Ok(c) => Some(c),
        Err(problems) => {
            warn!(campaign = %id, problems = %problems.join("; "), "An HQ campaign is invalid; it is ignored.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Boost, Multiplier};
    use serde_json::json;

    #[test]
    fn an_hq_points_campaign_is_validated_like_the_file_and_replaces_a_local_one() {
        let mut base = Rules::default();
        base.campaigns.push(
            points_campaign("double", 1, &json!({"kind": "points", "multiplier": 2.0}))
                .unwrap()
                .unwrap(),
        );
        let stored = vec![
            (
                "double".to_string(),
                7,
                json!({"kind": "points", "multiplier": 3.0, "tiers": ["gold"],
                       "starts": "2026-11-01T00:00:00Z", "weekdays": ["sat", "sun"]})
                .to_string(),
                false,
            ),
            (
                "broken".to_string(),
                1,
                json!({"kind": "points", "multiplier": -1}).to_string(),
                false,
            ),
            (
                "coffee".to_string(),
                1,
                json!({"kind": "gift", "gift": "x"}).to_string(),
                false,
            ),
        ];
        let rules = effective_rules(&base, &stored);
        assert_eq!(rules.campaigns.len(), 1, "{:?}", rules.campaigns);
        assert!(
            rules.gifts.is_empty(),
            "the gift body lacks its required fields: {:?}",
            rules.gifts
        );
        let c = &rules.campaigns[0];
        assert_eq!((c.id.as_str(), c.version), ("double", 7));
        assert_eq!(c.boost, Boost::Multiply(Multiplier(3000)));
        assert_eq!(c.tiers, vec!["gold".to_string()]);
        assert!(c.starts.is_some());
        let deleted = vec![(
            "double".to_string(),
            8,
            json!({"kind": "points"}).to_string(),
            true,
        )];
        assert!(effective_rules(&base, &deleted).campaigns.is_empty());
    }

    #[test]
    fn an_hq_gift_campaign_replaces_a_local_one_and_a_deleted_one_leaves_none() {
        let body = |gift: &str| {
            json!({"kind": "gift", "gift": gift, "trigger": "entered_store",
                   "limit": "once_per_visit", "valid_for_minutes": 60})
        };
        let mut base = Rules::default();
        base.gifts.push(
            gift_spec::from_hq("welcome", 1, &body("Tea"))
                .unwrap()
                .unwrap(),
        );
        let stored = vec![("welcome".to_string(), 4, body("Coffee").to_string(), false)];
        let rules = effective_rules(&base, &stored);
        assert_eq!(rules.gifts.len(), 1);
        assert_eq!(
            (rules.gifts[0].gift.as_str(), rules.gifts[0].version),
            ("Coffee", 4)
        );
        let deleted = vec![("welcome".to_string(), 5, body("Coffee").to_string(), true)];
        assert!(effective_rules(&base, &deleted).gifts.is_empty());
    }
}
