//! Helpers for end-to-end tests: a real `loyalty-agent` process on a free port, with a data
//! directory, config and member file of its own.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent binary, built on demand so that `cargo test -p loyalty-e2e` works alone.
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/loyalty-agent
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    let bin = profile_dir.join("loyalty-agent");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let release = profile_dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "loyalty-agent",
            "--bin",
            "loyalty-agent",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building loyalty-agent failed");
    });
    bin
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
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "[store]\nid = \"store-e2e\"\ndata_dir = \"data\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\n{lanes_toml}\n"
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
