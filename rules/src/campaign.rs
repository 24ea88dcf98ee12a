//! Campaigns as people write them: a `[[points.campaigns]]` table in agent.toml, or a JSON body
//! HQ staff publish (`PUT /v1/admin/campaigns/{id}`, `"kind": "points"` or `"gift"`), checked
//! into the rules the engine runs. One set of checks for both, so a campaign HQ accepts is one
//! every store runs, and HQ refuses with the very sentences a store would have logged.

use crate::basket::LineScope;
use crate::gift_spec;
use crate::gifts::GiftCampaign;
use crate::reward::CatalogueReward;
use crate::rules::{Boost, DailyHours, Multiplier, PointsCampaign};
use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::Deserialize;
use serde_json::Value;

/// A points campaign as written; every field optional so that each missing or wrong one can be
/// reported, not just the first.
#[derive(Debug, Deserialize)]
pub struct RawCampaign {
    pub id: Option<String>,
    pub version: Option<u32>,
    pub multiplier: Option<f64>,
    pub bonus: Option<i64>,
    pub starts: Option<toml::value::Datetime>,
    pub ends: Option<toml::value::Datetime>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    pub hours: Option<String>,
    #[serde(default)]
    pub tiers: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    pub min_total_cents: Option<i64>,
    /// At most one of these: the campaign applies to matching basket lines only.
    pub sku: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
}

/// A problem with a campaign: the dotted path of the value (`points.campaigns.0.bonus`) and a
/// sentence.
pub type Problem = (String, String);

/// Checks `raw`, found at `here`; `None` with problems pushed when it is not a campaign.
pub fn build_points_campaign(
    raw: &RawCampaign,
    here: &str,
    problems: &mut Vec<Problem>,
) -> Option<PointsCampaign> {
    let mut problem = |path: String, message: &str| problems.push((path, message.to_owned()));
    let id = match raw.id.as_deref() {
        Some(id) if crate::is_identifier(id, 64) => Some(id.to_owned()),
        Some(_) => {
            problem(
                format!("{here}.id"),
                "a campaign id is 1 to 64 letters, digits, `-` or `_`",
            );
            None
        }
        None => {
            problem(here.to_owned(), "a campaign needs an `id`");
            None
        }
    };
    let boost = match (raw.multiplier, raw.bonus) {
        (Some(m), None) => match Multiplier::from_factor(m) {
            Some(m) => Some(Boost::Multiply(m)),
            None => {
                problem(
                    format!("{here}.multiplier"),
                    "multiplier is a number from 0 to 100",
                );
                None
            }
        },
        (None, Some(b)) if (0..=1_000_000).contains(&b) => Some(Boost::Bonus(b)),
        (None, Some(_)) => {
            problem(
                format!("{here}.bonus"),
                "bonus is a number of points from 0 to 1000000",
            );
            None
        }
        _ => {
            problem(
                here.to_owned(),
                "a campaign has either `multiplier` or `bonus`",
            );
            None
        }
    };
    let mut datetime = |key: &str, value: &Option<toml::value::Datetime>| {
        value
            .as_ref()
            .and_then(|d| match DateTime::parse_from_rfc3339(&d.to_string()) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    problem(
                        format!("{here}.{key}"),
                        "a full date and time with offset, like 2026-12-01T00:00:00Z",
                    );
                    None
                }
            })
    };
    let starts = datetime("starts", &raw.starts);
    let ends = datetime("ends", &raw.ends);
    if let (Some(s), Some(e)) = (starts, ends) {
        if e <= s {
            problem(format!("{here}.ends"), "the campaign ends before it starts");
        }
    }
    let mut weekdays = Vec::new();
    for (j, day) in raw.weekdays.iter().enumerate() {
        match day.parse::<Weekday>() {
            Ok(d) => weekdays.push(d),
            Err(_) => problems.push((
                format!("{here}.weekdays.{j}"),
                format!("`{day}` is not a weekday (mon, tue, ...)"),
            )),
        }
    }
    let hours = raw.hours.as_deref().and_then(|text| {
        let parsed = text.split_once('-').and_then(|(a, b)| {
            Some(DailyHours {
                from: NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?,
                to: NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?,
            })
        });
        if parsed.is_none() {
            problems.push((
                format!("{here}.hours"),
                "hours look like \"17:00-20:00\" (store-local time)".to_owned(),
            ));
        }
        parsed
    });
    let scope = match (&raw.sku, &raw.category, &raw.brand) {
        (None, None, None) => None,
        (Some(v), None, None) => {
            scope_value(&format!("{here}.sku"), v, problems).map(LineScope::Sku)
        }
        (None, Some(v), None) => {
            scope_value(&format!("{here}.category"), v, problems).map(LineScope::Category)
        }
        (None, None, Some(v)) => {
            scope_value(&format!("{here}.brand"), v, problems).map(LineScope::Brand)
        }
        _ => {
            problems.push((
                here.to_owned(),
                "a campaign is scoped to one of `sku`, `category` or `brand`, not several".into(),
            ));
            None
        }
    };
    let scoped = raw.sku.is_some() || raw.category.is_some() || raw.brand.is_some();
    if scoped && scope.is_none() {
        return None;
    }
    Some(PointsCampaign {
        id: id?,
        version: raw.version.unwrap_or(1),
        boost: boost?,
        starts,
        ends,
        weekdays,
        hours,
        tiers: raw.tiers.clone(),
        segments: raw.segments.clone(),
        min_total_cents: raw.min_total_cents.unwrap_or(0).max(0),
        scope,
    })
}

