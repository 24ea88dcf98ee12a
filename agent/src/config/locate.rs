//! Finding where a key path (`lanes.0.scanner.port`) stands in the TOML text.

use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// The span of the value at `path`, or of its key when `key` is true. Falls back to the nearest
/// existing ancestor, so a missing key is reported at the table that should hold it.
pub fn span_of(root: &DeTable<'_>, path: &str, key: bool) -> Range<usize> {
    let mut best = 0..0;
    let mut table = Some(root);
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let found = if let Some(t) = table {
            t.iter()
                .find(|(k, _)| k.get_ref().as_ref() == *segment)
                .map(|(k, v)| (k.span(), v))
        } else if let (Some(a), Ok(index)) = (array, segment.parse::<usize>()) {
            a.get(index).map(|v| (v.span(), v))
        } else {
            None
        };
        let Some((key_span, value)) = found else {
            return best;
        };
        best = if last && key { key_span } else { value.span() };
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    best
}

/// 1-based line and column of a byte offset, counting columns in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}
