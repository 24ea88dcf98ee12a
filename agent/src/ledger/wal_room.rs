//! Room for the WAL before SQLite opens it.
//!
//! A commit that writes past the end of the WAL file makes the filesystem allocate blocks and
//! change the file's size, so the commit's fdatasync waits for a journal commit on top of its
//! data. While the agent runs, SQLite never shrinks the WAL: after a checkpoint it starts again
//! at the front of the same file. But a clean stop truncates the WAL (so that ledger.db alone
//! holds every sale), so an agent that has just started appends on every commit until its WAL
//! has grown. When that start was the moment HQ came back with a backlog, sales suffered. In
//! `till_under_load`, the drain had 23 to 98 sale commits over 1 ms out of about 2,800, most of
//! them in its first seconds; with the room made first, 11 to 17.
//!
//! So before SQLite opens the ledger, an empty or missing WAL is written full of zeros. They
//! have to be real blocks: fallocate's unwritten extents would be converted, under a journal
//! commit, at their first write. A WAL of zeros has no valid header, and SQLite reads that as
//! an empty log. A WAL that holds anything (frames left by a crash) is never touched.

use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::{debug, warn};

/// The WAL's room at start: more than a drain's WAL reaches between two checkpoints.
pub const WAL_ROOM_BYTES: u64 = 16 << 20;

/// The room is left out when less than this much would stay free after it: a nearly full disk
/// keeps its space for sales.
const KEEP_FREE_BYTES: u64 = 256 << 20;

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Gives `db`'s WAL its room, if `db` exists and its WAL is empty or missing. Run only while
/// nothing has the ledger open (the data dir's lock is held). A failure costs speed only: the
/// WAL then grows as it would have.
pub(super) fn make_room(db: &Path) {
    if let Err(e) = try_make_room(db) {
        warn!(error = %e, ledger = %db.display(), "Could not make room for the WAL; commits grow it as they go.");
    }
}

fn try_make_room(db: &Path) -> std::io::Result<()> {
    // A new ledger: SQLite deletes a WAL it finds beside an empty database.
    if !db.exists() {
        return Ok(());
    }
    let dir = db.parent().unwrap_or(Path::new("."));
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    // `fsblkcnt_t` and `c_ulong` are 32 bits on some 32-bit boards.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    if free < WAL_ROOM_BYTES + KEEP_FREE_BYTES {
        debug!(free, "Too little free space to make room for the WAL.");
        return Ok(());
    }
    let wal = wal_of(db);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&wal)?;
    // Only an empty WAL is filled: one with frames in it is SQLite's to read.
    if file.metadata()?.len() > 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..WAL_ROOM_BYTES / zeros.len() as u64 {
        file.write_all(&zeros)?;
    }
    file.sync_all()?;
    debug!(bytes = WAL_ROOM_BYTES, wal = %wal.display(), "Room made for the WAL.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{writer_connection, OpenOptions};

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(wal_of(db)).map(|m| m.len()).unwrap_or(0)
    }

    fn cursor(db: &Path) -> String {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT cursor FROM sync_state", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_restarted_ledger_commits_into_the_room_without_growing_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let (conn, _) = writer_connection(&db, OpenOptions::default()).unwrap();
        drop(conn);
        assert_eq!(wal_len(&db), 0, "a clean close leaves no WAL");

        let (conn, _) = writer_connection(&db, OpenOptions::default()).unwrap();
        assert_eq!(wal_len(&db), WAL_ROOM_BYTES, "no room was made at open");
        conn.execute("UPDATE sync_state SET cursor = 'after-room'", [])
            .unwrap();
        assert_eq!(
            wal_len(&db),
            WAL_ROOM_BYTES,
            "the commit grew the WAL instead of using its room"
        );
        assert_eq!(
            cursor(&db),
            "after-room",
            "the zeros were not read as an empty log"
        );
        drop(conn);
        assert_eq!(cursor(&db), "after-room");
    }

    #[test]
    fn a_wal_left_by_a_crash_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let (conn, _) = writer_connection(&db, OpenOptions::default()).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute("UPDATE sync_state SET cursor = 'only-in-the-wal'", [])
            .unwrap();
        // The files as a power cut would leave them: the commit is in the WAL alone.
        let crashed = tempfile::tempdir().unwrap();
        let image = crashed.path().join("ledger.db");
        std::fs::copy(&db, &image).unwrap();
        std::fs::copy(wal_of(&db), wal_of(&image)).unwrap();
        drop(conn);
        let frames = std::fs::read(wal_of(&image)).unwrap();
        assert!(!frames.is_empty());

        make_room(&image);
        assert_eq!(std::fs::read(wal_of(&image)).unwrap(), frames);
        assert_eq!(cursor(&image), "only-in-the-wal");
    }
}