/// A SKU, category or brand a campaign is scoped to: 1 to 64 printable characters.
fn scope_value(path: &str, value: &str, problems: &mut Vec<Problem>) -> Option<String> {
    if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
        problems.push((
            path.to_owned(),
            "a SKU, category or brand is 1 to 64 printable characters".into(),
        ));
        return None;
    }
    Some(value.to_owned())
}

/// A campaign HQ publishes, checked.
#[derive(Debug, Clone)]
pub enum Campaign {
    Points(PointsCampaign),
    Gift(GiftCampaign),
    /// An item of the points catalogue.
    Reward(CatalogueReward),
}

/// Checks an HQ campaign body of any kind: `Err` holds every problem as a sentence
/// (`campaign.multipler: unknown key`, `campaign: a campaign has either ...`).
pub fn validate(id: &str, version: i64, body: &Value) -> Result<Campaign, Vec<String>> {
    if !crate::is_identifier(id, 64) {
        return Err(vec![
            "campaign id: 1 to 64 letters, digits, `-` or `_`".into()
        ]);
    }
    match body.get("kind").and_then(Value::as_str) {
        Some("points") => points_from_hq(id, version, body).map(Campaign::Points),
        Some("gift") => match gift_spec::from_hq(id, version, body) {
            Some(result) => result.map(Campaign::Gift),
            None => Err(vec!["campaign.kind: not a gift campaign".into()]),
        },
        Some("reward") => catalogue_from_hq(id, version, body).map(Campaign::Reward),
        Some(other) => Err(vec![format!(
            "campaign.kind: `{other}` is not a campaign kind (points, gift or reward)"
        )]),
        None => Err(vec![
            "campaign.kind: required, \"points\", \"gift\" or \"reward\"".into(),
        ]),
    }
}

/// An item of the points catalogue as HQ publishes it:
/// `{"kind": "reward", "cost_points": 150, "text": "A free coffee", "reward": {...}}`
/// ([`crate::reward`]; a catalogue item gives a discount, never points for points).
pub fn catalogue_from_hq(
    id: &str,
    version: i64,
    body: &Value,
) -> Result<CatalogueReward, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec!["campaign: not a campaign object".into()]);
    };
    let mut problems: Vec<String> = map
        .keys()
        .filter(|k| {
            !["kind", "id", "version", "cost_points", "text", "reward"].contains(&k.as_str())
        })
        .map(|k| format!("campaign.{k}: unknown key"))
        .collect();
    let cost_points = map.get("cost_points").and_then(Value::as_i64);
    if !cost_points.is_some_and(|c| (1..=1_000_000_000).contains(&c)) {
        problems.push("campaign.cost_points: required, 1 to 1000000000 points".into());
    }
    let text = map.get("text").and_then(Value::as_str).unwrap_or("");
    if text.is_empty() || text.chars().count() > 80 || text.chars().any(char::is_control) {
        problems.push(
            "campaign.text: required, what the member reads, 1 to 80 characters on one line".into(),
        );
    }
    let reward = match map.get("reward") {
        None => {
            problems.push("campaign.reward: required, what the points buy".into());
            None
        }
        Some(v) => match crate::reward::check(v, "campaign.reward") {
            Ok(crate::reward::Reward::Points { .. }) => {
                problems.push(
                    "campaign.reward: a catalogue item gives a discount or an item, not points"
                        .into(),
                );
                None
            }
            Ok(r) => Some(r),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        },
    };
    match (cost_points, reward) {
        (Some(cost_points), Some(reward)) if problems.is_empty() => Ok(CatalogueReward {
            id: id.to_owned(),
            version,
            cost_points,
            text: text.to_owned(),
            reward,
        }),
        _ => Err(problems),
    }
}

