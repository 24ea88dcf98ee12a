//! Member files for `loyalty-agent members import FILE`: how a store without HQ gets its members.
//!
//! Two formats, chosen by [`detect_format`]:
//!
//! - **JSON**: a list of objects with the keys of [`MemberRecord`]:
//!   `[{"member_id": "M-1", "tier": "gold", "segments": ["staff"], "cards": ["4006381333931"],
//!   "qr_public_key": "...", "proximity_key": "...", "display_name": "Anna de Vries"}]`. Only `member_id` is required; `null`
//!   means none. An unknown key is an error, since a misspelt `card` must not import a member
//!   without cards.
//! - **CSV**: a header row naming the columns (any order, only `member_id` required) from
//!   `member_id,tier,segments,cards,qr_public_key,proximity_key,display_name`, then one member
//!   per row.
//!   `segments` and `cards` hold several values separated by `;` or `|`. An empty cell means
//!   none; rows with only empty cells are skipped.
//!
//! [`parse_members`] reports every problem in the file at once, each as `line N: message` (CSV,
//! counted as a text editor does, the header being line 1) or `record N: message` (JSON, the Nth
//! member in the list, counted from 1), so that whoever maintains the file fixes it in one pass.
//! Nothing is imported unless the whole file is valid.

use crate::ledger::{MemberProfile, MemberRecord};
use crate::scan::qr::{self, is_member_id, MEMBER_ID_MAX};
use crate::scan::CardNumber;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The columns (CSV) or keys (JSON) a member file may have.
const FIELDS: [&str; 7] = [
    "member_id",
    "tier",
    "segments",
    "cards",
    "qr_public_key",
    "proximity_key",
    "display_name",
];

/// The longest name the lane page greets a member by.
const DISPLAY_NAME_MAX: usize = 80;

/// How a member file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// Where in the file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A line of the file, from 1.
    Line(usize),
    /// The Nth member of a JSON list, from 1.
    Record(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// One problem in a member file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem found in a member file, shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ImportError {
    pub problems: Vec<Problem>,
}

/// The format of `text` read from `path`: by extension (`.json`, `.csv`, any case), otherwise
/// JSON when the first non-blank character opens a list.
pub fn detect_format(path: &Path, text: &str) -> Format {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        // A CSV header starts with a column name, never with `[`.
        _ if strip_bom(text).trim_start().starts_with('[') => Format::Json,
        _ => Format::Csv,
    }
}

