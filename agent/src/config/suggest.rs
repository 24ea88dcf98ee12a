//! "Did you mean": the keys a table takes, read from the raw types' own serde definitions (the
//! field list serde's derive passes to `deserialize_struct`), so the suggestions can never
//! drift from what the parser accepts.

use super::raw::{
    RawApi, RawCampaign, RawCheckout, RawConfig, RawHq, RawLane, RawPoints, RawProximity,
    RawScanner, RawSensor, RawStore, RawZone,
};
use crate::engine::gift_spec::GiftCampaignSpec;
use serde::de::{self, Deserialize, Visitor};

/// The key an unknown `key` (a dotted path such as `lanes.0.scaner`) was most likely meant to
/// be, as a dotted path too.
pub fn suggestion(key: &str) -> Option<String> {
    let (table, typed) = key.rsplit_once('.').unwrap_or(("", key));
    let fields = fields_of_table(table)?;
    let best = fields
        .iter()
        .map(|f| (strsim::jaro_winkler(typed, f), *f))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))?
        .1;
    Some(if table.is_empty() {
        best.to_owned()
    } else {
        format!("{table}.{best}")
    })
}

/// The keys of the table at dotted path `table` (array elements by index).
fn fields_of_table(table: &str) -> Option<&'static [&'static str]> {
    // Indices of arrays of tables do not change the type.
    let shape: Vec<&str> = table
        .split('.')
        .filter(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    match shape.as_slice() {
        [] => fields::<RawConfig>(),
        ["store"] => fields::<RawStore>(),
        ["api"] => fields::<RawApi>(),
        ["hq"] => fields::<RawHq>(),
        ["lanes"] => fields::<RawLane>(),
        ["lanes", "scanner"] => fields::<RawScanner>(),
        ["checkout"] => fields::<RawCheckout>(),
        ["points"] => fields::<RawPoints>(),
        ["points", "campaigns"] => fields::<RawCampaign>(),
        ["proximity"] => fields::<RawProximity>(),
        ["proximity", "sensors"] => fields::<RawSensor>(),
        ["proximity", "zones"] => fields::<RawZone>(),
        ["gifts"] => fields::<GiftCampaignSpec>(),
        _ => None,
    }
}

/// The field names `T`'s derived Deserialize declares, or None for a type that is not a struct.
fn fields<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut spy = FieldSpy(None);
    let _ = T::deserialize(&mut spy);
    spy.0
}

/// A deserializer that only listens: it records the fields a struct asks for, then fails.
struct FieldSpy(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Listened;

impl std::fmt::Display for Listened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("only listening for field names")
    }
}

impl std::error::Error for Listened {}

impl de::Error for Listened {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Listened
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldSpy {
    type Error = Listened;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Listened> {
        Err(Listened)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Listened> {
        self.0 = Some(fields);
        Err(Listened)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_the_key_meant() {
        assert_eq!(
            suggestion("lanes.0.scaner").as_deref(),
            Some("lanes.0.scanner")
        );
        assert_eq!(
            suggestion("points.per_eur").as_deref(),
            Some("points.per_euro")
        );
        assert_eq!(suggestion("hq.tokenfile").as_deref(), Some("hq.token_file"));
        assert_eq!(suggestion("stor").as_deref(), Some("store"));
        assert_eq!(
            suggestion("proximity.sensors.1.zonee").as_deref(),
            Some("proximity.sensors.1.zone")
        );
        // Nothing close: no guess.
        assert_eq!(suggestion("hq.colour"), None);
    }

    #[test]
    fn every_table_lists_its_fields() {
        for table in [
            "",
            "store",
            "api",
            "hq",
            "lanes.0",
            "lanes.0.scanner",
            "checkout",
            "points",
            "points.campaigns.0",
            "proximity",
            "proximity.sensors.0",
            "proximity.zones.0",
            "gifts.0",
        ] {
            assert!(
                fields_of_table(table).is_some_and(|f| !f.is_empty()),
                "{table}"
            );
        }
    }
}
