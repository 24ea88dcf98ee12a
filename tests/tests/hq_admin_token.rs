//! Where `loyalty-hq serve` takes its admin token from: a file or the environment, so the
//! token is not on the command line for anyone who lists processes (`ps`) to read; the old
//! `--admin-token` still works, with a warning.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loyalty_e2e::hq_binary;

const TOKEN: &str = "admin-token-nobody-may-see-0123";

struct Running {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The status of an admin request with `token`.
    fn admin_status(&self, token: &str) -> u16 {
        reqwest::blocking::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/v1/admin/reconciliation",
                self.port
            ))
            .bearer_auth(token)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// What `ps` shows of the process: its command line.
    fn command_line(&self) -> String {
        std::fs::read(format!("/proc/{}/cmdline", self.child.id()))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts HQ with `setup` adding the token's source, and waits until it answers.
fn start(setup: impl FnOnce(&mut Command, &std::path::Path)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = loyalty_e2e::free_port();
    let log = dir.path().join("hq.log");
    let mut cmd = Command::new(hq_binary());
    cmd.args(["serve", "--db"])
        .arg(dir.path().join("hq.db"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("LOYALTY_HQ_ADMIN_TOKEN")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    setup(&mut cmd, dir.path());
    let running = Running {
        child: cmd.spawn().expect("spawning loyalty-hq"),
        port,
        log,
        _dir: dir,
    };
    loyalty_e2e::wait_until(
        Duration::from_secs(20),
        "HQ answering",
        || running.admin_status("probe") == 401,
        || running.log(),
    );
    running
}

#[test]
fn the_admin_token_from_the_environment_is_not_on_the_command_line() {
    let hq = start(|cmd, _| {
        cmd.env("LOYALTY_HQ_ADMIN_TOKEN", TOKEN);
    });
    assert_eq!(hq.admin_status(TOKEN), 200);
    assert_eq!(hq.admin_status("not-the-admin-token-0123"), 401);
    assert!(!hq.command_line().contains(TOKEN), "{}", hq.command_line());
    assert!(!hq.log().contains(TOKEN), "the token is in the log");
}

#[test]
fn the_admin_token_from_a_file_is_not_on_the_command_line() {
    let hq = start(|cmd, dir| {
        let file = dir.join("admin-token");
        std::fs::write(&file, format!("{TOKEN}\n")).expect("token file");
        cmd.arg("--admin-token-file").arg(file);
    });
    assert_eq!(hq.admin_status(TOKEN), 200);
    assert!(!hq.command_line().contains(TOKEN), "{}", hq.command_line());
    assert!(!hq.log().contains("--admin-token shows"), "{}", hq.log());
}

#[test]
fn the_admin_token_on_the_command_line_still_works_with_a_warning() {
    let hq = start(|cmd, _| {
        cmd.args(["--admin-token", TOKEN]);
    });
    assert_eq!(hq.admin_status(TOKEN), 200);
    let log = hq.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("--admin-token shows the admin token")),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is in the log");
}

#[test]
fn without_an_admin_token_hq_does_not_start_and_says_how_to_give_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(hq_binary())
        .args(["serve", "--db"])
        .arg(dir.path().join("hq.db"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("LOYALTY_HQ_ADMIN_TOKEN")
        .output()
        .expect("running loyalty-hq");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOYALTY_HQ_ADMIN_TOKEN") && stderr.contains("--admin-token-file"),
        "{stderr}"
    );
}