/// Parses and validates a member file; every problem is reported, not only the first.
///
/// Card numbers are returned in their canonical form ([`CardNumber::as_str`]), so a UPC-A typed
/// as 12 digits matches the 13 digits a scanner may send. Keys are kept as written.
pub fn parse_members(text: &str, format: Format) -> Result<Vec<MemberRecord>, ImportError> {
    // Spreadsheet programs often save with a byte order mark, which would otherwise become part
    // of the first column name.
    let text = strip_bom(text);
    let mut problems = Vec::new();
    let mut members = Members::default();
    if text.trim().is_empty() {
        problems.push(Problem {
            at: Location::Line(1),
            message: "the file is empty".into(),
        });
    } else {
        match format {
            Format::Json => read_json(text, &mut members, &mut problems),
            Format::Csv => read_csv(text, &mut members, &mut problems),
        }
    }
    if problems.is_empty() && members.records.is_empty() {
        // Importing nothing is almost certainly the wrong file, not an intent.
        problems.push(Problem {
            at: Location::Line(1),
            message: "the file lists no members".into(),
        });
    }
    if problems.is_empty() {
        Ok(members.records)
    } else {
        Err(ImportError { problems })
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// One member as read from the file, before the checks common to both formats.
#[derive(Default)]
struct Row {
    /// None when missing or of the wrong type; the reader already said so.
    member_id: Option<String>,
    tier: Option<String>,
    segments: Vec<String>,
    cards: Vec<String>,
    qr_public_key: Option<String>,
    proximity_key: Option<String>,
    display_name: Option<String>,
}

/// The checks that need the whole file: unique member ids, each card with one member.
#[derive(Default)]
struct Members {
    records: Vec<MemberRecord>,
    ids: HashMap<String, Location>,
    /// Canonical card number to the member id that holds it and where.
    cards: HashMap<String, (String, Location)>,
}

impl Members {
    fn add(&mut self, at: Location, row: Row, problems: &mut Vec<Problem>) {
        let mut problem = |message: String| problems.push(Problem { at, message });

        let member_id = row.member_id.filter(|id| {
            let ok = is_member_id(id);
            if !ok {
                problem(format!(
                    "member_id {id:?} must be 1 to {MEMBER_ID_MAX} letters, digits, '-' or '_'"
                ));
            }
            ok
        });
        let mut duplicate = false;
        if let Some(id) = &member_id {
            if let Some(first) = self.ids.get(id) {
                duplicate = true;
                problem(format!("member_id {id:?} is listed twice (see {first})"));
            } else {
                self.ids.insert(id.clone(), at);
            }
        }

        let mut cards: Vec<String> = Vec::new();
        for text in &row.cards {
            // An app QR token is a credential: never echo it.
            if text.starts_with(qr::PREFIX) {
                problem("an app QR token is not a card number".into());
                continue;
            }
            let card = match CardNumber::from_str(text) {
                Ok(card) => card.as_str().to_owned(),
                Err(e) => {
                    problem(format!("card {text:?}: {e}"));
                    continue;
                }
            };
            // The same card twice for one member (say as UPC-A and as EAN-13) is one card.
            if cards.contains(&card) {
                continue;
            }
            if let Some(id) = &member_id {
                match self.cards.get(&card) {
                    // A repeated member id was reported already; its cards saying so again
                    // would only add noise.
                    Some((owner, _)) if duplicate && owner == id => {}
                    Some((owner, first)) => problem(format!(
                        "card {card} is already member {owner:?}'s (see {first})"
                    )),
                    None => {
                        self.cards.insert(card.clone(), (id.clone(), at));
                    }
                }
            }
            cards.push(card);
        }

        if let Some(key) = &row.qr_public_key {
            if let Err(e) = qr::parse_public_key(key) {
                problem(format!("qr_public_key: {e}"));
            }
        }
        if let Some(name) = &row.display_name {
            if name.chars().count() > DISPLAY_NAME_MAX || name.chars().any(char::is_control) {
                problem(format!(
                    "display_name must be at most {DISPLAY_NAME_MAX} characters on one line"
                ));
            }
        }
        if let Some(key) = &row.proximity_key {
            if let Err(e) = key.parse::<crate::proximity::ProximityKey>() {
                problem(format!("proximity_key: {e}"));
            }
        }

        if let Some(member_id) = member_id {
            self.records.push(MemberRecord {
                member_id,
                profile: MemberProfile {
                    tier: row.tier,
                    segments: row.segments,
                    cards,
                    qr_public_key: row.qr_public_key,
                    proximity_key: row.proximity_key,
                    display_name: row.display_name,
                },
            });
        }
    }
}

/// Empty text means none, in both formats, so that a blank tier is no tier.
fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn read_csv(text: &str, members: &mut Members, problems: &mut Vec<Problem>) {
    let header_line = Location::Line(1);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        // Rows of the wrong length are reported below with their line, not as a parse failure.
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(e) => {
            problems.push(Problem {
                at: header_line,
                message: format!("cannot read the header row: {e}"),
            });
            return;
        }
    };

    // columns[i]: which field column i holds; None for a column already reported as unknown.
    let mut columns: Vec<Option<usize>> = Vec::new();
    let mut seen = [false; FIELDS.len()];
    for name in &header {
        let wanted = name.to_ascii_lowercase();
        match FIELDS.iter().position(|f| *f == wanted) {
            Some(field) if seen[field] => {
                problems.push(Problem {
                    at: header_line,
                    message: format!("column {} appears twice", FIELDS[field]),
                });
                columns.push(None);
            }
            Some(field) => {
                seen[field] = true;
                columns.push(Some(field));
            }
            None => {
                problems.push(Problem {
                    at: header_line,
                    message: format!(
                        "unknown column {name:?} (columns are {})",
                        FIELDS.join(", ")
                    ),
                });
                columns.push(None);
            }
        }
    }
    if !seen[0] {
        // Without member ids no row can be checked; a semicolon header is the usual cause
        // (spreadsheets set to a European locale), so say so.
        let hint = if header.iter().any(|h| h.contains(';')) {
            "; columns are separated by commas, not semicolons"
        } else {
            ""
        };
        problems.push(Problem {
            at: header_line,
            message: format!(
                "the first line must name the columns and include member_id, \
                 like: {}{hint}",
                FIELDS.join(",")
            ),
        });
        return;
    }

    for result in reader.records() {
        let record = match result {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(1, |p| line_number(p.line()));
                problems.push(Problem {
                    at: Location::Line(line),
                    message: format!("cannot read this row: {e}"),
                });
                continue;
            }
        };
        let at = Location::Line(record.position().map_or(1, |p| line_number(p.line())));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.len() {
            // A shifted row would put cards in the tier column: refuse it rather than guess.
            problems.push(Problem {
                at,
                message: format!(
                    "{} cells where the header has {} (a missing or extra comma?)",
                    record.len(),
                    header.len()
                ),
            });
            continue;
        }
        let mut row = Row::default();
        for (cell, column) in record.iter().zip(&columns) {
            let Some(field) = column else { continue };
            match FIELDS[*field] {
                "member_id" => row.member_id = non_empty(cell),
                "tier" => row.tier = non_empty(cell),
                "segments" => row.segments = split_values(cell),
                "cards" => row.cards = split_values(cell),
                "qr_public_key" => row.qr_public_key = non_empty(cell),
                "proximity_key" => row.proximity_key = non_empty(cell),
                _ => row.display_name = non_empty(cell),
            }
        }
        if row.member_id.is_none() {
            problems.push(Problem {
                at,
                message: "member_id is missing".into(),
            });
        }
        members.add(at, row, problems);
    }
}

