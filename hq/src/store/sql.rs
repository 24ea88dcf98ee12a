//! The one seam between HQ's storage rules and a database: a transaction that runs SQL.
//!
//! The rules (ingestion, ledgers, the changes feed, members' feeds, webhooks) are written once
//! against [`Sql`]; SQLite and PostgreSQL each implement it for a transaction they opened. The
//! statements are the common dialect of both (`?N` placeholders, `ON CONFLICT`, `RETURNING`,
//! `CAST(.. AS BIGINT)`); the few that differ ask [`Sql::dialect`]. Values are only what HQ
//! stores: 64-bit integers, text and NULL, so neither side needs a type map.

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter or a column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value> + Clone> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Self {
        v.clone().map_or(Value::Null, Into::into)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters of a statement: `args![a, b]`.
#[macro_export]
#[doc(hidden)]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::store::sql::Value::from($v)),*][..] };
}
pub use crate::args;

/// One result row.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Column(format!("no column {i}")))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Column(format!(
                "column {i}: {other:?} is not an integer"
            ))),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.int(i).map(|v| v != 0)
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.at(i)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(StoreError::Column(format!(
                "column {i}: {other:?} is not text"
            ))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
}

/// A wake-up for HQ processes after a commit: in-process through the `FeedHub`, and on
/// PostgreSQL to every other HQ process through `NOTIFY`, sent with the commit itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A member's feed row `feed_id` was written.
    Feed { member_id: String, feed_id: i64 },
    /// The stores' changes feed moved.
    Changes,
    /// Webhook queue rows became due.
    Webhooks,
}

/// A transaction: every call runs inside it, and it commits only when the whole closure that
/// holds it succeeds.
pub trait Sql {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError>;
    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// The next change sequence number. Numbers are committed in increasing order: a reader
    /// never sees n+1 without n (the pulls' cursor relies on it).
    fn next_change(&mut self) -> Result<i64, StoreError>;
    /// Sent to other HQ processes when this transaction commits (nothing on SQLite: one process).
    fn announce(&mut self, wake: Wake);
    /// Holds these members (or accounts) until the commit, so transactions that touch the same
    /// ones take turns. Taken all at once in one order, they cannot deadlock each other; with
    /// SQLite's single writer there is nothing to take.
    fn lock_members(&mut self, members: &[&str]) -> Result<(), StoreError>;

    /// Gives each member its own new change number: the stores' feed carries one entity per
    /// number. A backend where a round trip costs may do it in one statement.
    fn renumber_members(&mut self, members: &[&str]) -> Result<(), StoreError> {
        for member in members {
            let seq = self.next_change()?;
            self.exec(
                "UPDATE members SET change_seq = ?2 WHERE member_id = ?1",
                &[Value::from(*member), Value::Int(seq)],
            )?;
        }
        Ok(())
    }
}

/// Helpers over [`Sql`] every caller wants.
pub trait SqlExt: Sql {
    fn row(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    /// The one row a statement always returns (an aggregate).
    fn one(&mut self, sql: &str, args: &[Value]) -> Result<Row, StoreError> {
        self.row(sql, args)?
            .ok_or_else(|| StoreError::Column("a statement returned no row".into()))
    }

    fn exists(&mut self, sql: &str, args: &[Value]) -> Result<bool, StoreError> {
        Ok(self.row(sql, args)?.is_some())
    }

    /// ` FOR UPDATE` on PostgreSQL, where several processes write; SQLite has one writer.
    fn for_update(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

impl<T: Sql + ?Sized> SqlExt for T {}
