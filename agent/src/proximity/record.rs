//! `loyalty-agent proximity record`: the configured serial sensor nodes' sightings written as a
//! JSON-lines trace, the format `proximity.replay` plays back. Lets a store capture a real
//! morning at the door and replay it against new tracking settings.

use super::sensor_node::{supervise_node, NodeHealth};
use super::settings::SensorConfig;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Records until `stop`; returns the number of sightings written. Each line is flushed as it
/// is written, so a recording cut short keeps everything up to its last line.
pub async fn record(
    sensors: &[SensorConfig],
    out: &Path,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    if sensors.is_empty() {
        anyhow::bail!(
            "no serial sensor is configured under [[proximity.sensors]]: nothing to record"
        );
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut file = std::io::LineWriter::new(file);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let tasks = TaskTracker::new();
    for sensor in sensors {
        tasks.spawn(supervise_node(
            sensor.name.clone(),
            sensor.source.clone(),
            sensor.baud,
            tx.clone(),
            Arc::new(NodeHealth::new()),
            stop.clone(),
        ));
    }
    drop(tx);
    let start = std::time::Instant::now();
    let mut written = 0u64;
    loop {
        let sighting = tokio::select! {
            _ = stop.cancelled() => break,
            s = rx.recv() => match s { Some(s) => s, None => break },
        };
        writeln!(
            file,
            "{}",
            super::trace::from_sighting(&sighting, start).to_line()
        )
        .with_context(|| format!("writing {}", out.display()))?;
        written += 1;
    }
    tasks.close();
    tasks.wait().await;
    file.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(written)
}
