//! Every value of the wrong type, not only the first: serde stops at the first one, so each is
//! recorded with its key, its `key = value` blanked out (spaces keep every other position), and
//! the file read again. Messages say what a person typed and what the key takes:
//! `points.per_euro: expected a whole number, found 1.5`.

use super::locate::path_at;
use serde::de::DeserializeOwned;
use toml::de::DeTable;

/// A value of the wrong type: its dotted key, where it starts, and the sentence.
pub struct TypeError {
    pub key: String,
    pub offset: usize,
    pub message: String,
}

/// What deserializing gave: the value (None when a wrong type could not be blanked out), the
/// unknown keys of the last reading, and every wrong type found.
pub struct Outcome<T> {
    pub value: Option<T>,
    pub unknown: Vec<String>,
    pub type_errors: Vec<TypeError>,
}

/// A file has far fewer keys than this; it bounds the loop whatever the input.
const MAX_ROUNDS: usize = 200;

pub fn deserialize<T: DeserializeOwned>(
    text: &str,
    dotted: impl Fn(&serde_ignored::Path<'_>) -> String,
) -> Outcome<T> {
    let mut text = text.to_owned();
    let mut type_errors = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let (document, syntax) = DeTable::parse_recoverable(&text);
        if !syntax.is_empty() {
            break;
        }
        let root = document.get_ref().clone();
        let mut unknown = Vec::new();
        let deserializer = toml::de::Deserializer::from(document);
        let error = match serde_ignored::deserialize(deserializer, |p| unknown.push(dotted(&p))) {
            Ok(value) => {
                return Outcome {
                    value: Some(value),
                    unknown,
                    type_errors,
                }
            }
            Err(e) => e,
        };
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_owned();
        let Some(found) = path_at(&root, &span) else {
            type_errors.push(TypeError {
                key: String::new(),
                offset: span.start,
                message,
            });
            break;
        };
        type_errors.push(TypeError {
            message: format!("{}: {}", found.path, plain(&message)),
            key: found.path,
            offset: span.start,
        });
        // Blank `key = value`, keeping newlines so later positions stay true.
        let blank = found.entry.start.min(text.len())..found.entry.end.min(text.len());
        let replaced: String = text
            .get(blank.clone())
            .unwrap_or("")
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(blank, &replaced);
    }
    Outcome {
        value: None,
        unknown: Vec::new(),
        type_errors,
    }
}

/// serde's `invalid type: floating point `1.5`, expected u32` as `expected a whole number,
/// found 1.5`; a message of another form is kept as it is.
pub fn plain(message: &str) -> String {
    let Some((what, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let (invalid_value, found) = if let Some(rest) = what.strip_prefix("invalid type: ") {
        (false, rest)
    } else if let Some(rest) = what.strip_prefix("invalid value: ") {
        (true, rest)
    } else {
        return message.to_owned();
    };
    let found = match (found.find('`'), found.rfind('`')) {
        (Some(a), Some(b)) if b > a => found[a + 1..b].to_owned(),
        _ => match found.strip_prefix("string ") {
            Some(s) => s.to_owned(),
            None => match found {
                "map" => "a table".to_owned(),
                "sequence" => "a list".to_owned(),
                other => other.to_owned(),
            },
        },
    };
    let expected = match expected.trim() {
        "u8" | "u16" | "u32" | "u64" | "usize" if invalid_value => {
            let max = match expected.trim() {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        "a string" | "a borrowed string" => "text in quotes".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list [...]".to_owned(),
        e if e.starts_with("struct ") || e == "a map" => "a table".to_owned(),
        e => e.to_owned(),
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_read_as_sentences() {
        assert_eq!(
            plain("invalid type: floating point `1.5`, expected u32"),
            "expected a whole number, found 1.5"
        );
        assert_eq!(
            plain("invalid type: string \"ten\", expected u64"),
            "expected a whole number, found \"ten\""
        );
        assert_eq!(
            plain("invalid value: integer `-1`, expected u32"),
            "expected a whole number from 0 to 4294967295, found -1"
        );
        assert_eq!(
            plain("invalid type: integer `5`, expected a string"),
            "expected text in quotes, found 5"
        );
        assert_eq!(plain("something else"), "something else");
    }
}
