//! A SQLite schema as an ordered list of migrations, tracked in `PRAGMA user_version`: the
//! agent's ledger and HQ's database both keep theirs this way.
//!
//! rusqlite_migration would do this, but its releases pin another rusqlite (and so a second
//! bundled SQLite) than the 0.41 our registry resolves; these few lines do the same job.
//! Entry `i` moves the schema from version `i` to `i + 1`, in its own transaction, so a crash
//! mid-upgrade leaves a whole version. Never edit a released entry: append.

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The file was written by a newer program; an older one must not guess at it.
    #[error("the database is at schema version {found}, newer than this program knows ({known}): upgrade it")]
    TooNew { found: usize, known: usize },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema version `conn` is at.
pub fn version(conn: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

/// Brings `conn` to the latest of `migrations`; returns the versions applied (`from..to`).
pub fn migrate(
    conn: &mut Connection,
    migrations: &[&str],
) -> Result<std::ops::Range<usize>, MigrateError> {
    let current = version(conn)?;
    if current > migrations.len() {
        return Err(MigrateError::TooNew {
            found: current,
            known: migrations.len(),
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(current..migrations.len())
}

/// For each database's own tests: `apply` (its wrapper over [`migrate`]) brings an empty
/// in-memory database to version `latest`, and running it again changes nothing.
pub fn check_fresh_then_again<E: std::fmt::Display>(
    latest: usize,
    apply: impl Fn(&mut Connection) -> Result<(), E>,
) -> Result<(), String> {
    let mut conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
    for run in ["first", "second"] {
        apply(&mut conn).map_err(|e| format!("{run} run: {e}"))?;
        let reached = version(&conn).map_err(|e| e.to_string())?;
        if reached != latest {
            return Err(format!("{run} run left version {reached}, not {latest}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[&str] = &[
        "CREATE TABLE a (x INTEGER);",
        "ALTER TABLE a ADD COLUMN y INTEGER;",
    ];

    #[test]
    fn migrations_apply_once_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, &SCHEMA[..1]).unwrap(), 0..1);
        assert_eq!(migrate(&mut conn, SCHEMA).unwrap(), 1..2);
        assert_eq!(migrate(&mut conn, SCHEMA).unwrap(), 2..2);
        assert_eq!(version(&conn).unwrap(), 2);
        conn.execute("INSERT INTO a (x, y) VALUES (1, 2)", [])
            .unwrap();
    }

    #[test]
    fn a_newer_database_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99i64).unwrap();
        assert!(matches!(
            migrate(&mut conn, SCHEMA),
            Err(MigrateError::TooNew {
                found: 99,
                known: 2
            })
        ));
        assert_eq!(version(&conn).unwrap(), 99);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let broken = [
            "CREATE TABLE a (x INTEGER);",
            "ALTER TABLE nowhere ADD COLUMN y;",
        ];
        assert!(migrate(&mut conn, &broken).is_err());
        assert_eq!(version(&conn).unwrap(), 1);
    }
}
