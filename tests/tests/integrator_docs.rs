//! The examples integrators copy, checked against the real code: `config/campaigns.toml` (the
//! example file CONTRACT.md names) and `docs/integrators.md`'s campaigns are PUT to a real HQ,
//! its app key registered, its reconciliation report has the fields HQ's OpenAPI document
//! gives, and its sighting trace reads with the format's own reader.

use loyalty_e2e::{Hq, ADMIN_TOKEN};
use serde_json::Value;
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced block after `<!-- example: name -->` in docs/integrators.md.
fn example(name: &str) -> String {
    let doc = read("docs/integrators.md");
    let marker = format!("<!-- example: {name} -->");
    let after = &doc[doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no example {name}"))..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

fn put(hq: &Hq, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .put(format!("{}{path}", hq.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn the_example_campaigns_are_campaigns_hq_accepts() {
    let hq = Hq::start();
    let file: toml::Table = toml::from_str(&read("config/campaigns.toml")).unwrap();
    assert!(file.len() >= 5, "{file:?}");
    let mut kinds = std::collections::BTreeSet::new();
    for (id, campaign) in &file {
        let body = serde_json::to_value(campaign).unwrap();
        kinds.insert(body["kind"].as_str().unwrap().to_owned());
        let (status, answer) = put(&hq, &format!("/v1/admin/campaigns/{id}"), &body);
        assert_eq!(status, 200, "config/campaigns.toml [{id}]: {answer}");
    }
    assert_eq!(kinds, ["gift".to_owned(), "points".to_owned()].into());
    for name in ["points-campaign", "gift-campaign"] {
        let body: Value = serde_json::from_str(&example(name)).unwrap();
        let (status, answer) = put(&hq, &format!("/v1/admin/campaigns/doc-{name}"), &body);
        assert_eq!(status, 200, "docs/integrators.md {name}: {answer}");
    }
    // The check above can fail: a misspelt key is refused.
    let (status, answer) = put(
        &hq,
        "/v1/admin/campaigns/typo",
        &serde_json::json!({"kind": "points", "multiplyer": 2.0}),
    );
    assert_eq!(status, 422, "{answer}");
}

#[test]
fn the_documented_app_key_is_one_hq_takes_and_a_broken_one_is_refused() {
    let hq = Hq::start();
    let doc = read("docs/integrators.md");
    let key = doc
        .split_whitespace()
        .find(|w| w.len() == 44 && w.ends_with('='))
        .expect("a key in docs/integrators.md");
    let (status, answer) = put(
        &hq,
        "/v1/admin/members/carla",
        &serde_json::json!({"qr_public_key": key}),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = put(
        &hq,
        "/v1/admin/members/carla",
        &serde_json::json!({"qr_public_key": &key[..40]}),
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "bad_key");
}

#[test]
fn the_documented_reconciliation_report_has_hqs_fields() {
    let report: Value = serde_json::from_str(&example("reconciliation")).unwrap();
    let api: Value = serde_json::from_str(&read("docs/openapi/hq.json")).unwrap();
    let schemas = &api["components"]["schemas"];
    for (list, schema) in [
        ("flags", "Flag"),
        ("rejections", "Rejection"),
        ("ledger_bindings", "LedgerBindingRecord"),
    ] {
        let mut documented: Vec<&str> = report[list][0]
            .as_object()
            .unwrap_or_else(|| panic!("{list}"))
            .keys()
            .map(String::as_str)
            .collect();
        let mut generated: Vec<&str> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        generated.sort_unstable();
        assert_eq!(documented, generated, "{list}");
    }
}

#[test]
fn the_documented_trace_reads_line_for_line() {
    let text = example("trace");
    let (records, errors) = loyalty_protocol::trace::read_trace(text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let lines = text.lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(records.len(), lines);
    assert_eq!(lines, 4);
}
