//! Helpers for end-to-end tests: a real `loyalty-agent` process on a free port, with a data
//! directory, config and member file of its own; a real `loyalty-hq` ([`Hq`]); a fault proxy
//! between them ([`fault_proxy`]).

pub mod cdp;
pub mod fault_proxy;
mod hq;
pub mod sse;
pub mod webhook_receiver;

pub use hq::{AppKey, HeldFact, Hq, ADMIN_TOKEN};

use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent binary, built on demand so that `cargo test -p loyalty-e2e` works alone.
pub fn agent_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    built_binary("loyalty-agent", "loyalty-agent", &[], &BUILD)
}

/// The reference HQ binary, built on demand like [`agent_binary`].
pub fn hq_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    built_binary("loyalty-hq", "loyalty-hq", &[], &BUILD)
}

/// The zone-sensor node simulator (`loyalty-firmware`'s `sensor-sim`, feature `sim`), built on
/// demand in this test binary's profile like [`agent_binary`].
pub fn sensor_sim_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    built_binary("loyalty-firmware", "sensor-sim", &["sim"], &BUILD)
}

/// `target/<profile>`, where cargo puts the binaries it builds.
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf()
}

fn built_binary(
    package: &str,
    bin: &str,
    features: &[&str],
    once: &'static std::sync::Once,
) -> PathBuf {
    let profile_dir = target_profile_dir();
    // The target dir may be shared with other checkouts of this workspace, whose builds
    // replace target/<profile>/<bin>. Right after building, hard-link it into a directory of
    // this checkout's own, so the tests run what they built whatever is built next.
    let checkout = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        env!("CARGO_MANIFEST_DIR").hash(&mut h);
        h.finish()
    };
    let own_dir = profile_dir.join(format!("e2e-bin-{checkout:016x}"));
    let own = own_dir.join(bin);
    once.call_once(|| {
        let release = profile_dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", package, "--bin", bin]);
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building {bin} failed");
        std::fs::create_dir_all(&own_dir).expect("own binary dir");
        let _ = std::fs::remove_file(&own);
        std::fs::hard_link(profile_dir.join(bin), &own)
            .or_else(|_| std::fs::copy(profile_dir.join(bin), &own).map(|_| ()))
            .expect("linking the built binary");
    });
    own
}

