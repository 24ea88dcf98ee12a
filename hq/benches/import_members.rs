//! Bulk member import (README "Importing members"): generates `BENCH_MEMBERS` members
//! (1,000,000 by default) as an NDJSON file, each with a tier, two segments, a card and a
//! display name, starts a real `loyalty-hq` on a fresh SQLite database and sends the file
//! through the real HTTP route with the `import-members` client, then prints members/s.
//!
//! `cargo bench -p loyalty-hq --bench import_members` (release build; not part of the tests).

use std::io::Write;
use std::time::Instant;

const ADMIN: &str = "bench-admin-token-0123456789";

fn main() {
    let members: u64 = std::env::var("BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("members.ndjson");
    let made = Instant::now();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("members file"));
        for i in 0..members {
            writeln!(
                out,
                r#"{{"member_id":"m{i:07}","tier":"{}","segments":["newsletter","s{}"],"cards":["C{i:09}"],"display_name":"Member {i}"}}"#,
                ["bronze", "silver", "gold"][(i % 3) as usize],
                i % 50
            )
            .expect("write members");
        }
        out.flush().expect("flush members");
    }
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "generated {members} members ({:.0} MiB) in {:.1} s",
        bytes as f64 / 1048576.0,
        made.elapsed().as_secs_f64()
    );

    // SQLite, or with LOYALTY_HQ_TEST_BACKEND=postgres a fresh database of a throwaway cluster.
    let db = loyalty_sim::pg::test_database(dir.path()).expect("a database");
    println!("database: {}", db.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let summary = rt.block_on(async {
        let hq = loyalty_sim::hq_process::HqProcess::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_loyalty-hq")),
            &db.to_string_lossy(),
            ADMIN,
            std::process::Stdio::inherit(),
        )
        .await
        .expect("start loyalty-hq");
        let started = Instant::now();
        let summary =
            loyalty_hq::import_client::send_file(&hq.url, ADMIN, &file, "application/x-ndjson")
                .await
                .expect("import");
        (summary, started.elapsed())
    });
    let (summary, took) = summary;
    assert_eq!(summary.accepted, members, "{summary:?}");
    assert_eq!(summary.refused, 0, "{summary:?}");
    let secs = took.as_secs_f64();
    println!(
        "imported {} members in {secs:.1} s: {:.0} members/s (goal: 1,000,000 in under 60 s)",
        summary.accepted,
        summary.accepted as f64 / secs
    );
}
