//! `loyalty-agent doctor` against a real HQ (the reference server, in-process on loopback):
//! a broken set-up names each problem on its own line and exits 1; a healthy one exits 0.
//! Tried: a scanner port that does not exist, a store token HQ refuses, a data dir that cannot
//! be created (its parent is a file: permissions alone would not stop root).

use serialport::{SerialPort, TTYPort};
use std::path::Path;
use std::process::Command;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "doctor-admin-token-0123";
const STORE_TOKEN: &str = "store-x-token";

async fn start_hq(dir: &Path) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let settings = loyalty_hq::config::Settings {
        listen,
        db: dir.join("hq.db"),
        admin_token: ADMIN.into(),
        max_batch_events: 5000,
        max_body_bytes: 1 << 20,
        allowance: Default::default(),
        plausibility: Default::default(),
        max_connections: 4096,
        webhooks: Default::default(),
        app: Default::default(),
    };
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(loyalty_hq::serve(settings, listener, async move {
        s.cancelled().await
    }));
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let put = client
            .put(format!("{base}/v1/admin/stores/store-x"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"token": STORE_TOKEN}))
            .send()
            .await;
        if put.is_ok_and(|r| r.status().is_success()) {
            return (base, stop);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("HQ did not start");
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
    let (hq, stop) = start_hq(dir.path()).await;

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
    assert!(line("FAIL data dir").contains("cannot create"), "{out}");
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
    stop.cancel();
}
