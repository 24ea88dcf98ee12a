//! [`PgStore`]: HQ on PostgreSQL, which several HQ processes may share.
//!
//! The [`Store`](super::Store) trait is synchronous and called from blocking threads, so the
//! rules stay the same code on both backends; each statement here is a future of
//! tokio-postgres, waited for on the calling thread ([`block_on`]). The connections themselves
//! (deadpool's pool, and the one that `LISTEN`s) are driven by a small runtime the store owns,
//! so neither the server's runtime flavour nor a caller inside `async` code can stall them.
//!
//! How the invariants hold across processes:
//! - a store's push runs under `SELECT .. FOR UPDATE` of its `stores` row (watermark check and
//!   inserts in one transaction), so a store's batches apply one at a time;
//! - events are unique by `event_id` (`ON CONFLICT DO NOTHING`); a transaction that loses a
//!   race on a key (an event, a kept gift), a deadlock or a serialization failure is run again
//!   from the start, and then sees the winner's rows;
//! - change numbers come from the sequence `change_seq` under a transaction-level advisory lock
//!   held to the commit, so they are committed in order: a pull never sees n+1 without n;
//! - a push first takes an advisory lock on every member and account it touches, all in one
//!   order, so two pushes sharing members take turns instead of deadlocking, and a member's
//!   feed rows are committed in id order;
//! - webhook work and gift expiries are claimed with `FOR UPDATE SKIP LOCKED`;
//! - wake-ups reach the other processes with `NOTIFY`, sent with the commit ([`listen`]).

mod listen;
mod schema;
mod values;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake as TaskWake};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::error::SqlState;
use tokio_postgres::IsolationLevel;

use super::db::{Backend, Db};
use super::sql::{Dialect, Row, Sql, Value, Wake};
use super::StoreError;
use crate::allowance::AllowancePolicy;

pub use schema::MIGRATIONS;

/// HQ's storage on PostgreSQL.
pub type PgStore = Db<Postgres>;

/// Connections per HQ process: HQ's blocking threads each hold one for a transaction.
const POOL_SIZE: usize = 16;

/// Longest wait for a pooled connection, or to open one.
const CONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Times a transaction is run again after colliding with another one.
const RETRIES: u32 = 8;

/// The advisory lock (`pg_advisory_xact_lock(2, 0)`) change numbers are handed out under.
const CHANGE_LOCK: &str = "SELECT pg_advisory_xact_lock(2, 0)";

pub struct Postgres {
    pool: Pool,
    wakeups: Mutex<Option<UnboundedReceiver<Wake>>>,
    /// Drives the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropped from async code (the server's end) a runtime may not block.
            rt.shutdown_background();
        }
    }
}

/// Wakes the thread that waits in [`block_on`].
struct Unpark(std::thread::Thread);

impl TaskWake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits for `f` on this thread. Its I/O is done by the store's runtime (tokio-postgres'
/// client futures only exchange messages with their connection's task), so this needs no
/// runtime of the caller's and works from blocking threads and async code alike.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// tokio-postgres' error with the server's own message, which its `Display` leaves out.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", e, db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// `postgres://` or `postgresql://`: a PostgreSQL database URL rather than a SQLite path.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

impl Db<Postgres> {
    /// Connects to the database at `url` (`postgres://user@host/db`, `?host=/socket/dir`
    /// for a unix socket) and migrates it.
    pub fn connect(url: &str, allowance: AllowancePolicy) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Pool(format!("{e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hq-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Pool(format!("starting its runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            // A database that is down or saturated fails the request (answered 500, which the
            // stores retry) instead of holding HQ's blocking threads forever.
            .wait_timeout(Some(CONNECT_WITHIN))
            .create_timeout(Some(CONNECT_WITHIN))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let p = pool.clone();
        block_on(runtime.spawn(async move {
            let mut client = p.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
            schema::migrate(&mut client).await
        }))
        .map_err(|e| StoreError::Pool(e.to_string()))??;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        runtime.spawn(listen::run(config, tx));
        let backend = Postgres {
            pool,
            wakeups: Mutex::new(Some(rx)),
            runtime: Some(runtime),
        };
        Ok(Db::new(backend, allowance))
    }
}

impl Postgres {
    fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Pool("the store is closing".into()))?;
        let pool = self.pool.clone();
        // Opening a connection needs the runtime's I/O: done on it.
        block_on(rt.spawn(async move { pool.get().await }))
            .map_err(|e| StoreError::Pool(e.to_string()))?
            .map_err(|e| StoreError::Pool(e.to_string()))
    }

    fn run<T>(
        &self,
        read_only: bool,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.client()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let builder = client.build_transaction();
            let builder = if read_only {
                // One snapshot for a whole page or report, as SQLite's read transaction.
                builder
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
            } else {
                builder.isolation_level(IsolationLevel::ReadCommitted)
            };
            let tx = block_on(builder.start())?;
            let mut sql = PgTx {
                tx: &tx,
                change_locked: false,
                members_locked: HashSet::new(),
                wakes: Vec::new(),
            };
            let out = f(&mut sql).and_then(|v| {
                let wakes = std::mem::take(&mut sql.wakes);
                for payload in listen::encode(&dedup(wakes)) {
                    block_on(
                        tx.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &payload]),
                    )?;
                }
                Ok(v)
            });
            match out {
                Ok(v) => {
                    block_on(tx.commit())?;
                    return Ok(v);
                }
                Err(e) if attempt < RETRIES && collided(&e) => {
                    let _ = block_on(tx.rollback());
                    tracing::debug!(error = %e, attempt, "Transaction collided; running it again.");
                    std::thread::sleep(std::time::Duration::from_millis(u64::from(attempt) * 5));
                }
                Err(e) => {
                    let _ = block_on(tx.rollback());
                    return Err(e);
                }
            }
        }
    }
}

