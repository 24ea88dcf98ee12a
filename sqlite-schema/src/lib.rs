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
    /// A migration left rows pointing at rows that are not there; it was rolled back.
    #[error("migration to version {version} would leave {rows} rows with a dangling foreign key (first in table {table}); rolled back")]
    ForeignKeys {
        version: usize,
        rows: i64,
        table: String,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema version `conn` is at.
pub fn version(conn: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

/// Brings `conn` to the latest of `migrations`; returns the versions applied (`from..to`).
///
/// Foreign keys are off while migrations run and checked before each one commits: SQLite's way
/// to change a table's definition is to create the new table, copy, drop the old one and
/// rename, and with foreign keys on, that drop would delete (or refuse, for the rows
/// referencing it) what the rename is about to put back.
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
    if current == migrations.len() {
        return Ok(current..current);
    }
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    // Outside any transaction, or SQLite ignores it.
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = apply(conn, migrations, current);
    let restored = conn.pragma_update(None, "foreign_keys", enforced);
    applied?;
    restored?;
    Ok(current..migrations.len())
}

fn apply(conn: &mut Connection, migrations: &[&str], current: usize) -> Result<(), MigrateError> {
    for (i, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let dangling: Option<(i64, String)> = tx
            .query_row(
                "SELECT COUNT(*), MIN(\"table\") FROM pragma_foreign_key_check",
                [],
                |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .map(|(n, table)| (n > 0).then(|| (n, table.unwrap_or_default())))?;
        if let Some((rows, table)) = dangling {
            return Err(MigrateError::ForeignKeys {
                version: i + 1,
                rows,
                table,
            });
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
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
    fn a_table_others_reference_can_be_rebuilt_and_foreign_keys_stay_on() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let schema = [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
             CREATE TABLE child (id INTEGER PRIMARY KEY REFERENCES parent(id));",
            "INSERT INTO parent (v) VALUES ('a'), ('b'); INSERT INTO child (id) VALUES (1), (2);",
            // Rebuilt without AUTOINCREMENT: with foreign keys on, the DROP would fail.
            "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO parent_new SELECT id, v FROM parent;
             DROP TABLE parent;
             ALTER TABLE parent_new RENAME TO parent;",
        ];
        assert_eq!(migrate(&mut conn, &schema).unwrap(), 0..3);
        let children: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM child JOIN parent USING (id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(children, 2);
        let on: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert!(on, "foreign keys are enforced again after migrating");
        assert!(conn
            .execute("INSERT INTO child (id) VALUES (9)", [])
            .is_err());
    }

    #[test]
    fn a_migration_that_leaves_a_dangling_reference_is_rolled_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let schema = [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY REFERENCES parent(id));
             INSERT INTO parent (id) VALUES (1); INSERT INTO child (id) VALUES (1);",
            "DELETE FROM parent;",
        ];
        assert!(matches!(
            migrate(&mut conn, &schema),
            Err(MigrateError::ForeignKeys {
                version: 2,
                rows: 1,
                ..
            })
        ));
        assert_eq!(version(&conn).unwrap(), 1);
        let parents: i64 = conn
            .query_row("SELECT COUNT(*) FROM parent", [], |r| r.get(0))
            .unwrap();
        assert_eq!(parents, 1, "the failed migration changed nothing");
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
