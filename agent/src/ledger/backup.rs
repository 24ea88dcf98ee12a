//! A consistent copy of a live ledger, through SQLite's online backup API.
//!
//! Copying `ledger.db` with `cp` while the agent runs, or even after it stopped uncleanly,
//! misses what is still in `ledger.db-wal`; this copy is one self-contained file holding every
//! committed transaction, taken while the agent keeps serving (WAL readers never block the
//! writer). It is written under a temporary name, checked with `quick_check` and renamed, so a
//! file with the final name is always a whole, good backup.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the copy at {path} failed its integrity check ({detail}); it was removed")]
    Damaged { path: PathBuf, detail: String },
    #[error("{0} exists already; choose another --out")]
    Exists(PathBuf),
}

/// Copies the ledger at `ledger` to `out` (which must not exist).
pub fn backup(ledger: &Path, out: &Path) -> Result<(), BackupError> {
    if out.exists() {
        return Err(BackupError::Exists(out.to_owned()));
    }
    let sql = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Sqlite { path, source }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| BackupError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let source = Connection::open_with_flags(
        ledger,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(ledger))?;
    source
        .busy_timeout(Duration::from_secs(10))
        .map_err(sql(ledger))?;
    {
        let mut dest = Connection::open(&tmp).map_err(sql(&tmp))?;
        let copy = rusqlite::backup::Backup::new(&source, &mut dest).map_err(sql(&tmp))?;
        // Pages in steps with a pause between: the writer gets the file between steps.
        copy.run_to_completion(1024, Duration::from_millis(5), None)
            .map_err(sql(&tmp))?;
        drop(copy);
        // The copy inherits WAL mode from the ledger's header; a backup is one file, with no
        // -wal or -shm to lose on the way (the agent turns WAL back on when it opens it).
        dest.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sql(&tmp))?;
    }
    if let Err(refusal) = super::identity::integrity(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(BackupError::Damaged {
            path: out.to_owned(),
            detail: refusal.to_string(),
        });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}
