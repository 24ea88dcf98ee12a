//! WAL checkpoints off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, so one
//! caller waits for a copy of the whole WAL into the database file. A checkpointer thread on its
//! own connection does that copy instead (PASSIVE: it never blocks the writer or readers); the
//! writer keeps a high automatic threshold only as a safety valve should this thread fall
//! behind. Checkpoints move already-durable data, so durability does not depend on them.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Pages in the WAL after which the writer checkpoints itself (64 MiB at 4 KiB pages).
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

const INTERVAL: Duration = Duration::from_millis(250);

/// Starts the checkpointer; it stops, after a last checkpoint, once `stop` is set.
pub fn spawn(path: &Path, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("ledger-checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "Checkpointer cannot open the ledger; the writer checkpoints itself.");
                    return;
                }
            };
            let _ = conn.busy_timeout(Duration::from_secs(1));
            loop {
                let stopping = stop.load(Ordering::Acquire);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    warn!(error = %e, "WAL checkpoint failed; will retry.");
                }
                if stopping {
                    break;
                }
                std::thread::sleep(INTERVAL);
            }
        })
        .map(|_| ())
}
