//! Idle and half-sent connections cannot lock the tills out (issue 11): with the server's
//! open-file limit at 1024, 2,000 connections that never finish a request leave `/healthz` and
//! a sale (an admin request on HQ) answering within 100 ms, and a half-sent request is closed
//! after the header timeout.

use loyalty_e2e::{hq_binary, Store, ADMIN_TOKEN};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_FILE_LIMIT: u64 = 1024;
const FLOOD: usize = 2_000;

/// The server process gets RLIMIT_NOFILE 1024, soft and hard: it cannot raise it.
fn limit_open_files(command: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's state.
    unsafe {
        command.pre_exec(|| {
            setrlimit(
                Resource::RLIMIT_NOFILE,
                SERVER_FILE_LIMIT,
                SERVER_FILE_LIMIT,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// This test process holds 2,000 sockets, more than a default soft limit.
fn raise_own_file_limit() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(
        hard >= FLOOD as u64 + 256,
        "the test needs {} open files",
        FLOOD + 256
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raising the test's file limit");
}

/// A third of the connections send nothing, a third stop in the middle of their headers, a
/// third send complete headers and stop in the middle of the body.
fn flood(addr: SocketAddr, path: &str) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .expect("connecting a flood connection");
        match i % 3 {
            0 => {}
            1 => {
                let _ = s.write_all(format!("POST {path} HTTP/1.1\r\nhost: x\r\n").as_bytes());
            }
            _ => {
                let _ = s.write_all(
                    format!(
                        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"receipt"
                    )
                    .as_bytes(),
                );
            }
        }
        held.push(s);
    }
    held
}

/// How many flood connections the server still holds open (the rest it closed or refused).
fn still_open(held: &[TcpStream]) -> usize {
    held.iter()
        .filter(|s| {
            let mut s: &TcpStream = s;
            s.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 256];
            matches!(s.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count()
}

/// The fastest of three tries of `request`, each of which must succeed; the fastest because
/// the test shares two cores with whatever else runs, and a single scheduling hiccup is not
/// what the flood is about.
fn best_of_three(mut request: impl FnMut(usize) -> u16) -> Duration {
    (0..3)
        .map(|i| {
            let start = Instant::now();
            let status = request(i);
            let took = start.elapsed();
            assert_eq!(status, 200, "try {i} answered {status}");
            took
        })
        .min()
        .unwrap_or(Duration::MAX)
}

/// A client without a connection pool: every request opens a new connection, as a till that
/// lost its keep-alive connection to the flood would.
fn fresh_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

#[test]
fn two_thousand_waiting_connections_leave_the_agent_answering_tills() {
    raise_own_file_limit();
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    let _agent = store.start_with(limit_open_files);
    let addr = SocketAddr::from(([127, 0, 0, 1], store.port));
    let held = flood(addr, "/v1/lanes/1/sales");
    let client = fresh_client();

    let health = best_of_three(|_| {
        client
            .get(store.url("/healthz"))
            .send()
            .map_or(0, |r| r.status().as_u16())
    });
    let sale = best_of_three(|i| {
        client
            .post(store.url("/v1/lanes/1/sales"))
            .json(&serde_json::json!({"receipt_id": format!("flood-{i}"), "total_cents": 1250, "card": "FLOOD-CARD-1"}))
            .send()
            .map_or(0, |r| r.status().as_u16())
    });
    let open = still_open(&held);
    println!(
        "agent under {FLOOD} waiting connections: healthz {health:?}, sale {sale:?}, {open} flood connections held"
    );
    assert!(
        health < Duration::from_millis(100),
        "healthz took {health:?}"
    );
    assert!(sale < Duration::from_millis(100), "a sale took {sale:?}");
    assert!(
        open > 0 && open < SERVER_FILE_LIMIT as usize,
        "the agent holds as many waiting connections as its limit allows, no more: {open}"
    );
    let log = store.log();
    assert!(
        !log.contains("Too many open files"),
        "the agent ran out of descriptors:\n{log}"
    );
}

#[test]
fn two_thousand_waiting_connections_leave_hq_answering() {
    raise_own_file_limit();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = loyalty_e2e::free_port();
    let log_path = dir.path().join("hq.log");
    let mut command = Command::new(hq_binary());
    command
        .args(["serve", "--db"])
        .arg(dir.path().join("hq.db"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("LOYALTY_HQ_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"));
    limit_open_files(&mut command);
    let mut hq = command.spawn().expect("spawning loyalty-hq");
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let client = fresh_client();
    loyalty_e2e::wait_until(
        Duration::from_secs(20),
        "HQ answering",
        || client.get(url("/healthz")).send().is_ok(),
        || std::fs::read_to_string(&log_path).unwrap_or_default(),
    );
    let held = flood(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/v1/stores/s/events",
    );

    let health = best_of_three(|_| {
        client
            .get(url("/healthz"))
            .send()
            .map_or(0, |r| r.status().as_u16())
    });
    let admin = best_of_three(|i| {
        client
            .put(url(&format!("/v1/admin/stores/store-{i}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"token": format!("store-token-{i}-0123456789")}))
            .send()
            .map_or(0, |r| r.status().as_u16())
    });
    let open = still_open(&held);
    let _ = hq.kill();
    let _ = hq.wait();
    println!(
        "HQ under {FLOOD} waiting connections: healthz {health:?}, admin PUT {admin:?}, {open} flood connections held"
    );
    assert!(
        health < Duration::from_millis(100),
        "healthz took {health:?}"
    );
    assert!(
        admin < Duration::from_millis(100),
        "an admin PUT took {admin:?}"
    );
    assert!(
        open > 0 && open < SERVER_FILE_LIMIT as usize,
        "held: {open}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("Too many open files"), "{log}");
}

#[test]
fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    let _agent = store.start();
    let mut slow = TcpStream::connect(("127.0.0.1", store.port)).expect("connecting");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .expect("half a request");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let read = slow.read(&mut buf);
    let took = start.elapsed();
    assert!(
        matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the server closes the connection: {read:?}"
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(12),
        "closed after the 10 s header timeout, not {took:?}"
    );
}
