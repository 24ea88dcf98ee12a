//! The bulk member import (`POST /v1/admin/imports/members`) and `loyalty-hq import-members`.

mod common;

use std::time::{Duration, Instant};

use common::{sale, Hq, ADMIN};
use loyalty_protocol::{Change, ChangesPage};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

async fn import(hq: &Hq, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = hq
        .http
        .post(format!("{}/v1/admin/imports/members", hq.url))
        .bearer_auth(ADMIN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ndjson(rows: &[&str]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

#[tokio::test]
async fn a_valid_file_saves_every_member_and_the_stores_pull_them() {
    let hq = Hq::start().await;
    let token = hq.add_store("s1").await;
    let body: String = (0..12_000)
        .map(|i| {
            format!(
                "{{\"member_id\":\"m{i}\",\"tier\":\"gold\",\"segments\":[\"vip\"],\"cards\":[\"c-{i:06}\"],\"display_name\":\"Member {i}\"}}\n"
            )
        })
        .collect();
    let (s, summary) = import(&hq, "application/x-ndjson", body).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["accepted"], 12_000);
    assert_eq!(summary["refused"], 0);
    let m = hq.member("m11999").await;
    assert_eq!(m["cards"], serde_json::json!(["C-011999"]));
    assert_eq!(m["display_name"], "Member 11999");

    // Every imported member reaches a store through its changes feed.
    let mut cursor = String::new();
    let mut seen = 0;
    loop {
        let (s, page) = hq
            .changes("s1", &token, &format!("cursor={cursor}&limit=5000"))
            .await;
        assert_eq!(s, 200);
        let page: ChangesPage = serde_json::from_value(page).unwrap();
        seen += page.changes.len();
        cursor = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, 12_000);
    hq.stop().await;
}

#[tokio::test]
async fn bad_rows_are_refused_by_line_and_the_good_ones_saved() {
    let hq = Hq::start().await;
    let body = ndjson(&[
        r#"{"member_id":"a1","tier":"gold"}"#,
        r#"{"member_id":"a2","cards":["4006381333931"]}"#,
        "",
        r#"{"member_id":"bad id!"}"#,
        r#"{"member_id":"a3","cards":["4006381333930"]}"#,
        r#"{"member_id":"a4","qr_public_key":"not-a-key"}"#,
        r#"{"member_id":"a5","card":["123456"]}"#,
        "[1, 2]",
        r#"{"member_id":"a6"}"#,
    ]);
    let (s, summary) = import(&hq, "application/x-ndjson", body).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["accepted"], 3, "{summary}");
    assert_eq!(summary["refused"], 5, "{summary}");
    let lines: Vec<(u64, &str)> = summary["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            (4, "bad_id"),
            (5, "bad_card"),
            (6, "bad_key"),
            (7, "bad_row"),
            (8, "bad_row")
        ]
    );
    assert_eq!(summary["refused_by_reason"]["bad_row"], 2);
    assert_eq!(summary["refusals"][1]["member_id"], "a3");
    for m in ["a1", "a2", "a6"] {
        hq.member(m).await;
    }
    let (s, _) = hq.admin_get("/v1/admin/members/a3").await;
    assert_eq!(s, 404);
    hq.stop().await;
}

#[tokio::test]
async fn a_csv_with_quoting_is_read_and_a_reimport_replaces() {
    let hq = Hq::start().await;
    hq.add_member("c1", &["OLD-CARD-1"]).await;
    let csv = "member_id,tier,cards,segments,display_name\r\n\
               c1,silver,4006381333931;CARD-7,\"vip;family\",\"Smith, Jo\"\r\n\
               c2,,,,\"Say \"\"hi\"\"\nto Jo\"\r\n\
               c3,gold,12,,Too short a card\r\n";
    let (s, summary) = import(&hq, "text/csv; charset=utf-8", csv).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["accepted"], 2, "{summary}");
    assert_eq!(summary["refusals"][0]["line"], 5, "{summary}");
    assert_eq!(summary["refusals"][0]["error"], "bad_card");
    let c1 = hq.member("c1").await;
    assert_eq!(c1["tier"], "silver");
    // Replaced, as by the PUT: the old card is no longer the member's.
    assert_eq!(c1["cards"], serde_json::json!(["4006381333931", "CARD-7"]));
    assert_eq!(c1["segments"], serde_json::json!(["vip", "family"]));
    assert_eq!(c1["display_name"], "Smith, Jo");
    let c2 = hq.member("c2").await;
    assert_eq!(c2["display_name"], "Say \"hi\"\nto Jo");
    assert_eq!(c2["tier"], Value::Null);

    let (s, body) = import(&hq, "text/csv", "member_id,cardz\nc9,1\n").await;
    assert_eq!(s, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("cardz"));
    hq.stop().await;
}

/// The members a store pulls after `cursor`, with their balances, and the next cursor.
async fn pulled(hq: &Hq, token: &str, cursor: &str) -> (Vec<(String, i64)>, String) {
    let (s, page) = hq
        .changes("s1", token, &format!("cursor={cursor}&limit=5000"))
        .await;
    assert_eq!(s, 200, "{page}");
    let page: ChangesPage = serde_json::from_value(page).unwrap();
    let members = page
        .changes
        .into_iter()
        .filter_map(|c| match c {
            Change::Member(m) => Some((m.member_id, m.balance)),
            _ => None,
        })
        .collect();
    (members, page.next_cursor)
}

