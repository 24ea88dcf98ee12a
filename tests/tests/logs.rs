//! Logs never stop the agent (issue 11): with stderr a pipe nobody reads (full) or whose reader
//! has gone, the agent still answers and stops on SIGTERM within seconds.

use loyalty_e2e::{Agent, Store};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
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
