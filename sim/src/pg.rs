//! A throwaway PostgreSQL for tests and benches (feature `postgres`): a cluster made with
//! `initdb` in a temporary directory and started with `pg_ctl` on a free loopback port, and a
//! fresh database per test on it.
//!
//! One cluster serves a whole test binary ([`shared`]); a watcher process stops it and removes
//! its directory when the binary exits, however it exits. PostgreSQL refuses to run as root, so
//! as root (CI) the cluster runs as `nobody`, owning its directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that runs HQ's tests on PostgreSQL: `postgres` (anything else, or
/// unset: SQLite).
pub const BACKEND_ENV: &str = "LOYALTY_HQ_TEST_BACKEND";

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("no PostgreSQL server programs (initdb, pg_ctl) found: install the Debian package postgresql (scripts/setup.sh does)")]
    NotInstalled,
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `nobody` when running as root.
    run_as: Option<String>,
}

/// Whether HQ's tests run on PostgreSQL ([`BACKEND_ENV`]).
pub fn tests_use_postgres() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|v| v == "postgres")
}

/// Where server programs are: Debian's versioned directory (newest first), else `PATH`.
fn bindir() -> Result<PathBuf, PgError> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("pg_ctl").exists() && d.join("initdb").exists());
    found.ok_or(PgError::NotInstalled)
}

fn run(what: &str, cmd: &mut Command) -> Result<String, PgError> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(PgError::Command {
            what: what.to_owned(),
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    run("id -u", Command::new("id").arg("-u")).is_ok_and(|id| id.trim() == "0")
}

fn free_port() -> Result<u16, PgError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// Makes and starts a cluster. `durable`: fsync on, as a production server (benches);
    /// otherwise commits skip the disk (tests).
    pub fn start(durable: bool) -> Result<Cluster, PgError> {
        let bin = bindir()?;
        let dir = std::env::temp_dir().join(format!(
            "loyalty-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let run_as = is_root().then(|| "nobody".to_owned());
        if let Some(user) = &run_as {
            run("chown", Command::new("chown").arg("-R").arg(user).arg(&dir))?;
        }
        let data = dir.join("data");
        let cluster = Cluster {
            dir,
            bin,
            port: free_port()?,
            run_as,
        };
        run(
            "initdb",
            cluster
                .command("initdb")
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-locale",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
        )?;
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300",
            cluster.port,
            cluster.dir.display()
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        run(
            "pg_ctl start",
            cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "60", "-l"])
                .arg(cluster.dir.join("server.log"))
                .arg("-o")
                .arg(options)
                .arg("start")
                .stdout(Stdio::null()),
        )?;
        cluster.stop_when_gone(std::process::id(), &data)?;
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// A watcher that outlives nothing: once `pid` is gone it stops the cluster and removes
    /// its directory, so a test binary never leaves a server behind.
    fn stop_when_gone(&self, pid: u32, data: &Path) -> Result<(), PgError> {
        let stop = format!(
            "{} {} -D {} -m immediate stop",
            self.run_as
                .as_ref()
                .map(|u| format!("runuser -u {u} --"))
                .unwrap_or_default(),
            self.bin.join("pg_ctl").display(),
            data.display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.dir.display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and answers its URL.
    pub fn create_database(&self) -> Result<String, PgError> {
        let name = format!(
            "hq_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        loop {
            let made = self.psql(&self.url("postgres"), &format!("CREATE DATABASE {name}"));
            match made {
                Ok(_) => return Ok(self.url(&name)),
                // Two CREATE DATABASE at once may collide on the template: try again.
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `sql` with `psql` on the database at `url`; its rows, unaligned, `|` between
    /// columns.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, PgError> {
        run(
            "psql",
            Command::new(self.bin.join("psql")).args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ]),
        )
    }

    /// The whole database at `url` as SQL text (`pg_dump`): what a backup would hold.
    pub fn dump(&self, url: &str) -> Result<String, PgError> {
        run(
            "pg_dump",
            Command::new(self.bin.join("pg_dump")).args(["-d", url]),
        )
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The cluster this process's tests share, started on first use.
pub fn shared() -> Result<&'static Cluster, PgError> {
    SHARED
        .get_or_init(|| Cluster::start(false).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| PgError::Command {
            what: "starting the test cluster".into(),
            detail: e.clone(),
        })
}

/// HQ's database for a test: a fresh PostgreSQL database when [`tests_use_postgres`],
/// otherwise `hq.db` in `dir`. A URL is a valid `db` value of hq.toml, hence the path type.
pub fn test_database(dir: &Path) -> Result<PathBuf, PgError> {
    if tests_use_postgres() {
        Ok(PathBuf::from(shared()?.create_database()?))
    } else {
        Ok(dir.join("hq.db"))
    }
}
