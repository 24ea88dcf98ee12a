//! `loyalty-agent check-config` on a store's time zone, as an operator runs it after editing
//! agent.toml: a zone name that is not one exits 2 naming the key, its line and column, and the
//! form to write; a real one passes; the deprecated fixed offset passes with a note.

use std::path::Path;
use std::process::Command;

fn check_config(dir: &Path, store_keys: &str) -> (i32, String, String) {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!("[store]\nid = \"store-tz\"\ndata_dir = \"data\"\n{store_keys}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loyalty-agent"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_an_iana_zone_and_refuses_a_misspelt_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check_config(dir.path(), "time_zone = \"Europe/Amsterdam\"");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("agent.toml: ok\n"), "{stdout}");

    let (code, _, stderr) = check_config(dir.path(), "time_zone = \"Europe/Amsterdm\"");
    assert_eq!(code, 78, "an invalid config exits 78 (EX_CONFIG): {stderr}");
    let expected = format!(
        "{}:4:13: store.time_zone: `Europe/Amsterdm` is not an IANA time zone name: write one \
         like \"Europe/Amsterdam\" (`timedatectl list-timezones` lists them)\n",
        dir.path().join("agent.toml").display()
    );
    assert_eq!(stderr, expected);
}

#[test]
fn check_config_still_accepts_the_deprecated_utc_offset_but_not_with_a_zone() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check_config(dir.path(), "utc_offset = \"+01:00\"");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("agent.toml: ok\n"), "{stdout}");
    assert!(
        stderr.contains("note: store.utc_offset is deprecated")
            && stderr.contains("store.time_zone"),
        "{stderr}"
    );

    let (code, _, stderr) = check_config(
        dir.path(),
        "time_zone = \"Europe/Amsterdam\"\nutc_offset = \"+01:00\"",
    );
    assert_eq!(code, 78, "an invalid config exits 78 (EX_CONFIG): {stderr}");
    assert!(
        stderr.contains(
            ":5:14: give `store.time_zone` or the deprecated `store.utc_offset`, not both"
        ),
        "{stderr}"
    );
}
