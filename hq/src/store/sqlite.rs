//! [`SqliteStore`]: one writer connection behind a mutex, a small pool of reader connections.
//!
//! WAL lets readers (changes pages, admin reads, token checks) run beside the writer on their
//! own snapshots. `synchronous=FULL`: a batch HQ acknowledged survives a power cut, which is
//! what lets the agent drop it from its outbox.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction};

use super::db::{Backend, Db};
use super::sql::{Dialect, Row, Sql, Value, Wake};
use super::{changes, schema, StoreError};
use crate::allowance::AllowancePolicy;

/// Idle reader connections kept open; more are opened on demand and closed after use.
const IDLE_READERS: usize = 8;

/// HQ's storage in one SQLite file: the embedded default.
pub type SqliteStore = Db<Sqlite>;

/// The single writer and the last change sequence number it handed out.
struct Writer {
    conn: Connection,
    last_change: i64,
}

pub struct Sqlite {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A bounded page cache (32 MiB): memory must not grow with the backlog being ingested.
    conn.pragma_update(None, "cache_size", -32_768)?;
    Ok(conn)
}

impl Db<Sqlite> {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, allowance: AllowancePolicy) -> Result<Self, StoreError> {
        let mut conn = open_conn(path)?;
        schema::migrate(&mut conn)?;
        let last_change = {
            let tx = conn.transaction()?;
            let mut sql = SqliteTx {
                tx: &tx,
                last_change: None,
            };
            changes::latest_change(&mut sql)?
        };
        let backend = Sqlite {
            path: path.to_owned(),
            writer: Mutex::new(Writer { conn, last_change }),
            readers: Mutex::new(Vec::new()),
        };
        Ok(Db::new(backend, allowance))
    }
}

impl Backend for Sqlite {
    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let out = (|| {
            // A deferred transaction that only reads: one snapshot, rolled back when dropped.
            let tx = conn.transaction()?;
            f(&mut SqliteTx {
                tx: &tx,
                last_change: None,
            })
        })();
        let mut pool = self.readers.lock().map_err(|_| StoreError::Poisoned)?;
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let Writer { conn, last_change } = &mut *w;
        let tx = conn.transaction()?;
        let out = f(&mut SqliteTx {
            tx: &tx,
            last_change: Some(last_change),
        })?;
        tx.commit()?;
        Ok(out)
    }
}

/// A transaction on one of the store's connections.
struct SqliteTx<'a> {
    tx: &'a Transaction<'a>,
    /// The writer's counter; `None` in a reader's transaction.
    last_change: Option<&'a mut i64>,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn value(v: ValueRef<'_>) -> Result<Value, StoreError> {
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => Ok(Value::Text(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Real(r) => Err(StoreError::Column(format!("a real number {r}"))),
        ValueRef::Blob(_) => Err(StoreError::Column("a blob".into())),
    }
}

impl Sql for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        // A statement with RETURNING (or a SELECT) yields rows `execute` would refuse.
        if stmt.readonly() || stmt.column_count() > 0 {
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut n = 0;
            while rows.next()?.is_some() {
                n += 1;
            }
            return Ok(n);
        }
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                row.push(value(r.get_ref(i)?)?);
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn next_change(&mut self) -> Result<i64, StoreError> {
        // Only the writer assigns them, under its mutex, so they are committed in increasing
        // order. A rolled back batch leaves a gap, which the feed tolerates.
        let last = self
            .last_change
            .as_deref_mut()
            .ok_or_else(|| StoreError::Column("a change number asked in a read".into()))?;
        *last += 1;
        Ok(*last)
    }

    fn announce(&mut self, _wake: Wake) {
        // One process: the HTTP layer wakes its own waiters after the commit.
    }

    fn lock_members(&mut self, _members: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }
}
