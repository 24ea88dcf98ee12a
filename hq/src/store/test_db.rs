//! The store's unit tests run on the backend `LOYALTY_HQ_TEST_BACKEND` names (SQLite unless
//! `postgres`), on a fresh database each.

use super::db::Db;
use super::sql::Sql;
use super::{PgStore, SqliteStore, StoreError};
use crate::allowance::AllowancePolicy;

pub enum TestStore {
    // The directory lives as long as the database in it.
    Sqlite(SqliteStore, #[allow(dead_code)] tempfile::TempDir),
    Postgres(PgStore),
}

pub fn test_store() -> TestStore {
    if loyalty_sim::pg::tests_use_postgres() {
        let url = loyalty_sim::pg::shared()
            .and_then(|c| c.create_database())
            .unwrap();
        TestStore::Postgres(Db::connect(&url, AllowancePolicy::default()).unwrap())
    } else {
        let dir = tempfile::tempdir().unwrap();
        let store = Db::open(&dir.path().join("hq.db"), AllowancePolicy::default()).unwrap();
        TestStore::Sqlite(store, dir)
    }
}

/// Runs `f` in a write transaction of `store`, committed when it returns.
pub fn write<T>(store: &TestStore, mut f: impl FnMut(&mut dyn Sql) -> Result<T, StoreError>) -> T {
    use super::db::Backend;
    match store {
        TestStore::Sqlite(s, _) => s.backend.write(&mut f),
        TestStore::Postgres(s) => s.backend.write(&mut f),
    }
    .unwrap()
}
