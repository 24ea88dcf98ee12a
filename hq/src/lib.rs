//! Loyalty Edge reference HQ.
//!
//! - [`store::Store`] is HQ's storage; [`store::SqliteStore`] the embedded default. Ingestion
//!   and the reconciliation rules live in the store (`store/ingest.rs`), the changes feed in
//!   `store/changes.rs`.
//! - [`http::router`] is the HTTP API (admin and store sync endpoints).
//! - [`allowance::AllowancePolicy`] is the offline spend allowance rule.
//! - [`config`] turns hq.toml and flags into [`config::Settings`]; [`serve`] runs HQ on a
//!   listener until a shutdown future completes (tests pass a listener on port 0).

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod allowance;
pub mod clock;
pub mod config;
pub mod cursor;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod http;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::store::{SqliteStore, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HqError {
    #[error("opening the database: {0}")]
    Store(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the database of `settings` and serves HQ on `listener` until `shutdown` completes;
/// requests in flight are finished first.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HqError> {
    let db = settings.db.clone();
    let allowance = settings.allowance;
    let plausibility = settings.plausibility;
    let store = tokio::task::spawn_blocking(move || {
        SqliteStore::open(&db, allowance).map(|s| s.with_plausibility(plausibility))
    })
    .await
    .map_err(std::io::Error::other)??;
    let state = http::AppState {
        store: Arc::new(store),
        admin_token: settings.admin_token,
        max_batch_events: settings.max_batch_events,
    };
    let app = http::router(state, settings.max_body_bytes);
    tracing::info!(listen = %listener.local_addr()?, db = %settings.db.display(), "HQ serving.");
    loyalty_http_edge::serve(
        listener,
        app,
        loyalty_http_edge::Limits::default(),
        shutdown,
    )
    .await?;
    tracing::info!("HQ stopped.");
    Ok(())
}
