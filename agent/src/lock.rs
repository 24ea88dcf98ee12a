//! One agent per data dir: an exclusive `flock` on `agent.lock` for the process's life.
//!
//! Two agents writing one ledger would each believe their own seq numbers and balances; the
//! second must not start at all. `flock` is released by the kernel when the process dies, even
//! by kill -9, so a crash never leaves a stale lock behind. The holder's pid is written into the
//! file for the refusal message.

use nix::fcntl::{Flock, FlockArg};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while the agent (or an operator command that writes the ledger) runs.
pub struct DataDirLock {
    _file: Flock<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another loyalty-agent ({holder}) is using the data dir {dir}: stop it first (systemctl stop loyalty-agent), or point this one at another data_dir")]
    Held { dir: PathBuf, holder: String },
    /// The explanation names the path and the cause (`crate::data_dir::explain`); the
    /// io::Error is kept for code, not repeated in the message.
    #[error("{explanation}")]
    Io {
        explanation: String,
        cause: std::io::Error,
    },
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (created if missing), or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let io = |cause| LockError::Io {
            explanation: crate::data_dir::explain(data_dir, &cause),
            cause,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let path = data_dir.join("agent.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "pid unknown".to_owned(),
                    pid => format!("pid {pid}"),
                };
                return Err(LockError::Held {
                    dir: data_dir.to_owned(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        assert!(DataDirLock::acquire(dir.path()).is_ok());
    }
}
