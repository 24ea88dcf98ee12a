//! How a commit reaches the disk: SQLite is built with `HAVE_FDATASYNC` (`.cargo/config.toml`),
//! as its own `./configure` builds it on Linux, so a durable commit syncs the WAL with
//! fdatasync(2). The bundled build's default, fsync(2), also journals the WAL's modification
//! time on every commit, which a till's sale would wait for. Watched with strace over a real
//! `loyalty-agent members import`, whose commit is durable.

use std::path::Path;
use std::process::Command;

#[test]
fn a_durable_commit_syncs_the_wal_with_fdatasync_not_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[store]\nid = \"store-s\"\ndata_dir = \"data\"\n").unwrap();
    let members = dir.path().join("members.json");
    std::fs::write(
        &members,
        r#"[{"member_id": "m1", "cards": ["4006381333931"]}]"#,
    )
    .unwrap();
    let trace = dir.path().join("syncs.txt");
    let out = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_loyalty-agent"))
        .args(["members", "import", "--config"])
        .arg(&config)
        .arg(&members)
        .current_dir(dir.path())
        .output()
        .expect("running strace (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "the import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let syncs = std::fs::read_to_string(&trace).unwrap();
    let on_wal = |call: &str| {
        syncs
            .lines()
            .filter(|l| l.contains(&format!("{call}(")) && l.contains("ledger.db-wal>"))
            .count()
    };
    assert!(
        on_wal("fdatasync") > 0,
        "no fdatasync of the WAL, so the commit was not durable or used another call:\n{syncs}"
    );
    assert_eq!(
        on_wal("fsync"),
        0,
        "the WAL was synced with fsync:\n{syncs}"
    );
    assert!(Path::new(&dir.path().join("data/ledger.db")).exists());
}