/// On PostgreSQL a batch without repeats is saved by set statements, one with a repeat row by
/// row: both must end as the PUTs would.
#[tokio::test]
async fn an_imported_card_moves_with_its_points_and_a_repeated_member_ends_as_its_last_row() {
    let hq = Hq::start().await;
    let token = hq.add_store("s1").await;
    hq.add_member("old", &["CARD-8"]).await;
    hq.add_member("kept", &["CARD-9"]).await;
    let card = loyalty_protocol::card_account("CARD-8");
    hq.push("s1", &token, &[sale("s1", 1, &card, 40, "r1")])
        .await;
    assert_eq!(hq.balance("old").await, 40);
    let (_, cursor) = pulled(&hq, &token, "").await;

    let body = ndjson(&[
        r#"{"member_id":"new","cards":["CARD-8"]}"#,
        r#"{"member_id":"other","tier":"gold","cards":["CARD-10"]}"#,
    ]);
    let (s, summary) = import(&hq, "application/x-ndjson", body).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["accepted"], 2, "{summary}");
    assert_eq!(hq.balance("new").await, 40);
    assert_eq!(hq.balance("old").await, 0);
    assert_eq!(hq.member("old").await["cards"], serde_json::json!([]));
    assert_eq!(
        hq.member("kept").await["cards"],
        serde_json::json!(["CARD-9"])
    );
    // The member who lost the card changed too: the stores pull its new balance.
    let (mut members, cursor) = pulled(&hq, &token, &cursor).await;
    members.sort();
    assert_eq!(
        members,
        vec![("new".into(), 40), ("old".into(), 0), ("other".into(), 0)]
    );

    let body = ndjson(&[
        r#"{"member_id":"twice","tier":"bronze","cards":["CARD-9"]}"#,
        r#"{"member_id":"twice","tier":"gold"}"#,
    ]);
    let (s, summary) = import(&hq, "application/x-ndjson", body).await;
    assert_eq!(s, 200, "{summary}");
    let twice = hq.member("twice").await;
    assert_eq!(twice["tier"], "gold");
    assert_eq!(twice["cards"], serde_json::json!([]));
    // Taken by the first row, the card is nobody's after the second.
    assert_eq!(hq.member("kept").await["cards"], serde_json::json!([]));
    let (members, _) = pulled(&hq, &token, &cursor).await;
    assert!(members.contains(&("kept".into(), 0)), "{members:?}");
    assert!(members.contains(&("twice".into(), 0)), "{members:?}");
    hq.stop().await;
}

#[tokio::test]
async fn a_row_too_large_is_refused_and_the_rest_saved() {
    let hq = Hq::start().await;
    let huge = "x".repeat(loyalty_hq::http::MAX_ROW_BYTES + 1);
    let body = ndjson(&[
        r#"{"member_id":"t1"}"#,
        &format!(r#"{{"member_id":"t2","display_name":"{huge}"}}"#),
        r#"{"member_id":"t3"}"#,
    ]);
    let (s, summary) = import(&hq, "application/x-ndjson", body).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["accepted"], 2);
    assert_eq!(summary["refusals"][0]["line"], 2);
    assert_eq!(summary["refusals"][0]["error"], "row_too_large");
    hq.member("t3").await;
    hq.stop().await;
}

#[tokio::test]
async fn an_upload_cut_mid_way_keeps_whole_rows_only() {
    let hq = Hq::start().await;
    let addr = hq.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let rows = ndjson(&[r#"{"member_id":"k1"}"#, r#"{"member_id":"k2"}"#]);
    let partial = r#"{"member_id":"k3","tier":"go"#;
    let head = format!(
        "POST /v1/admin/imports/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(rows.as_bytes()).await.unwrap();
    conn.write_all(partial.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = hq.admin_get("/v1/admin/members/k2").await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the whole rows were not saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hq.member("k1").await;
    let (s, _) = hq.admin_get("/v1/admin/members/k3").await;
    assert_eq!(s, 404, "a partial row must not be saved");
    hq.stop().await;
}

#[tokio::test]
async fn the_route_wants_the_admin_token_and_a_known_format() {
    let hq = Hq::start().await;
    let r = hq
        .http
        .post(format!("{}/v1/admin/imports/members", hq.url))
        .header("content-type", "text/csv")
        .body("member_id\nx\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, body) = import(&hq, "application/json", "{}").await;
    assert_eq!(s, 415, "{body}");
    assert_eq!(body["error"], "unsupported_media_type");
    hq.stop().await;
}

#[tokio::test]
async fn the_command_sends_a_file_and_says_what_was_refused() {
    let hq = Hq::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{ADMIN}\n")).unwrap();
    let file = dir.path().join("members.csv");
    std::fs::write(&file, "member_id,tier\nf1,gold\nf 2,gold\n").unwrap();
    let url = hq.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loyalty-hq"))
            .arg("import-members")
            .arg(&file)
            .args(["--url", &url, "--admin-token-file"])
            .arg(&token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 members saved, 1 rows refused"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: bad_id (f 2)"), "{stdout}");
    assert!(stderr.contains("1 rows were refused"), "{stderr}");
    assert_eq!(hq.member("f1").await["tier"], "gold");
    hq.stop().await;
}
