//! The agent under systemd's notify protocol, with the socket and watchdog variables systemd
//! sets: READY=1 once it serves, WATCHDOG=1 at half the period while its ledger writer answers,
//! STOPPING=1 on SIGTERM (then exit 0).

use loyalty_e2e::Store;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn next_message(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let mut buf = [0u8; 512];
    let left = deadline.checked_duration_since(Instant::now())?;
    socket
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn the_agent_says_ready_pets_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    // systemd names the main process in WATCHDOG_PID; `exec` keeps the shell's pid for the agent.
    let mut agent = std::process::Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\""])
        .arg(loyalty_e2e::agent_binary())
        .arg(&store.config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3)
    {
        match next_message(&socket, deadline) {
            Some(m) => seen.push(m),
            None => panic!("no READY=1 and three WATCHDOG=1 in time; got {seen:?}"),
        }
    }
    let ready = seen.iter().position(|m| m.contains("READY=1"));
    let first_pet = seen.iter().position(|m| m.contains("WATCHDOG=1"));
    assert!(ready < first_pet, "ready before the first pet: {seen:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = agent.wait().expect("waiting for the agent");
    assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");
    let mut tail = Vec::new();
    while let Some(m) = next_message(&socket, Instant::now() + Duration::from_secs(2)) {
        tail.push(m);
    }
    assert!(
        tail.iter().any(|m| m.contains("STOPPING=1")),
        "STOPPING=1 on SIGTERM: {tail:?}"
    );
}
