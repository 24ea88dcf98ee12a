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

/// The innermost `key = value` whose value holds `span`: its dotted path (array elements by
/// index) and the byte range from its key to the end of its value.
pub struct Found {
    pub path: String,
    pub entry: Range<usize>,
}

pub fn path_at(root: &DeTable<'_>, span: &Range<usize>) -> Option<Found> {
    let mut path = Vec::new();
    find_in_table(root, span, &mut path)
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// Depth first: a `[table]`'s own span is only its header, so every table is searched, and the
/// `key = value` whose value holds `span` is the answer (its innermost entry, for an inline
/// table or array).
fn find_in_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<Found> {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        // A `key = value` line: the key comes before its value (a [header]'s does not).
        let is_entry = k.span().end <= v.span().start;
        if is_entry && holds(&v.span(), span) {
            let whole = k.span().start..v.span().end;
            let found = match find_in_value(v.get_ref(), span, path) {
                Some(f) if f.entry.start < f.entry.end => f,
                // An element of an array of scalars: named by its index, blanked with its array.
                Some(f) => Found {
                    path: f.path,
                    entry: whole,
                },
                None => Found {
                    path: path.join("."),
                    entry: whole,
                },
            };
            path.pop();
            return Some(found);
        }
        if !is_entry {
            if let Some(found) = find_in_value(v.get_ref(), span, path) {
                path.pop();
                return Some(found);
            }
        }
        path.pop();
    }
    None
}

fn find_in_value(
    value: &DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<Found> {
    match value {
        DeValue::Table(t) => find_in_table(t, span, path),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = match v.get_ref() {
                DeValue::Table(t) => find_in_table(t, span, path),
                _ if holds(&v.span(), span) => Some(Found {
                    path: path.join("."),
                    entry: 0..0,
                }),
                _ => None,
            };
            path.pop();
            found
        }),
        _ => None,
    }
}
