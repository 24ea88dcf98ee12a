//! The running agent: wires config, ledger, scanners, lane sessions and the API, and shuts
//! them down in order.
//!
//! Shutdown order: stop accepting requests and stop the scanners; let in-flight requests get
//! their answers; then drop every ledger handle so the writer commits what is queued and exits;
//! join it. Nothing acknowledged is lost, nothing queued is dropped.

use crate::api::{self, AppState};
use crate::checkout::{self, Identifier, Lanes};
use crate::config::Config;
use crate::ledger::{Ledger, OpenOptions};
use crate::metrics::Metrics;
use crate::proximity::{self, sensor_node::supervise_node, sensor_node::NodeHealth};
use crate::scan::{self, ScannerHealth};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// Runs until `shutdown` is cancelled, serving the API on `listener`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(config, listener, shutdown, OpenOptions::default()).await
}

/// [`run`] with what the operator allows when the ledger is opened (`run --new-ledger`).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    options: OpenOptions,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (ledger, writer) = Ledger::open_with(
        &config.ledger_path(),
        Arc::new(config.rules.clone()),
        options,
    )
    .context("opening the ledger")?;
    // Campaigns HQ published before this start apply from the first sale.
    let base_rules = Arc::new(config.rules.clone());
    let stored = ledger
        .readers()
        .campaigns()
        .context("reading HQ's campaigns from the ledger")?;
    if !stored.is_empty() {
        let rules = crate::sync::campaigns::effective_rules(&base_rules, &stored);
        ledger
            .set_rules(Arc::new(rules))
            .await
            .context("applying HQ's campaigns")?;
    }
    let lanes = Arc::new(Lanes::new(
        config.lanes.iter().map(|l| l.id.clone()).collect(),
        config.checkout.session_timeout,
    ));
    let identifier = Identifier {
        ledger: ledger.clone(),
        metrics: metrics.clone(),
        qr_max_age: config.checkout.qr_max_age,
    };

    let tracker = TaskTracker::new();
    let sources = shutdown.child_token();
    let (scan_tx, scan_rx) = tokio::sync::mpsc::channel(256);
    let mut scanners = BTreeMap::new();
    for lane in &config.lanes {
        let Some(settings) = lane.scanner.clone() else {
            continue;
        };
        let health = Arc::new(ScannerHealth::new());
        scanners.insert(lane.id.clone(), health.clone());
        let watched = health.clone();
        metrics.watch_scanner(&lane.id, &settings.source.to_string(), move || {
            watched.is_connected()
        });
        tracker.spawn(scan::supervise(
            lane.id.clone(),
            settings,
            scan_tx.clone(),
            health,
            metrics.clone(),
            sources.clone(),
        ));
    }
    drop(scan_tx);
    let (sighting_tx, sighting_rx) = tokio::sync::mpsc::channel(1024);
    let mut sensors = BTreeMap::new();
    for sensor in &config.sensors {
        let health = Arc::new(NodeHealth::new());
        sensors.insert(sensor.name.clone(), health.clone());
        let watched = health.clone();
        metrics.watch_sensor(&sensor.name, &sensor.source.to_string(), move || {
            watched.is_connected() && !watched.is_down(std::time::Instant::now())
        });
        tracker.spawn(supervise_node(
            sensor.name.clone(),
            sensor.source.clone(),
            sensor.baud,
            sighting_tx.clone(),
            health,
            sources.clone(),
        ));
    }
    let mut adapters = BTreeMap::new();
    for bt in config.proximity.iter().flat_map(|p| &p.bluetooth) {
        let health = Arc::new(proximity::BluetoothHealth::new());
        adapters.insert(bt.name.clone(), health.clone());
        let watched = health.clone();
        let port = format!(
            "bluetooth {}",
            bt.adapter.as_deref().unwrap_or("(first adapter)")
        );
        metrics.watch_sensor(&bt.name, &port, move || watched.is_scanning());
        let mut settings = proximity::BluetoothSettings::new(bt.name.clone());
        settings.adapter = bt.adapter.clone();
        tracker.spawn(proximity::run_bluetooth(
            settings,
            sighting_tx.clone(),
            health,
            sources.clone(),
        ));
    }
    let tracking = match &config.proximity {
        Some(prox) => {
            if let Some(path) = prox.replay.clone() {
                let tx = sighting_tx.clone();
                let stop = sources.clone();
                tracker.spawn(async move {
                    if let Err(e) = proximity::replay::run_replay(&path, tx, stop).await {
                        tracing::warn!(error = %e, "The sighting trace could not be replayed.");
                    }
                });
            }
            let health = Arc::new(proximity::pipeline::TrackingHealth::default());
            tracker.spawn(proximity::pipeline::run_pipeline(
                prox.clone(),
                sighting_rx,
                ledger.clone(),
                metrics.clone(),
                health.clone(),
                sources.clone(),
            ));
            Some(health)
        }
        None => {
            tracker.spawn(proximity::count_sightings(sighting_rx, metrics.clone()));
            None
        }
    };
    drop(sighting_tx);
    tracker.spawn(checkout::run_scans(
        scan_rx,
        lanes.clone(),
        identifier.clone(),
        sources.clone(),
    ));

    let sync_health = match &config.hq {
        Some(hq) => {
            let client = crate::sync::HqClient::new(
                &hq.url,
                &config.store_id,
                &hq.token,
                hq.ca_file.as_deref(),
            )
            .context("setting up the HQ client")?;
            let health = Arc::new(crate::sync::SyncHealth::new(hq.offline_after));
            let settings = crate::sync::SyncSettings {
                push_batch: hq.push_batch,
                pull_wait: hq.pull_wait,
            };
            let sync = crate::sync::run(
                client,
                ledger.clone(),
                base_rules.clone(),
                settings,
                health.clone(),
                sources.clone(),
            );
            // Off the tills' threads: a drain to HQ must not take the core a sale's answer
            // needs (background.rs).
            let finished = crate::background::spawn("hq-sync", crate::background::SYNC_NICE, sync)
                .context("starting the HQ sync thread")?;
            tracker.spawn(async move {
                if finished.await.is_err() {
                    tracing::error!("The HQ sync thread died; nothing more is sent to HQ until the agent restarts.");
                }
            });
            Some(health)
        }
        None => None,
    };
    let state = AppState {
        ledger: ledger.clone(),
        lanes,
        identifier,
        metrics,
        scanners: Arc::new(scanners),
        sensors: Arc::new(sensors),
        store_id: config.store_id.clone(),
        sync: sync_health,
        tracking,
        adapters: Arc::new(adapters),
        live: Arc::new(api::lane_page::LivePages::new(shutdown.clone())),
        in_flight: Arc::default(),
    };
    let ledger_for_watchdog = ledger.clone();
    drop(ledger);
    let address = listener.local_addr().context("reading the API's address")?;
    let time_zone = config.rules.time_zone;
    if let crate::engine::StoreTimeZone::Fixed(_) = time_zone {
        // Only the deprecated key gives a fixed offset; it is an hour off whenever the clocks
        // change, so say so where an operator looks.
        tracing::warn!(utc_offset = %time_zone, "store.utc_offset is deprecated: set store.time_zone (e.g. \"Europe/Amsterdam\") so campaign hours and daily limits follow daylight saving time.");
    }
    info!(store = %config.store_id, address = %address, lanes = config.lanes.len(), time_zone = %time_zone, tzdata = crate::engine::time_zone::TZDB_VERSION, "Agent serving.");
    tracker.spawn(crate::systemd::watchdog(
        ledger_for_watchdog,
        address,
        sources.clone(),
    ));
    crate::systemd::ready();
    let server_shutdown = shutdown.clone();
    loyalty_http_edge::serve(
        listener,
        api::router(state),
        loyalty_http_edge::Limits::default(),
        async move { server_shutdown.cancelled().await },
    )
    .await
    .context("serving the API")?;
    crate::systemd::stopping();
    sources.cancel();
    tracker.close();
    tracker.wait().await;
    // Every ledger handle is gone now: the writer commits what it holds, then returns.
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .ok()
        .and_then(Result::ok)
        .context("the ledger writer did not stop cleanly")?;
    info!("Agent stopped cleanly.");
    Ok(())
}
