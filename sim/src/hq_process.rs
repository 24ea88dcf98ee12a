//! A real `loyalty-hq serve` process on a free loopback port, for tests and benches that need
//! HQ as its own process (several on one database, CPU and memory figures). It is killed when
//! dropped.

use std::path::Path;
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(ProcessError::Port)?
            .port();
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--db",
                db,
            ])
            .env("LOYALTY_HQ_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
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

impl Drop for HqProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
