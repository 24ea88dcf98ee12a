//! `loyalty-agent doctor` against a real HQ (the reference server, in-process on loopback):
//! a broken set-up names each problem on its own line and exits 1; a healthy one exits 0.
//! Tried: a scanner port that does not exist, a store token HQ refuses, a data dir that cannot
//! be created (its parent is a file: permissions alone would not stop root).

use loyalty_sim::hq::LocalHq;
use serialport::{SerialPort, TTYPort};
use std::path::Path;
use std::process::Command;

const ADMIN: &str = "doctor-admin-token-0123";
const STORE_TOKEN: &str = "store-x-token";

/// HQ in-process with store-x registered.
async fn start_hq(dir: &Path) -> LocalHq {
    let hq = LocalHq::start(
        "127.0.0.1:0".parse().unwrap(),
        &dir.join("hq.db"),
        ADMIN,
        |raw| {
            raw.max_body_bytes = Some(1 << 20);
        },
    )
    .await
    .unwrap();
    let (status, body) = hq
        .admin_put(
            "/v1/admin/stores/store-x",
            serde_json::json!({"token": STORE_TOKEN}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    hq
}

fn doctor(config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loyalty-agent"))
        .args(["doctor", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn config(dir: &Path, data_dir: &str, hq: &str, token: &str, scanner: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nid = \"store-x\"\ndata_dir = \"{data_dir}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
             [hq]\nurl = \"{hq}\"\ntoken = \"{token}\"\n\n[[lanes]]\nid = \"1\"\nscanner = {{ port = \"{scanner}\" }}\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_setup_names_each_problem_and_a_healthy_one_passes() {
    let dir = tempfile::tempdir().unwrap();
    let local_hq = start_hq(dir.path()).await;
    let hq = local_hq.url.clone();

    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where the data dir should be").unwrap();
    let broken = config(
        dir.path(),
        &blocker.join("data").display().to_string(),
        &hq,
        "somebody-elses-token",
        "/dev/ttyLOYALTY-missing",
    );
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&broken))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"))
            .to_owned()
    };
    assert!(
        line("FAIL data dir").contains("not-a-dir is a file, not a directory"),
        "{out}"
    );
    assert!(
        line("FAIL scanner lane 1").contains("/dev/ttyLOYALTY-missing is missing"),
        "{out}"
    );
    assert!(
        line("FAIL hq token").contains("refused the store token"),
        "{out}"
    );

    let (_master, slave) = TTYPort::pair().unwrap();
    let healthy = config(
        dir.path(),
        &dir.path().join("data").display().to_string(),
        &hq,
        STORE_TOKEN,
        &slave.name().unwrap(),
    );
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&healthy))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().all(|l| l.starts_with("ok ")), "{out}");
    for check in [
        "config",
        "data dir",
        "ledger",
        "scanner lane 1",
        "hq",
        "clock skew",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("ok   {check}:"))),
            "no {check} line in:\n{out}"
        );
    }
    local_hq.stop().await.unwrap();
}