fn line_number(line: u64) -> usize {
    usize::try_from(line).unwrap_or(usize::MAX)
}

/// `a; b|c` is `a`, `b`, `c`: both separators, since `;` is awkward in some spreadsheets and
/// `|` in others.
fn split_values(cell: &str) -> Vec<String> {
    cell.split([';', '|']).filter_map(non_empty).collect()
}

fn read_json(text: &str, members: &mut Members, problems: &mut Vec<Problem>) {
    let document: Value = match serde_json::from_str(text) {
        Ok(document) => document,
        Err(e) => {
            // serde_json appends " at line L column C"; the line goes in front like every
            // other problem.
            let full = e.to_string();
            let message = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(m, _)| m);
            problems.push(Problem {
                at: Location::Line(e.line().max(1)),
                message: format!("not valid JSON: {message} (column {})", e.column()),
            });
            return;
        }
    };
    let Value::Array(records) = document else {
        problems.push(Problem {
            at: Location::Line(1),
            message: r#"a JSON member file is a list of members: [{"member_id": "M-1", ...}, ...]"#
                .into(),
        });
        return;
    };
    for (i, record) in records.iter().enumerate() {
        let at = Location::Record(i + 1);
        let Value::Object(object) = record else {
            problems.push(Problem {
                at,
                message: r#"a member is an object like {"member_id": "M-1"}"#.into(),
            });
            continue;
        };
        let row = json_row(object, at, problems);
        members.add(at, row, problems);
    }
}

