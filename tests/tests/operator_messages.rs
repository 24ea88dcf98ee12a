//! What store IT reads when something is set up wrong, each the way they would meet it: every
//! message names the key or path once, says what is wrong in plain words and what to do.

use loyalty_e2e::{agent_binary, free_port, Hq, Store};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

const STORE: &str = "store-msg";
const TOKEN: &str = "store-msg-token-0001";

fn agent(args: &[&str], store: &Store) -> Output {
    Command::new(agent_binary())
        .args(args)
        .arg("--config")
        .arg(&store.config)
        .output()
        .expect("running loyalty-agent")
}

fn all(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `doctor` line of check `name`.
fn doctor_line(store: &Store, name: &str) -> String {
    let out = agent(&["doctor"], store);
    let text = all(&out);
    text.lines()
        .find(|l| l.starts_with(&format!("FAIL {name}:")))
        .unwrap_or_else(|| panic!("no failing `{name}` check in:\n{text}"))
        .to_owned()
}

/// A server answering every request `404` with an empty body, as a proxy in front of nothing
/// does.
fn empty_404() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn a_wrong_hq_path_says_to_fix_hq_url() {
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    for url in [
        format!("{}/loyalty", hq.url()),
        format!("http://127.0.0.1:{}", empty_404()),
    ] {
        let store = Store::with_hq(STORE, &url, TOKEN, "", "");
        let line = doctor_line(&store, "hq");
        assert!(line.contains("answered 404 Not Found"), "{line}");
        assert!(line.contains("hq.url must be HQ's base URL"), "{line}");
        assert!(!line.contains("(404 )") && !line.ends_with(": "), "{line}");
    }
}

#[test]
fn a_store_id_hq_does_not_hold_for_the_token_says_which_key_to_fix() {
    let hq = Hq::start();
    hq.add_store(STORE, TOKEN);
    let store = Store::with_hq("store-typo", &hq.url(), TOKEN, "", "");
    let line = doctor_line(&store, "hq token");
    assert!(line.contains("set store.id"), "{line}");
    // Said once, not twice.
    assert_eq!(line.matches("another store").count(), 0, "{line}");
    assert_eq!(line.matches("403").count(), 1, "{line}");
}

#[test]
fn a_data_dir_that_is_a_file_is_called_a_file() {
    let store = Store::new("");
    std::fs::write(store.dir.path().join("data"), "").unwrap();
    let out = agent(&["run"], &store);
    assert!(!out.status.success());
    let text = all(&out);
    assert!(text.contains("is a file, not a directory"), "{text}");
    assert!(!text.contains("File exists"), "{text}");
    assert!(doctor_line(&store, "data dir").contains("is a file, not a directory"));
}

#[test]
fn a_port_in_use_names_api_listen() {
    let store = Store::new("");
    let _taken = TcpListener::bind(("127.0.0.1", store.port)).unwrap();
    let out = agent(&["run"], &store);
    assert!(!out.status.success());
    let text = all(&out);
    assert!(
        text.contains(&format!("api.listen = \"127.0.0.1:{}\"", store.port)),
        "{text}"
    );
    assert!(text.contains("already in use"), "{text}");
}

#[test]
fn a_missing_usb_scanner_points_to_ports() {
    let store = Store::new("[[lanes]]\nid = \"1\"\n[lanes.scanner]\nusb = \"0c2e:0b61\"\n");
    let line = doctor_line(&store, "scanner lane 1");
    assert!(
        line.contains("no serial port with usb 0c2e:0b61 is plugged in"),
        "{line}"
    );
    assert!(line.contains("loyalty-agent ports"), "{line}");
    assert!(!line.contains("id usb"), "{line}");
}

#[test]
fn healthz_is_degraded_while_hq_is_offline_and_still_200() {
    // An HQ that never answers: nothing listens on this port.
    let url = format!("http://127.0.0.1:{}", free_port());
    let store = Store::with_hq(STORE, &url, TOKEN, "offline_after_secs = 1", "");
    let _agent = store.start();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let r = reqwest::blocking::get(store.url("/healthz")).unwrap();
    // The tills still sell: a load balancer keeps sending them.
    assert_eq!(r.status(), 200);
    let health: Value = r.json().unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["degraded_by"], serde_json::json!(["hq"]), "{health}");
    assert_eq!(health["components"]["hq"]["state"], "offline", "{health}");
}
