//! The live feed's server-sent events, parsed as they arrive in chunks, and one line per item
//! for a person watching.

use serde_json::Value;

/// One feed item: `{"id","type","timestamp","data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub id: i64,
    pub kind: String,
    pub data: Value,
}

/// Splits a byte stream into events; keeps a partial one until its blank line arrives.
#[derive(Default)]
pub struct Parser {
    buffer: String,
}

impl Parser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<FeedItem> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut items = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            // Keep-alive comments carry no data.
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            items.push(FeedItem {
                id: v["id"].as_i64().unwrap_or(0),
                kind: v["type"].as_str().unwrap_or("").to_owned(),
                data: v["data"].clone(),
            });
        }
        items
    }
}

/// Seconds from `at` (RFC 3339) to now, if it parses.
pub fn seconds_since(at: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some((chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
}

/// What the phone shows for an item.
pub fn describe(item: &FeedItem) -> String {
    let d = &item.data;
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_owned();
    match item.kind.as_str() {
        "gift.issued" => {
            let after = seconds_since(&s("issued_at"))
                .map(|t| format!(", {t:.3} s after the sighting that decided it"))
                .unwrap_or_default();
            format!(
                "GIFT  {} from store {} (valid until {}){after}",
                s("gift"),
                s("store_id"),
                s("expires_at")
            )
        }
        "points.credited" | "points.debited" => format!(
            "POINTS {:+} at store {} ({}), balance {}",
            d["points"].as_i64().unwrap_or(0),
            s("store_id"),
            s("reason"),
            d["balance"]
        ),
        "gift.redeemed" => format!("USED  {} at store {}", s("gift"), s("store_id")),
        "gift.expired" => format!(
            "EXPIRED {} (was valid until {})",
            s("gift"),
            s("expires_at")
        ),
        other => format!("{other} {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_keepalives_are_handled() {
        let mut p = Parser::default();
        assert!(p
            .push(b": keep-alive\n\nid: 3\nevent: gift.issued\nda")
            .is_empty());
        let items = p.push(
            b"ta: {\"id\":3,\"type\":\"gift.issued\",\"data\":{\"gift\":\"Free coffee\"}}\n\n",
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, 3);
        assert_eq!(items[0].kind, "gift.issued");
        assert_eq!(items[0].data["gift"], "Free coffee");
    }
}