fn json_row(object: &Map<String, Value>, at: Location, problems: &mut Vec<Problem>) -> Row {
    let mut problem = |message: String| problems.push(Problem { at, message });
    for key in object.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problem(format!(
                "unknown key {key:?} (keys are {})",
                FIELDS.join(", ")
            ));
        }
    }
    let mut text = |key: &str| match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => non_empty(s),
        Some(_) => {
            problem(format!("{key} must be text in quotes"));
            None
        }
    };
    let member_id = text("member_id");
    let tier = text("tier");
    let qr_public_key = text("qr_public_key");
    let proximity_key = text("proximity_key");
    let display_name = text("display_name");
    // A wrong type was reported by `text` already; absent, null or blank is "missing".
    let wrong_type = object
        .get("member_id")
        .is_some_and(|v| !v.is_null() && !v.is_string());
    if member_id.is_none() && !wrong_type {
        problem("member_id is missing".into());
    }
    let mut list = |key: &str| -> Vec<String> {
        match object.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(non_empty)
                .collect(),
            // Numbers are refused, not converted: a JSON number loses a card's leading zeros.
            Some(_) => {
                problem(format!(
                    r#"{key} must be a list of texts in quotes, like ["a", "b"]"#
                ));
                Vec::new()
            }
        }
    };
    let segments = list("segments");
    let cards = list("cards");
    Row {
        member_id,
        tier,
        segments,
        cards,
        qr_public_key,
        proximity_key,
        display_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use ed25519_dalek::SigningKey;

    /// A real public key in standard base64, as HQ exports them.
    fn public_key() -> String {
        STANDARD.encode(SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes())
    }

    fn problems(text: &str, format: Format) -> Vec<String> {
        match parse_members(text, format) {
            Ok(members) => panic!("expected problems, got {members:?}"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn good_json() {
        let key = public_key();
        let text = format!(
            r#"[
  {{"member_id": "M-1", "tier": "gold", "segments": ["staff", "vip"],
    "cards": ["4006381333931", "036000291452"], "qr_public_key": "{key}",
    "proximity_key": "00112233445566778899AABBCCDDEEFF", "display_name": "Anna de Vries"}},
  {{"member_id": "M_2", "tier": null, "cards": ["ab-12"]}}
]"#
        );
        let members = parse_members(&text, Format::Json).expect("valid file");
        assert_eq!(
            members,
            vec![
                MemberRecord {
                    member_id: "M-1".into(),
                    profile: MemberProfile {
                        tier: Some("gold".into()),
                        segments: vec!["staff".into(), "vip".into()], // UPC-A is stored as its EAN-13 form, as the lanes look it up.
                        cards: vec!["4006381333931".into(), "0036000291452".into()],
                        qr_public_key: Some(key.clone()),
                        proximity_key: Some("00112233445566778899AABBCCDDEEFF".into()),
                        display_name: Some("Anna de Vries".into()),
                    }
                },
                MemberRecord {
                    member_id: "M_2".into(),
                    profile: MemberProfile {
                        tier: None,
                        segments: vec![],
                        cards: vec!["AB-12".into()],
                        qr_public_key: None,
                        proximity_key: None,
                        display_name: None,
                    }
                },
            ]
        );
    }

    #[test]
    fn good_csv() {
        let key = public_key();
        // Columns in a different order, a byte order mark, both separators, blank cells, a
        // blank row and a quoted cell.
        let text = format!(
            "\u{feff}cards,member_id,tier,segments,qr_public_key\n\
             4006381333931; 036000291452,M-1,gold,staff|vip,{key}\n\
             \n\
             \"96385074\",M-2,,,\n\
             ,M-3, silver ,,\n"
        );
        let members = parse_members(&text, Format::Csv).expect("valid file");
        assert_eq!(
            members,
            vec![
                MemberRecord {
                    member_id: "M-1".into(),
                    profile: MemberProfile {
                        tier: Some("gold".into()),
                        segments: vec!["staff".into(), "vip".into()],
                        cards: vec!["4006381333931".into(), "0036000291452".into()],
                        qr_public_key: Some(key),
                        proximity_key: None,
                        display_name: None,
                    }
                },
                MemberRecord {
                    member_id: "M-2".into(),
                    profile: MemberProfile {
                        tier: None,
                        segments: vec![],
                        cards: vec!["96385074".into()],
                        qr_public_key: None,
                        proximity_key: None,
                        display_name: None,
                    }
                },
                MemberRecord {
                    member_id: "M-3".into(),
                    profile: MemberProfile {
                        tier: Some("silver".into()),
                        segments: vec![],
                        cards: vec![],
                        qr_public_key: None,
                        proximity_key: None,
                        display_name: None,
                    }
                },
            ]
        );
    }

    #[test]
    fn csv_reports_every_problem_with_its_line() {
        let key = public_key();
        let text = format!(
            "member_id,tier,cards,qr_public_key\n\
             M-1,gold,4006381333931,{key}\n\
             M-2,,4006381333932,not-a-key\n\
             M-1,,,\n\
             M 3,,4006381333931,\n\
             ,silver,,\n\
             M-4,gold\n"
        );
        let error = parse_members(&text, Format::Csv).expect_err("invalid file");
        assert_eq!(
            error.to_string(),
            [
                "line 3: card \"4006381333932\": EAN-13 check digit does not match",
                "line 3: qr_public_key: not a usable Ed25519 public key (expected 32 bytes, base64)",
                "line 4: member_id \"M-1\" is listed twice (see line 2)",
                "line 5: member_id \"M 3\" must be 1 to 64 letters, digits, '-' or '_'",
                "line 6: member_id is missing",
                "line 7: 2 cells where the header has 4 (a missing or extra comma?)",
            ]
            .join("\n")
        );
    }

    #[test]
    fn card_given_to_two_members_names_both() {
        let text = "member_id,cards\nA,036000291452\nB,0036000291452|96385074\n";
        assert_eq!(
            problems(text, Format::Csv),
            vec!["line 3: card 0036000291452 is already member \"A\"'s (see line 2)"]
        );
    }

    #[test]
    fn json_reports_every_problem_with_its_record() {
        let text = r#"[
            {"member_id": "M-1", "cards": ["4006381333931"]},
            {"member_id": "M-1", "card": ["96385074"], "qr_public_key": "AAAA"},
            {"tier": "gold", "cards": [4006381333931]},
            {"member_id": 7, "cards": ["4006381333931", "LE1.M-1.1.x.y"]},
            "M-5"
        ]"#;
        assert_eq!(
            problems(text, Format::Json),
            vec![
                "record 2: unknown key \"card\" (keys are member_id, tier, segments, cards, qr_public_key, proximity_key, display_name)",
                "record 2: member_id \"M-1\" is listed twice (see record 1)",
                "record 2: qr_public_key: not a usable Ed25519 public key (expected 32 bytes, base64)",
                "record 3: member_id is missing",
                "record 3: cards must be a list of texts in quotes, like [\"a\", \"b\"]",
                "record 4: member_id must be text in quotes",
                "record 4: an app QR token is not a card number",
                "record 5: a member is an object like {\"member_id\": \"M-1\"}",
            ]
        );
    }

    #[test]
    fn file_level_problems() {
        assert_eq!(problems("", Format::Csv), vec!["line 1: the file is empty"]);
        assert_eq!(
            problems("[]", Format::Json),
            vec!["line 1: the file lists no members"]
        );
        assert_eq!(
            problems("member_id\n", Format::Csv),
            vec!["line 1: the file lists no members"]
        );
        assert_eq!(
            problems("[\n  {\"member_id\": \"M-1\"},\n]", Format::Json),
            vec!["line 3: not valid JSON: trailing comma (column 1)"]
        );
        assert_eq!(
            problems(r#"{"member_id": "M-1"}"#, Format::Json),
            vec![
                r#"line 1: a JSON member file is a list of members: [{"member_id": "M-1", ...}, ...]"#
            ]
        );
        assert_eq!(
            problems("member_id;tier\nM-1;gold\n", Format::Csv),
            vec![
                "line 1: unknown column \"member_id;tier\" (columns are member_id, tier, segments, cards, qr_public_key, proximity_key, display_name)",
                "line 1: the first line must name the columns and include member_id, like: member_id,tier,segments,cards,qr_public_key,proximity_key,display_name; columns are separated by commas, not semicolons",
            ]
        );
        assert_eq!(
            problems("member_id,Cards,cards\nM-1,,\n", Format::Csv),
            vec!["line 1: column cards appears twice"]
        );
    }

    #[test]
    fn format_detection() {
        let csv_text = "member_id\nM-1\n";
        let json_text = "  \n[{\"member_id\": \"M-1\"}]";
        assert_eq!(detect_format(Path::new("m.json"), csv_text), Format::Json);
        assert_eq!(detect_format(Path::new("M.JSON"), csv_text), Format::Json);
        assert_eq!(detect_format(Path::new("m.csv"), json_text), Format::Csv);
        assert_eq!(detect_format(Path::new("members"), json_text), Format::Json);
        assert_eq!(
            detect_format(Path::new("members.txt"), "\u{feff}[]"),
            Format::Json
        );
        assert_eq!(detect_format(Path::new("members"), csv_text), Format::Csv);
        assert_eq!(detect_format(Path::new("members"), ""), Format::Csv);
    }
}
