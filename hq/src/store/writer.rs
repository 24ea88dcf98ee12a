//! The single writer connection and the change sequence numbers only it hands out.
//!
//! Its own module so that the storage functions (admin, ingest) and the store that owns them
//! (`sqlite.rs`) depend on it, not on each other.

use rusqlite::Connection;

/// The single writer and the last change sequence number it handed out.
pub struct Writer {
    pub conn: Connection,
    pub last_change: i64,
}

impl Writer {
    /// The next change sequence number. Only the writer assigns them, under its mutex, so they
    /// are committed in increasing order: a reader never sees seq n+1 without seq n. A rolled
    /// back batch leaves a gap, which the feed tolerates.
    pub fn next_change(&mut self) -> i64 {
        bump(&mut self.last_change)
    }
}

/// [`Writer::next_change`] for code that already borrows the writer's connection.
pub fn bump(last_change: &mut i64) -> i64 {
    *last_change += 1;
    *last_change
}
