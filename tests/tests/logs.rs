//! Logs never stop the agent and fit collectors (issue 11): with stderr a pipe nobody reads
//! (full) or whose reader has gone, the agent still answers and stops on SIGTERM within
//! seconds; on a pipe there is no ANSI colour; `--log-format json` gives one JSON object a line,
//! for `loyalty-agent` and `loyalty-hq`; fields hold values, not Rust debug text.

use loyalty_e2e::{hq_binary, Agent, Store, ADMIN_TOKEN};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LANE: &str = "[[lanes]]\nid = \"1\"\n";

/// SIGTERM, then the exit code if the process exits within `limit`.
fn stop_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Logs a line or more: a sale and a look at the lane.
fn make_a_sale(store: &Store, receipt: &str) {
    let (status, body) = store.post(
        "/v1/lanes/1/sales",
        &json!({"receipt_id": receipt, "total_cents": 1000, "card": "LOG-CARD-1"}),
    );
    assert_eq!(status, 200, "a sale answers: {body}");
}

/// A pipe whose write end is full: the smallest pipe the kernel gives, filled to the brim.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(4096));
    fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("nonblocking");
    let mut file = std::fs::File::from(write.try_clone().expect("dup"));
    while file.write(&[b'x'; 512]).is_ok_and(|n| n > 0) {}
    // The agent gets the same pipe blocking, as a shell would give it.
    fcntl(&write, FcntlArg::F_SETFL(OFlag::empty())).expect("blocking");
    (read, write)
}

#[test]
fn a_full_stderr_pipe_neither_blocks_the_api_nor_stopping() {
    let store = Store::new(LANE);
    let (_reader_that_never_reads, write) = full_pipe();
    let mut agent: Agent = store.start_with(|c| {
        c.stderr(Stdio::from(write));
    });
    for i in 0..20 {
        make_a_sale(&store, &format!("full-{i}"));
    }
    assert_eq!(
        stop_within(&mut agent.child, Duration::from_secs(5)),
        Some(0),
        "SIGTERM stops the agent cleanly within 5 s"
    );
}

#[test]
fn a_stderr_pipe_whose_reader_has_gone_neither_blocks_the_api_nor_stopping() {
    let store = Store::new(LANE);
    let (read, write) = nix::unistd::pipe().expect("pipe");
    // `loyalty-agent run ... 2>&1 | head -1`: the reader is gone once it had its line.
    drop(read);
    let mut agent: Agent = store.start_with(|c| {
        c.stderr(Stdio::from(write));
    });
    make_a_sale(&store, "gone-1");
    make_a_sale(&store, "gone-2");
    assert_eq!(
        stop_within(&mut agent.child, Duration::from_secs(5)),
        Some(0),
        "SIGTERM stops the agent cleanly within 5 s"
    );
}

/// Everything the child wrote to stderr until it exits, read on a thread.
fn drain(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    })
}

fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

#[test]
fn the_agent_logs_plain_text_and_json_on_a_pipe() {
    for format in ["text", "json"] {
        let store = Store::new(LANE);
        let mut agent = store.start_with(|c| {
            c.args(["--log-format", format])
                .env_remove("NO_COLOR")
                .env("RUST_LOG", "info")
                .stderr(Stdio::piped());
        });
        let log = drain(&mut agent.child);
        make_a_sale(&store, "log-1");
        assert_eq!(
            stop_within(&mut agent.child, Duration::from_secs(10)),
            Some(0)
        );
        let log = log.join().expect("stderr reader");
        assert!(!log.contains('\x1b'), "no ANSI escapes on a pipe:\n{log}");
        assert!(
            !log.contains("Some("),
            "values, not Rust debug text:\n{log}"
        );
        let address = format!("127.0.0.1:{}", store.port);
        if format == "json" {
            let lines = json_lines(&log);
            let serving = lines
                .iter()
                .find(|l| l["fields"]["message"] == "Agent serving.")
                .unwrap_or_else(|| panic!("an `Agent serving.` line:\n{log}"));
            assert_eq!(serving["fields"]["address"], address, "{serving}");
            let sale = lines
                .iter()
                .find(|l| l["fields"]["message"] == "Sale recorded.")
                .unwrap_or_else(|| panic!("a `Sale recorded.` line:\n{log}"));
            assert_eq!(sale["fields"]["receipt"], "log-1", "{sale}");
            assert!(
                sale["fields"].get("member").is_none(),
                "no member, no field: {sale}"
            );
        } else {
            assert!(
                log.contains(&format!("address={address}")),
                "the address as a value:\n{log}"
            );
        }
    }
}

#[test]
fn hq_logs_json_on_a_pipe_and_admin_puts_only_at_debug() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = loyalty_e2e::free_port();
    let mut hq = Command::new(hq_binary())
        .args(["--log-format", "json", "serve", "--db"])
        .arg(dir.path().join("hq.db"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("LOYALTY_HQ_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning loyalty-hq");
    let log = drain(&mut hq);
    let client = reqwest::blocking::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    loyalty_e2e::wait_until(
        Duration::from_secs(20),
        "HQ answering",
        || client.get(url("/healthz")).send().is_ok(),
        String::new,
    );
    for i in 0..5 {
        let status = client
            .put(url(&format!("/v1/admin/members/m-{i}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"tier": "gold"}))
            .send()
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200));
    }
    assert_eq!(stop_within(&mut hq, Duration::from_secs(10)), Some(0));
    let log = log.join().expect("stderr reader");
    assert!(!log.contains('\x1b'), "no ANSI escapes on a pipe:\n{log}");
    let lines = json_lines(&log);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "HQ serving."),
        "{log}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["fields"]["message"] == "Saved member."),
        "admin PUTs log at debug, not info:\n{log}"
    );
}