/// An HQ points campaign: its JSON body read as the `[[points.campaigns]]` table it mirrors
/// (`starts`/`ends` as RFC 3339 strings), with unknown keys reported, not ignored.
pub fn points_from_hq(id: &str, version: i64, body: &Value) -> Result<PointsCampaign, Vec<String>> {
    let Some(table) = to_toml(id, version, body) else {
        return Err(vec![
            "campaign: not a campaign object (dates must be RFC 3339 strings)".into(),
        ]);
    };
    // Through text: toml's in-memory Value hands datetimes to serde as plain strings, which
    // `toml::value::Datetime` refuses; parsed text keeps them datetimes.
    let text = toml::to_string(&table).map_err(|e| vec![format!("campaign: {e}")])?;
    let mut unknown = Vec::new();
    let deserializer =
        toml::de::Deserializer::parse(&text).map_err(|e| vec![format!("campaign: {e}")])?;
    let raw: RawCampaign = serde_ignored::deserialize(deserializer, |path| {
        unknown.push(format!("campaign.{path}: unknown key"));
    })
    .map_err(|e| vec![format!("campaign: {e}")])?;
    let mut problems = Vec::new();
    let campaign = build_points_campaign(&raw, "campaign", &mut problems);
    let mut all: Vec<String> = unknown;
    all.extend(problems.into_iter().map(|(path, m)| format!("{path}: {m}")));
    match campaign {
        Some(c) if all.is_empty() => Ok(c),
        _ => Err(all),
    }
}

fn to_toml(id: &str, version: i64, body: &Value) -> Option<toml::Value> {
    let Value::Object(map) = body else {
        return None;
    };
    let mut table = toml::Table::new();
    for (key, value) in map {
        if key == "kind" || key == "id" || key == "version" {
            continue;
        }
        let converted = match (key.as_str(), value) {
            ("starts" | "ends", Value::String(s)) => {
                toml::Value::Datetime(s.parse::<toml::value::Datetime>().ok()?)
            }
            _ => toml::Value::try_from(value).ok()?,
        };
        table.insert(key.clone(), converted);
    }
    table.insert("id".into(), toml::Value::String(id.to_owned()));
    table.insert(
        "version".into(),
        toml::Value::Integer(version.clamp(0, i64::from(u32::MAX))),
    );
    Some(toml::Value::Table(table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelt_key_is_named_with_what_it_breaks() {
        let problems =
            validate("triple", 1, &json!({"kind": "points", "multipler": 3})).unwrap_err();
        assert_eq!(
            problems,
            [
                "campaign.multipler: unknown key",
                "campaign: a campaign has either `multiplier` or `bonus`"
            ]
        );
    }

    #[test]
    fn valid_points_and_gift_campaigns_pass() {
        assert!(matches!(
            validate("double", 3, &json!({"kind": "points", "multiplier": 2.0, "starts": "2026-11-01T00:00:00Z"})),
            Ok(Campaign::Points(c)) if c.version == 3
        ));
        assert!(matches!(
            validate(
                "coffee",
                1,
                &json!({"kind": "gift", "gift": "Free coffee", "trigger": "dwelled", "zone": "coffee", "dwell_seconds": 60, "limit": "once_per_day", "valid_for_minutes": 30})
            ),
            Ok(Campaign::Gift(_))
        ));
        assert!(validate("x", 1, &json!({"kind": "teleport"})).is_err());
        assert!(matches!(
            validate("free-coffee", 2, &json!({"kind": "reward", "cost_points": 150, "text": "A free coffee",
                                              "reward": {"type": "free_item", "sku": "COF-1"}})),
            Ok(Campaign::Reward(r)) if r.cost_points == 150 && r.version == 2
        ));
        let problems = validate(
            "x",
            1,
            &json!({"kind": "reward", "cost": 150, "reward": {"type": "points", "points": 5}}),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(validate("x", 1, &json!({"multiplier": 2})).is_err());
    }
}
