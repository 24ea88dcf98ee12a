//! Warnings for values left from the example (`config/agent.toml`): they parse, but a store
//! running with them syncs with nobody. `check-config` prints them; `--strict` fails on them,
//! and the package enables the service only once they are gone.

use super::locate::{line_col, span_of};
use super::Problem;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Words that mark a value as one to replace.
const PLACEHOLDER_WORDS: &[&str] = &["change-me", "changeme", "change_me", "replace-me", "xxxxxx"];
/// Domains reserved for examples (RFC 2606): no HQ is there.
const EXAMPLE_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
const EXAMPLE_SUFFIXES: &[&str] = &[".example", ".invalid"];

pub fn warnings(text: &str, path: &Path) -> Vec<Problem> {
    let Ok(document) = DeTable::parse(text) else {
        return Vec::new();
    };
    let root = document.get_ref();
    let string_at = |key: &str| -> Option<String> {
        let (table, name) = key.split_once('.')?;
        let (_, value) = root.iter().find(|(k, _)| k.get_ref() == table)?;
        let DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        let (_, v) = t.iter().find(|(k, _)| k.get_ref() == name)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        }
    };
    let mut found = Vec::new();
    if let Some(token) = string_at("hq.token") {
        let lower = token.to_ascii_lowercase();
        if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) {
            found.push((
                "hq.token",
                format!("warning: hq.token `{token}` is a placeholder: set the token HQ issued for this store (or use hq.token_file)"),
            ));
        }
    }
    if let Some(url) = string_at("hq.url") {
        let host = url
            .split("://")
            .nth(1)
            .unwrap_or(&url)
            .split(['/', ':', '?'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let example = EXAMPLE_DOMAINS
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
            || EXAMPLE_SUFFIXES.iter().any(|s| host.ends_with(s));
        if example {
            found.push((
                "hq.url",
                format!("warning: hq.url `{url}` is the example's placeholder ({host} is reserved for examples): set your HQ's address"),
            ));
        }
    }
    let mut warnings: Vec<Problem> = found
        .into_iter()
        .map(|(key, message)| {
            let (line, column) = line_col(text, span_of(root, key, false).start);
            Problem {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })
        .collect();
    warnings.sort_by_key(|p| (p.line, p.column));
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_placeholders_are_warned_about_and_real_values_are_not() {
        let example = include_str!("../../../config/agent.toml");
        let w = warnings(example, Path::new("agent.toml"));
        let text: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 2, "{text:?}");
        assert!(
            text[0].contains("hq.url `https://hq.example.com`"),
            "{text:?}"
        );
        assert!(
            text[1].contains("hq.token `change-me-store-042-token`"),
            "{text:?}"
        );
        let real = "[hq]\nurl = \"https://hq.shop.de\"\ntoken = \"s-042-9f8e7d\"\n";
        assert!(warnings(real, Path::new("a.toml")).is_empty());
    }
}
