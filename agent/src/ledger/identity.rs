//! A ledger's identity, and refusing a ledger that is not the one this data dir held.
//!
//! Each ledger file gets a random id when it is created (`ledger_meta`); HQ takes a store's
//! events from one ledger id only (`loyalty_protocol::ledger`). The data dir keeps the id in a
//! marker file beside the ledger (`ledger.id`), so a ledger that went missing, was truncated to
//! nothing, or was swapped for another one is noticed before the agent serves a single sale:
//! silently starting a new ledger would forget every receipt and credit retried ones again.
//! The marker moves only with a ledger this data dir accepted: a new one on first start, a
//! re-based one, or an empty one the operator asked for by name (`run --new-ledger`).
//!
//! A damaged file is refused too, untouched: SQLite's `quick_check` runs on a read-only
//! connection before anything writes to the file.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// What the operator allows when opening a ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Start an empty ledger even though the data dir held another one (`run --new-ledger`).
    pub allow_new_ledger: bool,
}

/// Why a ledger file is refused; the file is left as it is.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{ledger} is {what}, but this data dir held ledger {marker} (see {marker_file}): restore the newest backup (README, \"Restoring a backup\") and run `loyalty-agent rebase`; to start an empty ledger instead, run with --new-ledger (its events reach HQ only after `loyalty-agent rebase`)")]
    Missing {
        ledger: PathBuf,
        what: &'static str,
        marker: String,
        marker_file: PathBuf,
    },
    #[error("{ledger} is damaged ({detail}); it was left untouched: stop the agent, move the file (and its -wal, -shm) aside for support, restore the newest backup (README, \"Restoring a backup\") and run `loyalty-agent rebase`")]
    Damaged { ledger: PathBuf, detail: String },
    #[error("{ledger} is ledger {found}, but this data dir held ledger {marker} (see {marker_file}): if this is the right file, run `loyalty-agent rebase`, which adopts it; otherwise put the right one back")]
    Foreign {
        ledger: PathBuf,
        found: String,
        marker: String,
        marker_file: PathBuf,
    },
}

/// The marker file for the ledger at `ledger`.
pub fn marker_path(ledger: &Path) -> PathBuf {
    ledger.with_extension("id")
}

pub fn read_marker(ledger: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(marker_path(ledger)) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the marker durably (temporary file, fsync, rename, fsync of the directory).
pub fn write_marker(ledger: &Path, ledger_id: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = marker_path(ledger);
    let tmp = path.with_extension("id.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{ledger_id}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Checks, before the writer opens it, that `ledger` may be opened: not missing or empty where
/// the data dir held one, not damaged.
pub fn check_before_open(ledger: &Path, options: OpenOptions) -> Result<(), Refusal> {
    let len = std::fs::metadata(ledger).map(|m| m.len()).ok();
    let marker = read_marker(ledger).ok().flatten();
    match (len, marker) {
        (None | Some(0), Some(marker)) if !options.allow_new_ledger => Err(Refusal::Missing {
            ledger: ledger.to_owned(),
            what: if len.is_none() { "missing" } else { "empty" },
            marker,
            marker_file: marker_path(ledger),
        }),
        (None | Some(0), _) => Ok(()),
        (Some(_), _) => integrity(ledger),
    }
}

/// SQLite's `quick_check` on a read-only connection: `Ok` when it says "ok".
pub fn integrity(ledger: &Path) -> Result<(), Refusal> {
    let damaged = |detail: String| Refusal::Damaged {
        ledger: ledger.to_owned(),
        detail,
    };
    let conn = Connection::open_with_flags(
        ledger,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| damaged(e.to_string()))?;
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(damaged(lines.join("; ")))
    }
}

/// The id of the open ledger.
pub fn ledger_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT ledger_id FROM ledger_meta WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// After migrating: the open ledger must be the one the marker names, unless the operator
/// allowed a new one; the marker is written for a ledger this data dir accepts.
pub fn adopt(conn: &Connection, ledger: &Path, options: OpenOptions) -> Result<String, String> {
    let id = ledger_id(conn).map_err(|e| format!("reading the ledger's id: {e}"))?;
    let marker = read_marker(ledger).map_err(|e| format!("reading the marker: {e}"))?;
    match marker {
        Some(m) if m == id => {}
        Some(m) if !options.allow_new_ledger => {
            return Err(Refusal::Foreign {
                ledger: ledger.to_owned(),
                found: id,
                marker: m,
                marker_file: marker_path(ledger),
            }
            .to_string())
        }
        _ => write_marker(ledger, &id)
            .map_err(|e| format!("writing {}: {e}", marker_path(ledger).display()))?,
    }
    Ok(id)
}

/// The re-base this ledger last went through, if any: `(previous id, at)`.
pub fn rebased_from(conn: &Connection) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT previous_ledger_id, rebased_at FROM ledger_meta
         WHERE id = 1 AND previous_ledger_id IS NOT NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}