/// Wakes in order, each once.
fn dedup(wakes: Vec<Wake>) -> Vec<Wake> {
    let mut out: Vec<Wake> = Vec::with_capacity(wakes.len());
    for w in wakes {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Another transaction got in the way: running this one again will see what it did.
fn collided(e: &StoreError) -> bool {
    match e {
        StoreError::Retry(_) => true,
        StoreError::Postgres(e) => matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::UNIQUE_VIOLATION
        ),
        _ => false,
    }
}

impl Backend for Postgres {
    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(true, f)
    }

    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(false, f)
    }

    fn wakeups(&self) -> Option<UnboundedReceiver<Wake>> {
        self.wakeups.lock().ok()?.take()
    }
}

struct PgTx<'a> {
    tx: &'a deadpool_postgres::Transaction<'a>,
    /// This transaction holds the change-number lock.
    change_locked: bool,
    /// The members this transaction holds, not asked for again.
    members_locked: HashSet<String>,
    wakes: Vec<Wake>,
}

impl PgTx<'_> {
    /// Held to the commit: change numbers are committed in the order they were handed out.
    fn hold_change_lock(&mut self) -> Result<(), StoreError> {
        if !self.change_locked {
            self.exec(CHANGE_LOCK, &[])?;
            self.change_locked = true;
        }
        Ok(())
    }

    fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        Ok(block_on(
            self.tx.prepare_cached(&values::placeholders(sql)),
        )?)
    }
}

fn params(args: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

impl Sql for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        Ok(block_on(self.tx.execute(&stmt, &params(args)))?)
    }

    fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let stmt = self.statement(sql)?;
        block_on(self.tx.query(&stmt, &params(args)))?
            .iter()
            .map(values::row)
            .collect()
    }

    fn next_change(&mut self) -> Result<i64, StoreError> {
        self.hold_change_lock()?;
        let stmt = self.statement("SELECT nextval('change_seq')")?;
        Ok(block_on(self.tx.query_one(&stmt, &[]))?.try_get(0)?)
    }

    fn announce(&mut self, wake: Wake) {
        self.wakes.push(wake);
    }

    fn renumber_members(&mut self, members: &[&str]) -> Result<(), StoreError> {
        self.hold_change_lock()?;
        // One round trip however many members: this runs under the change-number lock.
        self.exec(
            "UPDATE members SET change_seq = nextval('change_seq')
             FROM (SELECT unnest(string_to_array(?1, chr(10))) AS id) AS touched
             WHERE members.member_id = touched.id",
            &[Value::Text(members.join("\n"))],
        )?;
        Ok(())
    }

    fn lock_members(&mut self, members: &[&str]) -> Result<(), StoreError> {
        let members: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| !self.members_locked.contains(*m))
            .collect();
        if members.is_empty() {
            return Ok(());
        }
        self.members_locked
            .extend(members.iter().map(|m| (*m).to_owned()));
        // Transaction-level advisory locks (class 1, the name's hash), taken in the hashes'
        // order by one statement: held to the commit, and re-taken freely by the same
        // transaction later.
        self.exec(
            "SELECT pg_advisory_xact_lock(1, h) FROM
               (SELECT DISTINCT hashtext(k) AS h FROM unnest(string_to_array(?1, chr(10))) AS k
                ORDER BY h) AS held",
            &[Value::Text(members.join("\n"))],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_postgres_and_may_point_at_a_unix_socket() {
        assert!(is_url("postgres://hq@db/loyalty"));
        assert!(is_url("postgresql://hq@db/loyalty"));
        assert!(!is_url("hq.db"));
        let config: tokio_postgres::Config = "postgres://hq@%2Fvar%2Frun%2Fpostgresql/loyalty"
            .parse()
            .unwrap();
        assert_eq!(
            config.get_hosts(),
            &[tokio_postgres::config::Host::Unix(
                "/var/run/postgresql".into()
            )]
        );
        assert_eq!(config.get_dbname(), Some("loyalty"));
    }

    #[test]
    fn block_on_waits_for_a_future_woken_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 7);
    }
}