/// What a member's app with proximity `key` advertises now, from the agent's own phone-side
/// generator (`loyalty-agent proximity phone`): `rotating_id`, `manufacturer_data`,
/// `advertisement` (hex), so traces carry ids the running agent resolves.
pub fn phone(key: &str) -> Value {
    let out = Command::new(agent_binary())
        .args(["proximity", "phone", "--key", key])
        .output()
        .expect("running proximity phone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("proximity phone prints JSON")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A store directory: config, data dir, member file.
pub struct Store {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config: PathBuf,
}

impl Store {
    /// `lanes_toml` is appended to a minimal config (store, api).
    pub fn new(lanes_toml: &str) -> Store {
        Store::with_sections("store-e2e", "", lanes_toml)
    }

    /// A store that syncs with HQ at `hq_url` as `store_id` with `token`; `hq_extra` is added to
    /// the `[hq]` section (e.g. `offline_after_secs = 2`), `lanes_toml` after it.
    pub fn with_hq(
        store_id: &str,
        hq_url: &str,
        token: &str,
        hq_extra: &str,
        lanes_toml: &str,
    ) -> Store {
        let hq = format!("[hq]\nurl = \"{hq_url}\"\ntoken = \"{token}\"\n{hq_extra}\n\n");
        Store::with_sections(store_id, &hq, lanes_toml)
    }

    fn with_sections(store_id: &str, middle: &str, lanes_toml: &str) -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "[store]\nid = \"{store_id}\"\ndata_dir = \"data\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\n{middle}{lanes_toml}\n"
        );
        std::fs::write(&config, text).expect("writing config");
        Store { dir, port, config }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Runs `loyalty-agent members import` with `json`.
    pub fn import(&self, json: &str) {
        let file = self.dir.path().join("members.json");
        std::fs::write(&file, json).expect("writing members");
        let out = Command::new(agent_binary())
            .args(["members", "import", "--config"])
            .arg(&self.config)
            .arg(&file)
            .output()
            .expect("running members import");
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `loyalty-agent run` and waits until `/healthz` answers.
    pub fn start(&self) -> Agent {
        self.start_with(|_| {})
    }

    /// Like [`Store::start`], letting the test adjust the command (limits, environment).
    pub fn start_with(&self, adjust: impl FnOnce(&mut Command)) -> Agent {
        let log = std::fs::File::create(self.dir.path().join("agent.log")).expect("log file");
        let mut command = Command::new(agent_binary());
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log);
        adjust(&mut command);
        let child = command.spawn().expect("spawning the agent");
        let agent = Agent { child };
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client.get(self.url("/healthz")).send().is_ok() {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the agent did not answer /healthz within 20 s; log:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// `GET path` on the agent: status and JSON body (null when not JSON or unreachable).
    pub fn get(&self, path: &str) -> (u16, Value) {
        match http().get(self.url(path)).send() {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// `POST path` with a JSON body on the agent: status and JSON body.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        match http().post(self.url(path)).json(body).send() {
            Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// `components.hq` of `/healthz`.
    pub fn hq_health(&self) -> Value {
        self.get("/healthz").1["components"]["hq"].clone()
    }

    /// HQ reachable and nothing left to push.
    pub fn synced(&self) -> bool {
        let h = self.hq_health();
        h["backlog"] == 0 && h["state"] == "online"
    }

    /// Waits up to `timeout` for [`Store::synced`]; on timeout shows healthz and the agent log.
    pub fn wait_synced(&self, timeout: Duration, what: &str) {
        wait_until(
            timeout,
            what,
            || self.synced(),
            || format!("healthz: {}\nagent log:\n{}", self.hq_health(), self.log()),
        );
    }

    /// The member's balance as this store shows it, if it knows the member.
    pub fn balance(&self, member: &str) -> Option<i64> {
        let (status, body) = self.get(&format!("/v1/members/{member}"));
        (status == 200).then(|| body["balance"].as_i64()).flatten()
    }
}

/// One client for the whole test binary: building one loads the root certificates, slow in a
/// debug build.
fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client")
    })
}

/// Polls `ok` every 50 ms until it holds; panics with `what` and `context()` after `timeout`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running agent; killed (SIGKILL) when dropped if still running.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Writes `bytes` to a pseudo-terminal master, flushing.
pub fn type_on(master: &mut impl Write, bytes: &[u8]) {
    master.write_all(bytes).expect("writing to the scanner pty");
    master.flush().expect("flushing the scanner pty");
}

/// A disk that fills up, for the process `cmd` starts: writes past `bytes` in any one file fail
/// as they do on a full disk (RLIMIT_FSIZE, with SIGXFSZ ignored so the write returns an error
/// instead of killing the process).
pub fn limit_file_size(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: signal(2) and setrlimit(2).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGXFSZ,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .map_err(std::io::Error::from)?;
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_FSIZE,
                bytes,
                nix::sys::resource::RLIM_INFINITY,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// `[proximity]` for a shop door replayed from the trace at `trace`: one zone, `door`, with an
/// inside and an outside sensor (`door-inside`, `door-outside`), as the RF model's shop front
/// places them. Tests add their own `[[gifts]]`.
pub fn door_proximity_toml(trace: &Path) -> String {
    format!(
        r#"[proximity]
interval_secs = 600
visit_timeout_secs = 60
replay = "{trace}"

[[proximity.zones]]
name = "door"
enter_distance_m = 2.0
exit_distance_m = 4.0
min_dwell_secs = 0
exit_timeout_secs = 20

[[proximity.sensors]]
name = "door-inside"
source = "replay"
zone = "door"
role = "inside"
rssi_at_1m = -59
path_loss_exponent = 2.2

[[proximity.sensors]]
name = "door-outside"
source = "replay"
zone = "door"
role = "outside"
rssi_at_1m = -59
path_loss_exponent = 2.2
"#,
        trace = trace.display()
    )
}

/// Replay lines of a phone advertising `token` walking in through the two-sensor door of
/// [`walk_in_door_toml`]: `steps` pairs 400 ms apart from `start_ms`, faint at the outside
/// sensor (`door-out`, -85 dBm), close to the inside one (`door-in`, -50 dBm).
pub fn walk_in_lines(token: &str, start_ms: u64, steps: u64) -> String {
    let mut lines = String::new();
    for i in 0..steps {
        let t = start_ms + i * 400;
        lines.push_str(&format!(
            "{{\"t_ms\":{t},\"sensor\":\"door-out\",\"rssi\":-85,\"token\":\"{token}\"}}\n\
             {{\"t_ms\":{},\"sensor\":\"door-in\",\"rssi\":-50,\"token\":\"{token}\"}}\n",
            t + 100
        ));
    }
    lines
}

/// `[proximity]` for a door replayed from `trace` with the default tracking settings: zone
/// `door` (entered at once), sensors `door-in` and `door-out` ([`walk_in_lines`]). Tests add
/// their own `[[gifts]]`.
pub fn walk_in_door_toml(trace: &Path) -> String {
    format!(
        r#"[proximity]
replay = "{trace}"

[[proximity.zones]]
name = "door"
min_dwell_secs = 0

[[proximity.sensors]]
name = "door-in"
source = "replay"
zone = "door"
role = "inside"

[[proximity.sensors]]
name = "door-out"
source = "replay"
zone = "door"
role = "outside"
"#,
        trace = trace.display()
    )
}
