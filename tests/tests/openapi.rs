//! Both HTTP APIs' OpenAPI documents, as an integrator reads them: each server serves the
//! document checked in under `docs/openapi/`, its campaign examples are campaigns HQ takes, and
//! schemathesis (PyPI, installed by `scripts/setup.sh`) finds no 5xx and no answer the document
//! does not describe, against the real agent and the real HQ.
//!
//! Regenerate a checked-in document after changing an API:
//! `loyalty-agent openapi > docs/openapi/agent.json`, `loyalty-hq openapi > docs/openapi/hq.json`.

use loyalty_e2e::{Hq, Store, ADMIN_TOKEN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const STORE: &str = "store-042";
const STORE_TOKEN: &str = "store-042-token-openapi";

fn checked_in(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/openapi")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn served(url: &str) -> Value {
    let r = reqwest::blocking::get(url).unwrap();
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.headers()["content-type"], "application/json", "{url}");
    r.json().unwrap()
}

fn agent() -> Store {
    Store::new("[[lanes]]\nid = \"1\"\n")
}

fn hq() -> Hq {
    let hq = Hq::start();
    hq.add_store(STORE, STORE_TOKEN);
    hq
}

#[test]
fn each_server_serves_the_checked_in_document() {
    let store = agent();
    let _agent = store.start();
    let hq = hq();
    for (name, url, regenerate) in [
        (
            "agent.json",
            store.url("/openapi.json"),
            "loyalty-agent openapi",
        ),
        (
            "hq.json",
            format!("{}/openapi.json", hq.url()),
            "loyalty-hq openapi",
        ),
    ] {
        let served = served(&url);
        assert!(
            served == checked_in(name),
            "the served document differs from docs/openapi/{name}: run `{regenerate} > docs/openapi/{name}`"
        );
        assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn the_documented_campaign_examples_are_campaigns_hq_accepts() {
    let doc = checked_in("hq.json");
    let hq = hq();
    let client = reqwest::blocking::Client::new();
    for kind in ["PointsCampaign", "GiftCampaign"] {
        let example = &doc["components"]["schemas"][kind]["example"];
        assert!(example.is_object(), "{kind} has no example");
        let r = client
            .put(format!(
                "{}/v1/admin/campaigns/example-{}",
                hq.url(),
                kind.to_lowercase()
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(example)
            .send()
            .unwrap();
        let status = r.status();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 200, "{kind}'s example: {body}");
    }
}

/// schemathesis' `st`, as `scripts/setup.sh` installs it.
fn schemathesis() -> PathBuf {
    let st = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var("HOME").expect("HOME"))
                .join(".local/share/loyalty-edge/schemathesis/bin/st")
        });
    assert!(
        st.is_file(),
        "schemathesis is not installed at {}: run scripts/setup.sh (or set SCHEMATHESIS)",
        st.display()
    );
    st
}

/// Runs schemathesis against `document` with `extra` arguments; panics with its report unless
/// every check passed. Returns the summary line ("N generated, N passed").
fn run_schemathesis(document: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    // A fixed seed keeps CI repeatable; set SCHEMATHESIS_SEED to explore others.
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "16".into());
    let out = Command::new(schemathesis())
        .current_dir(dir.path())
        .args(["run", document])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            &seed,
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .args(extra)
        .output()
        .expect("running schemathesis");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis against {document} failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("")
        .trim()
        .to_owned();
    eprintln!("schemathesis {document} {extra:?}: {summary}");
    summary
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let store = agent();
    let _agent = store.start();
    let hq = hq();
    // The live feeds never end; everything else is exercised.
    let agent_summary = run_schemathesis(
        &store.url("/openapi.json"),
        &["--exclude-path-regex", "/events$"],
    );
    let doc = format!("{}/openapi.json", hq.url());
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let hq_summary = run_schemathesis(
        &doc,
        &[
            "--exclude-path-regex",
            "/feed$",
            "--exclude-tag",
            "stores",
            "-H",
            &admin,
        ],
    );
    let store_auth = format!("Authorization: Bearer {STORE_TOKEN}");
    let stores_summary = run_schemathesis(&doc, &["--include-tag", "stores", "-H", &store_auth]);
    for summary in [agent_summary, hq_summary, stores_summary] {
        assert!(summary.contains(" passed"), "{summary}");
    }
    // Still serving afterwards.
    assert_eq!(store.get("/healthz").0, 200);
}
