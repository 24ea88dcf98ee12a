//! Every error answer of both servers is `{"error","message"}` JSON (CONTRACT.md), including the
//! ones axum writes itself: unknown paths, wrong methods, path values that do not decode, bodies
//! of the wrong content type, malformed or too large.

use loyalty_e2e::{Hq, Store, ADMIN_TOKEN};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;

/// Sends the request; asserts the status, a JSON content type and the error body's shape;
/// returns the body.
fn json_error(request: RequestBuilder, status: u16, code: &str) -> Value {
    let response = request.send().expect("the server answers");
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().unwrap_or_default();
    assert_eq!(got, status, "status of {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content-type `{content_type}` of {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {body}"
    );
    body
}

#[test]
fn the_agent_answers_every_error_in_json() {
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    let _agent = store.start();
    let http = Client::new();
    let sales = store.url("/v1/lanes/1/sales");

    json_error(http.get(store.url("/no/such/path")), 404, "not_found");
    let wrong = http
        .request(Method::DELETE, &sales)
        .send()
        .expect("answers");
    assert_eq!(
        wrong.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST"),
        "a 405 says which method is allowed"
    );
    json_error(
        http.request(Method::DELETE, &sales),
        405,
        "method_not_allowed",
    );
    json_error(http.get(store.url("/v1/lanes/%FF")), 400, "bad_path");
    json_error(http.get(store.url("/v1/members/%FF%FE")), 400, "bad_path");
    json_error(
        http.post(&sales)
            .header("content-type", "text/plain")
            .body(r#"{"receipt_id":"r1","total_cents":100}"#),
        415,
        "unsupported_media_type",
    );
    json_error(
        http.post(&sales)
            .header("content-type", "application/json")
            .body("{not json"),
        400,
        "bad_json",
    );
    json_error(
        http.post(&sales)
            .header("content-type", "application/json")
            .body(r#"{"total_cents":100}"#),
        400,
        "bad_json",
    );
    // Neither a total nor lines: the sale says what it needs.
    json_error(
        http.post(&sales)
            .header("content-type", "application/json")
            .body(r#"{"receipt_id":"r1"}"#),
        400,
        "bad_total",
    );
    let huge = format!(
        r#"{{"receipt_id":"{}","total_cents":1}}"#,
        "x".repeat(3 << 20)
    );
    json_error(
        http.post(&sales)
            .header("content-type", "application/json")
            .body(huge),
        413,
        "body_too_large",
    );
    // The handlers' own errors keep their codes.
    json_error(http.get(store.url("/v1/lanes/9")), 404, "unknown_lane");
}

#[test]
fn hq_answers_every_error_in_json() {
    let hq = Hq::start();
    let http = Client::new();
    let url = |path: &str| format!("{}{path}", hq.url());

    json_error(http.get(url("/no/such/path")), 404, "not_found");
    json_error(
        http.request(Method::DELETE, url("/healthz")),
        405,
        "method_not_allowed",
    );
    json_error(
        http.get(url("/v1/admin/members/%FF"))
            .bearer_auth(ADMIN_TOKEN),
        400,
        "bad_path",
    );
    json_error(
        http.put(url("/v1/admin/members/m1"))
            .bearer_auth(ADMIN_TOKEN)
            .body("{not json"),
        400,
        "bad_request",
    );
    json_error(
        http.put(url("/v1/admin/campaigns/c1"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"x":"{}"}}"#, "x".repeat(17 << 20))),
        413,
        "body_too_large",
    );
    json_error(
        http.get(url("/v1/admin/reconciliation")),
        401,
        "unauthorized",
    );
}
