//! Loyalty Edge reference HQ.
//!
//! - [`store::Store`] is HQ's storage; [`store::SqliteStore`] the embedded default,
//!   [`store::PgStore`] PostgreSQL (a `postgres://` URL as `db`), which several HQ processes
//!   may share. Ingestion and the reconciliation rules live in the store (`store/ingest.rs`),
//!   written once for both, the changes feed in `store/changes.rs`.
//! - [`http::router`] is the HTTP API (admin and store sync endpoints).
//! - [`import_client`] sends a member file to the bulk import route (`loyalty-hq import-members`).
//! - [`metrics::Metrics`]: what `/metrics` exports, every name in one file.
//! - [`allowance::AllowancePolicy`] is the offline spend allowance rule.
//! - [`webhooks`] delivers the queued member events to the retailer's endpoints, a task of its
//!   own; [`expiry`] announces expired gifts; [`feed_hub::FeedHub`] wakes live member feeds.
//! - [`config`] turns hq.toml and flags into [`config::Settings`]; [`serve`] runs HQ on a
//!   listener (over HTTPS with hq.toml's `[tls]`, [`tls`]) until a shutdown future completes (tests pass a listener on port 0; the
//!   in-process HQ the demo and tests start is `loyalty_sim::hq::LocalHq`).

// Input and I/O never panic the process: an unwrap outside tests is an error (tests may).
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod allowance;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod expiry;
pub mod feed_hub;
pub mod http;
pub mod import_client;
pub mod metrics;
pub mod store;
pub mod tls;
pub mod token;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::store::StoreError;

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
    let options = store::Options {
        allowance: settings.allowance,
        plausibility: settings.plausibility,
        dead_after: settings.webhooks.dead_after,
    };
    let store = tokio::task::spawn_blocking(move || store::open(&db, options))
        .await
        .map_err(std::io::Error::other)??;
    let hub = Arc::new(feed_hub::FeedHub::default());
    if let Some(wakeups) = store.wakeups() {
        tokio::spawn(feed_hub::relay(wakeups, hub.clone()));
    }
    let state = http::AppState {
        store: store.clone(),
        admin_token: token::TokenHash::of(&settings.admin_token),
        max_batch_events: settings.max_batch_events,
        hub: hub.clone(),
        app: settings.app.clone(),
        max_pull_wait: settings.max_pull_wait,
        metrics: Arc::new(metrics::Metrics::new()),
    };
    let app = http::router(state, settings.max_body_bytes);
    let tls = settings.tls.clone();
    tracing::info!(listen = %listener.local_addr()?, db = %settings.db, https = tls.is_some(), "HQ serving.");
    let sender = tokio::spawn(webhooks::run(
        store.clone(),
        hub.clone(),
        settings.webhooks.clone(),
        hub.stopped(),
    ));
    let expiry = tokio::spawn(expiry::run(store, hub.clone(), hub.stopped()));
    let stopping = hub.clone();
    let limits = loyalty_http_edge::Limits {
        max_connections: settings.max_connections,
        ..loyalty_http_edge::Limits::default()
    };
    let shutdown = async move {
        shutdown.await;
        // Live feeds and waiting pulls end here; otherwise the drain would wait on them.
        stopping.stop();
    };
    match tls {
        Some(tls) => loyalty_http_edge::serve_tls(listener, app, limits, tls, shutdown).await?,
        None => loyalty_http_edge::serve(listener, app, limits, shutdown).await?,
    }
    hub.stop();
    let _ = sender.await;
    let _ = expiry.await;
    tracing::info!("HQ stopped.");
    Ok(())
}
