//! A real `loyalty-hq serve` process on a free loopback port, for tests and benches that need
//! HQ as its own process (several on one database, CPU and memory figures, another machine's
//! share of the CPU). It is killed when dropped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why an HQ process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("starting {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("finding a free port: {0}")]
    Port(std::io::Error),
    #[error("HQ did not answer /healthz within {0:?}")]
    NotReady(Duration),
    #[error("building loyalty-hq for a bench: {0}")]
    Build(String),
}

/// How HQ runs, beyond its database.
pub struct Options {
    pub admin_token: String,
    /// HQ's `RUST_LOG`.
    pub log: String,
    pub stderr: Stdio,
    /// Added to this process's nice value, as `nice -n` does (capped at 19 by the kernel).
    pub nice: i32,
    /// The SCHED_IDLE class: HQ gets a core only when nothing else on this machine wants one,
    /// as HQ on its own machine would. Nice 19 alone is not that: Linux's EEVDF scheduler lets a
    /// running task finish its slice before a woken one takes the core, so HQ at nice 19 held a
    /// core for milliseconds after the agent's ledger writer was woken by its fsync.
    pub idle_class: bool,
}

impl Options {
    /// Logging at `warn` to `stderr`, at this process's priority.
    pub fn new(admin_token: &str, stderr: Stdio) -> Self {
        Options {
            admin_token: admin_token.to_owned(),
            log: "warn".to_owned(),
            stderr,
            nice: 0,
            idle_class: false,
        }
    }
}

pub struct HqProcess {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

impl HqProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_loyalty-hq")`) serving `db` (a path or
    /// a `postgres://` URL) with `admin_token`, its log (RUST_LOG=warn) to `stderr`, and waits
    /// until it answers.
    pub async fn start(
        binary: &Path,
        db: &str,
        admin_token: &str,
        stderr: Stdio,
    ) -> Result<HqProcess, ProcessError> {
        Self::start_with(binary, db, Options::new(admin_token, stderr)).await
    }

    /// [`HqProcess::start`] with every option.
    pub async fn start_with(
        binary: &Path,
        db: &str,
        options: Options,
    ) -> Result<HqProcess, ProcessError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(ProcessError::Port)?
            .port();
        let mut command = Command::new(binary);
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--db",
                db,
            ])
            .env("LOYALTY_HQ_ADMIN_TOKEN", &options.admin_token)
            .env("RUST_LOG", &options.log)
            .stdout(Stdio::null())
            .stderr(options.stderr);
        if options.nice != 0 || options.idle_class {
            let (nice, idle_class) = (options.nice, options.idle_class);
            // SAFETY: between fork and exec only two system calls run: no allocation, no lock.
            unsafe {
                command.pre_exec(move || lower_priority(nice, idle_class));
            }
        }
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
        let hq = HqProcess {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        let patience = Duration::from_secs(30);
        while http
            .get(format!("{}/healthz", hq.url))
            .send()
            .await
            .is_err()
        {
            if started.elapsed() > patience {
                return Err(ProcessError::NotReady(patience));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(hq)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// In the child, before exec: `nice(2)` by `nice`, then SCHED_IDLE if asked.
fn lower_priority(nice: i32, idle_class: bool) -> std::io::Result<()> {
    if nice != 0 {
        // nice(2) may return -1 as a valid value: errno tells a failure from that.
        // SAFETY: plain system calls on this process.
        unsafe {
            *libc::__errno_location() = 0;
            if libc::nice(nice) == -1 && *libc::__errno_location() != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    if idle_class {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on this process.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Drop for HqProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `loyalty-hq` for a bench of another package, which has no `CARGO_BIN_EXE_loyalty-hq`: built
/// in the profile `cargo bench` builds in, beside the running bench (this process). With
/// `--release` the two builds would invalidate each other's artifacts and rebuild the workspace
/// on every run.
pub fn build_for_bench() -> Result<PathBuf, ProcessError> {
    let bench_exe = std::env::current_exe()
        .map_err(|e| ProcessError::Build(format!("finding the bench's own path: {e}")))?;
    let profile_dir = bench_exe.parent().and_then(Path::parent).ok_or_else(|| {
        ProcessError::Build(format!(
            "{} is not in a profile's deps directory",
            bench_exe.display()
        ))
    })?;
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--profile",
            "bench",
            "-q",
            "-p",
            "loyalty-hq",
            "--bin",
            "loyalty-hq",
        ])
        .status()
        .map_err(|e| ProcessError::Build(e.to_string()))?;
    if !status.success() {
        return Err(ProcessError::Build(format!(
            "cargo build exited with {status}"
        )));
    }
    Ok(profile_dir.join("loyalty-hq"))
}
